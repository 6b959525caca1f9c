/**
 * Runs `main([...])` from ts/cli.ts in-process and returns its exit code, the lines it printed and what it wrote to
 * console.error. It swaps console.error for the call, so specs using it run their CLI tests with `test.serial`.
 */
import { main } from '../../ts/cli.js';

export async function captureCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const lines: string[] = [];
  const errors: string[] = [];
  const error = console.error;
  console.error = (...parts: unknown[]) => { errors.push(parts.map(String).join(' ')); };
  try {
    const code = await main(args, (l) => lines.push(l));
    return { code, out: lines.join('\n'), err: errors.join('\n') };
  } finally {
    console.error = error;
  }
}
