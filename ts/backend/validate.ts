/**
 * Argument checks shared by every backend, run before any native or wasm call
 * so bad input throws a TypeError/RangeError that names the op and argument
 * (the C++ core checks again; these give JS-native error types and messages).
 */
import type { DType, DeviceTensor, NetworkTensors, Triple } from './types.js';
import { BaseTensor } from './base-tensor.js';

export const MAX_DIMS = 8;

export function checkShape(op: string, name: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${op}: argument '${name}' must be an array of dimensions, got ${describe(shape)}`);
  if (shape.length < 1 || shape.length > MAX_DIMS)
    throw new RangeError(`${op}: argument '${name}' has ${shape.length} dims, expected 1 to ${MAX_DIMS}`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d))
      throw new TypeError(`${op}: argument '${name}' must hold integers, got [${shape.map(describe).join(', ')}]`);
    if (d < 1) throw new RangeError(`${op}: argument '${name}' is [${shape.join(', ')}]: every dimension must be >= 1 (zero-size tensors are not supported)`);
  }
  const size = shape.reduce((a: number, b: number) => a * b, 1);
  if (!Number.isSafeInteger(size) || size > 2 ** 31 - 1)
    throw new RangeError(`${op}: argument '${name}' is [${shape.join(', ')}]: ${size} elements exceed the 2^31-1 limit`);
  return shape.slice();
}

export function isDetached(buffer: ArrayBufferLike): boolean {
  try {
    new Uint8Array(buffer, 0, 0);
    return false;
  } catch {
    return true;
  }
}

/** Checks host data handed to tensor()/write(): right array type, not detached, right length. */
export function checkHostData(op: string, name: string, data: unknown, dtype: DType, size: number): Float32Array | Uint16Array {
  const want = dtype === 'float32' ? Float32Array : Uint16Array;
  if (!(data instanceof want))
    throw new TypeError(`${op}: argument '${name}' must be a ${want.name} for dtype ${dtype}, got ${describe(data)}`);
  if (isDetached(data.buffer)) throw new TypeError(`${op}: argument '${name}' is backed by a detached ArrayBuffer`);
  if (data.length !== size)
    throw new RangeError(`${op}: argument '${name}' has ${data.length} elements, expected ${size}`);
  return data;
}

export function checkDType(op: string, name: string, dtype: unknown): DType {
  if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16')
    throw new TypeError(`${op}: argument '${name}' must be 'float32', 'bfloat16' or 'float16', got ${describe(dtype)}`);
  return dtype;
}

/** A live float32 tensor of `owner` with `rank` dims (or any rank when rank < 0). */
export function checkTensor(op: string, name: string, t: unknown, owner: object, rank: number): BaseTensor {
  if (!(t instanceof BaseTensor) || t.owner !== owner)
    throw new TypeError(`${op}: argument '${name}' must be a tensor created by this backend, got ${describe(t)}`);
  if (t.disposed) throw new TypeError(`${op}: argument '${name}' has been disposed`);
  if (t.dtype !== 'float32') throw new TypeError(`${op}: argument '${name}' has dtype ${t.dtype}, expected float32`);
  if (rank >= 0 && t.shape.length !== rank)
    throw new RangeError(`${op}: argument '${name}' has shape [${t.shape.join(', ')}], expected ${rank} dims`);
  return t;
}

export function checkOut(op: string, out: DeviceTensor | undefined, owner: object, shape: readonly number[]): BaseTensor | undefined {
  if (out === undefined) return undefined;
  const t = checkTensor(op, 'out', out, owner, shape.length);
  if (!sameShape(t.shape, shape))
    throw new RangeError(`${op}: argument 'out' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  return t;
}

export function triple(op: string, name: string, v: unknown, min: number): Triple {
  const t = typeof v === 'number' ? [v, v, v] : v;
  if (!Array.isArray(t) || t.length !== 3 || !t.every((x) => typeof x === 'number' && Number.isInteger(x)))
    throw new TypeError(`${op}: argument '${name}' must be an integer or an array of 3 integers, got ${describe(v)}`);
  if (t.some((x: number) => x < min)) throw new RangeError(`${op}: argument '${name}' must be >= ${min} in every dim, got [${t.join(', ')}]`);
  return [t[0], t[1], t[2]];
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as { length?: number }).length ?? v.byteLength})`;
  if (Array.isArray(v)) return `array(${v.length})`;
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return `${typeof v} ${String(v)}`;
}

/** Input names each network entry accepts (MONAI's forward arguments). */
export const NETWORK_ENTRY_INPUTS: Readonly<Record<string, readonly string[]>> = {
  encode: ['x'],
  decode: ['z', 'x', 'seg'],
  forward: ['x', 'timesteps', 'context', 'seg', 'class_labels'],
};

export function checkNetworkInputs(entries: readonly string[], entry: unknown, inputs: unknown): asserts inputs is NetworkTensors {
  if (typeof entry !== 'string' || !entries.includes(entry))
    throw new RangeError(`network.run: argument 'entry' is ${describe(entry)}, expected one of ${entries.join(', ')}`);
  if (typeof inputs !== 'object' || inputs === null) throw new TypeError(`network.run: argument 'inputs' must be an object of named tensors, got ${describe(inputs)}`);
  const accepted = NETWORK_ENTRY_INPUTS[entry] ?? [];
  for (const [name, t] of Object.entries(inputs as Record<string, { shape?: unknown; data?: unknown }>)) {
    if (!accepted.includes(name)) throw new RangeError(`network.run: input '${name}' is unknown for '${entry}'; expected ${accepted.join(', ')}`);
    if (!(t?.data instanceof Float32Array)) throw new TypeError(`network.run: input '${name}' must have a Float32Array 'data', got ${describe(t?.data)}`);
    if (isDetached(t.data.buffer)) throw new TypeError(`network.run: input '${name}' is backed by a detached ArrayBuffer`);
    const shape = checkShape('network.run', `inputs.${name}.shape`, t.shape);
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) throw new RangeError(`network.run: input '${name}' has ${t.data.length} values for shape [${shape.join(', ')}] (${size})`);
  }
}
