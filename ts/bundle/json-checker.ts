/**
 * Field-by-field validation of JSON configuration files (model.json, generator.json): every failure names the
 * file, the field path and what was expected.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export class JsonChecker {
  constructor(private readonly file: string) {}

  fail(path: string, expected: string, got: unknown, Err: new (m: string) => Error = TypeError): never {
    throw new Err(`${this.file}: field '${path}' must be ${expected}, got ${show(got)}`);
  }

  object(v: unknown, path: string): Record<string, unknown> {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'an object', v);
    return v as Record<string, unknown>;
  }

  /** Every `required` field present, nothing outside `required` + `optional`. */
  only(o: Record<string, unknown>, path: string, required: readonly string[], optional: readonly string[] = []): void {
    const allowed = [...required, ...optional];
    for (const k of Object.keys(o))
      if (!allowed.includes(k)) throw new RangeError(`${this.file}: unknown field '${path ? `${path}.` : ''}${k}' (expected only ${allowed.join(', ')})`);
    for (const k of required)
      if (!(k in o)) throw new RangeError(`${this.file}: field '${path ? `${path}.` : ''}${k}' is missing`);
  }

  json(v: unknown, path: string): JsonValue {
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
    if (typeof v === 'number') { if (!Number.isFinite(v)) this.fail(path, 'a finite number', v); return v; }
    if (Array.isArray(v)) return v.map((x, i) => this.json(x, `${path}[${i}]`));
    if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      const out: JsonObject = {};
      for (const [k, x] of Object.entries(v)) out[k] = this.json(x, `${path}.${k}`);
      return out;
    }
    return this.fail(path, 'JSON data', v);
  }

  jsonObjectOrNull(v: unknown, path: string): JsonObject | null {
    if (v === null) return null;
    return this.json(this.object(v, path), path) as JsonObject;
  }

  finite(v: unknown, path: string, expected = 'a finite number'): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(path, expected, v);
    return v as number;
  }

  positive(v: unknown, path: string): number {
    const x = this.finite(v, path, 'a positive number');
    if (x <= 0) this.fail(path, 'a positive number', v, RangeError);
    return x;
  }

  string(v: unknown, path: string, expected = 'a non-empty string'): string {
    if (typeof v !== 'string' || v.length === 0) this.fail(path, expected, v);
    return v as string;
  }

  positiveInts(v: unknown, path: string): number[] {
    if (!Array.isArray(v) || v.length === 0 || !v.every((d) => Number.isSafeInteger(d) && d > 0)) this.fail(path, 'a non-empty array of positive integers', v);
    return (v as number[]).slice();
  }
}

export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  if (s === undefined) return typeof v;
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

