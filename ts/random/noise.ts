/**
 * Reproducible Gaussian noise for sampling: the same (seed, sample index, step) gives the same
 * float32 bits on every backend (native at any ISA and thread count, every wasm variant) and every
 * machine, so any one generated sample regenerates alone, without replaying the samples or steps
 * before it.
 *
 * The core op `random_normal` (native/core/ops/random.cpp) draws element `offset + i` of the stream
 * (seed, stream) with Philox4x32-10 (key = the 64-bit seed, counter = (element / 4, stream)) and
 * Box-Muller evaluated with the core's own double-precision log/sin/cos. This module maps the
 * sampler's coordinates onto it:
 *
 *   seed   -> the Philox key (64 bits: a safe integer or a bigint below 2^64)
 *   stream =  sampleIndex (each generated volume has its own stream)
 *   offset =  step * numel(shape)
 *
 * `step` numbers the draws of one sample: by convention 0 is the initial latent x_T and k >= 1 the
 * noise a stochastic sampler (DDPM, DDIM with eta > 0) injects at its k-th denoising step. Draws of
 * one sample at different steps never overlap as long as they share `shape`; a draw of another
 * shape for the same sample should use a different sampleIndex range (or seed).
 */
import type { Backend, DeviceTensor } from '../backend/types.js';

export interface NoiseCoordinates {
  /** Generator seed: a non-negative safe integer, or a bigint in [0, 2^64). */
  seed: number | bigint;
  /** Which generated sample (volume) this noise belongs to; non-negative safe integer. */
  sampleIndex: number;
  /** Which draw of that sample (0: initial latent, k: sampler step k); non-negative safe integer. */
  step?: number;
}

/** The `random_normal` attributes for `coords` and a draw of `shape` (exported for tests and tools). */
export function noiseAttributes(shape: readonly number[], coords: NoiseCoordinates): {
  seed_hi: number; seed_lo: number; stream: number; offset: number;
} {
  const { seed, sampleIndex, step = 0 } = coords;
  let seed64: bigint;
  if (typeof seed === 'bigint') seed64 = seed;
  else if (typeof seed === 'number' && Number.isSafeInteger(seed)) seed64 = BigInt(seed);
  else throw new TypeError(`gaussianNoise: 'seed' must be a safe integer or a bigint, got ${String(seed)}`);
  if (seed64 < 0n || seed64 >= 1n << 64n) throw new RangeError(`gaussianNoise: 'seed' must be in [0, 2^64), got ${seed64}`);
  for (const [name, v] of [['sampleIndex', sampleIndex], ['step', step]] as const)
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`gaussianNoise: '${name}' must be a non-negative safe integer, got ${String(v)}`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw new RangeError(`gaussianNoise: 'shape' must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  const numel = shape.reduce((a, b) => a * b, 1);
  const offset = step * numel;
  if (!Number.isSafeInteger(offset + numel))
    throw new RangeError(`gaussianNoise: step ${step} x ${numel} elements exceeds the 2^53 offset range`);
  return { seed_hi: Number(seed64 >> 32n), seed_lo: Number(seed64 & 0xffffffffn), stream: sampleIndex, offset };
}

/**
 * Standard normal noise of `shape` on `backend` for (seed, sampleIndex, step), bit-identical on
 * every backend. Writes into `out` when given (it must have `shape`), else into a new tensor.
 */
export async function gaussianNoise(backend: Backend, shape: readonly number[], coords: NoiseCoordinates,
  out?: DeviceTensor): Promise<DeviceTensor> {
  const attrs = noiseAttributes(shape, coords);
  if (out && (out.shape.length !== shape.length || out.shape.some((d, i) => d !== shape[i])))
    throw new RangeError(`gaussianNoise: argument 'out' has shape [${out.shape.join(', ')}], expected [${shape.join(', ')}]`);
  const y = out ?? backend.tensor(shape);
  await backend.runOp('random_normal', [], attrs, [y]);
  return y;
}
