/**
 * Convolution of a 3D float volume (NIfTI order, first index fastest) along one axis, so the 3D Gaussian blur is three
 * passes costing O(n x taps) instead of O(n x taps^3). Resampling along an axis (the bias-field upsampling, the
 * low-resolution acquisition) lives in ts/volume/axis-resampling.ts.
 *
 * Hand-written because no npm package does 3D separable filtering on typed arrays with TensorFlow's 'SAME' padding
 * (outside the volume counts as 0), which SynthSeg's results depend on.
 */
import type { Triple } from '../labels/label-volume.js';
import { axisView } from '../volume/axis-resampling.js';

/**
 * Convolves along `axis` with a centred odd-length kernel (length 2r + 1; kernel[r] is the centre tap), zero padding.
 */
export function convolveAxis(src: Float32Array, shape: Triple, axis: number, kernel: ArrayLike<number>): Float32Array {
  const r = (kernel.length - 1) / 2;
  if (!Number.isInteger(r)) throw new RangeError(`convolveAxis: the kernel needs an odd length, got ${kernel.length}`);
  const { outer, length, inner } = axisView(shape, axis);
  const out = new Float32Array(src.length);
  if (inner === 1) {
    // Contiguous lines (axis 0): a plain dot product per output sample.
    for (let o = 0; o < outer; o++) {
      const base = o * length;
      for (let l = 0; l < length; l++) {
        const t0 = Math.max(-r, -l);
        const t1 = Math.min(r, length - 1 - l);
        let s = 0;
        for (let t = t0; t <= t1; t++) s += kernel[t + r] * src[base + l + t];
        out[base + l] = s;
      }
    }
    return out;
  }
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    const base = o * length * inner;
    for (let l = 0; l < length; l++) {
      acc.fill(0);
      const t0 = Math.max(-r, -l);
      const t1 = Math.min(r, length - 1 - l);
      for (let t = t0; t <= t1; t++) {
        const w = kernel[t + r];
        const from = base + (l + t) * inner;
        for (let i = 0; i < inner; i++) acc[i] += w * src[from + i];
      }
      const to = base + l * inner;
      for (let i = 0; i < inner; i++) out[to + i] = acc[i];
    }
  }
  return out;
}
