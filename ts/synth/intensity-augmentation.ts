/**
 * SynthSeg's IntensityAugmentation as labels_to_image_model calls it (clip=300, normalise=True, gamma_std=0.5;
 * BBillot/SynthSeg @66342c1 `ext/lab2im/layers.py`; EVALUATION.md 2.1 step 6): clip to [0, 300], min-max normalise
 * to [0, 1], then gamma: x ** exp(g) with g ~ N(0, 0.5^2), always applied (prob_gamma 1). Its white-noise option is
 * off there (noise_std 0), so there is no noise step here.
 */
import type { SeededRandom } from '../random/seeded-random.js';

export const CLIP_MAX = 300;
export const GAMMA_STD = 0.5;
/** keras K.epsilon(), added to the range in SynthSeg's normalisation. */
export const KERAS_EPSILON = 1e-7;

/** Clips to [lo, hi] in place. */
export function clipInPlace(data: Float32Array, lo: number, hi: number): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < lo) data[i] = lo;
    else if (v > hi) data[i] = hi;
  }
}

/**
 * Min-max normalisation in place: (x - min) / (max - min + epsilon), then clamped to [0, 1] (float rounding).
 * A constant volume becomes all zeros. Returns the min and max it used.
 */
export function minMaxNormalise(data: Float32Array, epsilon = 0): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const range = max - min + epsilon;
  if (!(range > 0)) {
    data.fill(0);
    return { min, max };
  }
  for (let i = 0; i < data.length; i++) data[i] = Math.min(1, Math.max(0, (data[i] - min) / range));
  return { min, max };
}

/** The gamma exponent exp(g), g ~ N(0, gammaStd^2). */
export function drawGamma(rng: SeededRandom, gammaStd = GAMMA_STD): number {
  return Math.exp(rng.normal(0, gammaStd));
}

/** x ** gamma in place (values in [0, 1] stay in [0, 1]). */
export function applyGamma(data: Float32Array, gamma: number): void {
  for (let i = 0; i < data.length; i++) data[i] = Math.pow(data[i], gamma);
}
