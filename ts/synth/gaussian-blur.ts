/**
 * Separable Gaussian blur as SynthSeg builds it (BBillot/SynthSeg @66342c1, `ext/lab2im/edit_tensors.py`
 * gaussian_kernel, `ext/lab2im/layers.py` GaussianBlur / DynamicGaussianBlur): per axis a Gaussian sampled at integer
 * offsets, normalised to sum 1, over a window of `2r + 1` taps, applied with zero padding (TF 'SAME').
 *
 * The window comes from the largest sigma the layer can be asked for, not from the sigma of the draw:
 * windowsize = int(ceil(2.5 x maxSigma) / 2) x 2 + 1, so r = floor(ceil(2.5 x maxSigma) / 2). With dynamic blurring
 * (random resolution) maxSigma = 0.75 x maxResolution / nativeResolution.
 */
import type { Triple } from '../labels/label-volume.js';
import { convolveAxis } from './separable-filters.js';

/** Half-width r of SynthSeg's window for a largest sigma (in voxels). */
export function synthSegKernelRadius(maxSigma: number): number {
  if (!(maxSigma >= 0) || !Number.isFinite(maxSigma)) throw new RangeError(`synthSegKernelRadius: maxSigma must be a finite number >= 0, got ${maxSigma}`);
  return Math.floor(Math.ceil(2.5 * maxSigma) / 2);
}

/** Sampled Gaussian exp(-x^2 / (2 sigma^2)) at x = -r..r, normalised to sum 1; sigma 0 (or r 0) is the identity tap. */
export function gaussianKernel1d(sigma: number, radius: number): Float64Array {
  if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new RangeError(`gaussianKernel1d: sigma must be a finite number >= 0, got ${sigma}`);
  if (!Number.isSafeInteger(radius) || radius < 0) throw new RangeError(`gaussianKernel1d: radius must be an integer >= 0, got ${radius}`);
  if (sigma === 0 || radius === 0) return Float64Array.of(1);
  const k = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let x = -radius; x <= radius; x++) sum += k[x + radius] = Math.exp(-(x * x) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/** Blurs a volume with per-axis sigma (voxels) and window half-width, zero padding; returns a new array. */
export function gaussianBlur(data: Float32Array, shape: Triple, sigma: Triple, radius: Triple): Float32Array {
  let out = data;
  for (let a = 0; a < 3; a++) {
    const kernel = gaussianKernel1d(sigma[a], radius[a]);
    if (kernel.length > 1) out = convolveAxis(out, shape, a, kernel);
  }
  return out === data ? data.slice() : out;
}
