/** Argument checks shared by the commands: each failure is a UsageError (exit code 2) naming the option. */
import { PRECISIONS, type BackendOptions, type BackendRequest, type Precision } from '../backend/types.js';

export class UsageError extends Error {}

/** parseArgs' own complaints (unknown option, missing value) are usage errors too. */
export function isUsageError(e: unknown): boolean {
  return e instanceof UsageError || (e instanceof TypeError && /Unknown option|Unexpected argument|argument missing|ERR_PARSE_ARGS/i.test(`${(e as Error).message} ${(e as { code?: string }).code ?? ''}`));
}

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** A decimal number as people write it (sign, fraction, exponent), else NaN: no hex, Infinity or '' as Number() takes. */
export function decimal(text: string): number {
  return NUMBER.test(text.trim()) ? Number(text) : Number.NaN;
}

export function numberOption(name: string, text: string | undefined, check: (v: number) => boolean, expected: string): number | undefined {
  if (text === undefined) return undefined;
  const v = decimal(text);
  if (!Number.isFinite(v) || !check(v)) throw new UsageError(`--${name} must be ${expected}, got '${text}'`);
  return v;
}

/**
 * An integer written as digits (an optional minus, no fraction or exponent) of at least `min`; undefined stays
 * undefined. The message names the bound, e.g. "--count must be an integer >= 1, got '0'".
 */
export function integerOption(name: string, text: string, min?: number): number;
export function integerOption(name: string, text: string | undefined, min?: number): number | undefined;
export function integerOption(name: string, text: string | undefined, min = Number.MIN_SAFE_INTEGER): number | undefined {
  if (text === undefined) return undefined;
  const v = /^-?\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(v) || v < min) throw new UsageError(`--${name} must be an integer${min > Number.MIN_SAFE_INTEGER ? ` >= ${min}` : ''}, got '${text}'`);
  return v;
}

export const positiveInt = (name: string, text: string | undefined) => numberOption(name, text, (v) => Number.isSafeInteger(v) && v >= 1, 'a positive integer');
export const nonNegativeInt = (name: string, text: string | undefined) => numberOption(name, text, (v) => Number.isSafeInteger(v) && v >= 0, 'a non-negative integer');

/** --backend / --threads / --isa / --precision as loadBackend options. */
export function backendOptions(values: { backend?: string; threads?: string; isa?: string; precision?: string }): BackendOptions {
  if (values.precision !== undefined && !(PRECISIONS as readonly string[]).includes(values.precision))
    throw new UsageError(`--precision must be one of ${PRECISIONS.join(', ')}, got '${values.precision}'`);
  return {
    backend: values.backend as BackendRequest | undefined, threads: positiveInt('threads', values.threads), isa: values.isa,
    precision: values.precision as Precision | undefined,
  };
}

export const BACKEND_OPTIONS = {
  backend: { type: 'string' },
  threads: { type: 'string' },
  isa: { type: 'string' },
  precision: { type: 'string' },
} as const;

export const BACKEND_USAGE = `  --backend <name>     auto (default), native, wasm, wasm-simd-threads, wasm-simd, wasm-scalar
  --threads <n>        worker threads (default: one per core)
  --isa <name>         native kernels: auto, avx512, avx2, scalar
  --precision <p>      fp32 (default) or bf16: bfloat16 convolution products, fp32 sums (native, AVX512-BF16)`;
