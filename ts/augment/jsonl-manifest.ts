/**
 * A JSON-lines file with one line per output file, rewritten whole (temporary name, then rename) after each change,
 * so an interrupted run leaves the previous complete file. A rerun replaces the lines of the outputs it rewrites and
 * keeps the others in their order.
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomically } from '../io/atomic-write.js';

export class JsonlManifest {
  private constructor(private readonly path: string, private readonly key: string, private readonly lines: Map<string, string>) {}

  /** Reads `path` if it exists; every line must be a JSON object with a string field `key`. */
  static async open(path: string, key: string): Promise<JsonlManifest> {
    const lines = new Map<string, string>();
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    text.split('\n').forEach((line, i) => {
      if (!line.trim()) return;
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line);
      } catch {
        throw new Error(`${path}: line ${i + 1} is not JSON; move the file away or fix it`);
      }
      if (typeof record?.[key] !== 'string') throw new Error(`${path}: line ${i + 1} has no string field '${key}'`);
      lines.set(record[key] as string, line);
    });
    return new JsonlManifest(path, key, lines);
  }

  /** Sets the line for record[key] (replacing an earlier one) and rewrites the file; returns the line. */
  async put(record: Record<string, unknown>): Promise<string> {
    const id = record[this.key];
    if (typeof id !== 'string') throw new TypeError(`${this.path}: record has no string field '${this.key}'`);
    const line = JSON.stringify(record);
    this.lines.set(id, line);
    await writeFileAtomically(this.path, [Buffer.from([...this.lines.values()].join('\n') + '\n')]);
    return line;
  }
}
