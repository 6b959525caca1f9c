/**
 * One-axis operations on a 3D float volume in NIfTI order (first index fastest): convolution with zero padding, and
 * resampling to a new length by nearest or linear interpolation. The 3D Gaussian blur, the bias-field upsampling
 * and the low-resolution acquisition are all products of 1D operations, so three passes of these cost
 * O(n x taps) instead of O(n x taps^3).
 *
 * Hand-written because no npm package does 3D separable filtering on typed arrays with TensorFlow's conventions,
 * which SynthSeg's results depend on:
 *   - convolution is TF 'SAME' padding: outside the volume counts as 0;
 *   - resampling follows neuron's Resize / interpn (SynthSeg `ext/neuron`): output sample j reads input position
 *     j x inLength / outLength (no half-voxel shift), linear weights from that position with the neighbours clamped to
 *     the edge, nearest = that position rounded half to even and clamped.
 */
import { roundHalfEven, type Triple } from '../labels/label-volume.js';

/** Strides of the three axes and the (outer, length, inner) view of `axis`. */
function axisView(shape: Triple, axis: number): { outer: number; length: number; inner: number } {
  const inner = axis === 0 ? 1 : axis === 1 ? shape[0] : shape[0] * shape[1];
  const outer = axis === 0 ? shape[1] * shape[2] : axis === 1 ? shape[2] : 1;
  return { outer, length: shape[axis], inner };
}

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

/**
 * Resamples `axis` to `outLength` samples; output sample j = (1 - w) x input[i0] + w x input[i1] for the taps
 * `taps(j x length / outLength)` gives (all lines of the axis at once, so the inner loop runs over contiguous memory).
 */
function resampleAxis(src: Float32Array, shape: Triple, axis: number, outLength: number, taps: (p: number, length: number) => [number, number, number]): { data: Float32Array; shape: Triple } {
  const { outer, length, inner } = axisView(shape, axis);
  const outShape = shape.slice() as Triple;
  outShape[axis] = outLength;
  const out = new Float32Array(outer * outLength * inner);
  const scale = length / outLength;
  for (let j = 0; j < outLength; j++) {
    const [i0, i1, w] = taps(j * scale, length);
    for (let o = 0; o < outer; o++) {
      const a = (o * length + i0) * inner;
      const to = (o * outLength + j) * inner;
      if (w === 0) {
        out.set(src.subarray(a, a + inner), to);
        continue;
      }
      const b = (o * length + i1) * inner;
      for (let i = 0; i < inner; i++) out[to + i] = (1 - w) * src[a + i] + w * src[b + i];
    }
  }
  return { data: out, shape: outShape };
}

/** Linear taps at position p, the neighbours clamped to the edge (neuron interpn 'linear'). */
function linearTaps(p: number, length: number): [number, number, number] {
  const q = Math.min(Math.max(p, 0), length - 1);
  const i0 = Math.floor(q);
  return [i0, Math.min(i0 + 1, length - 1), q - i0];
}

/** Nearest tap at position p: rounded half to even (tf.round), clamped (neuron interpn 'nearest'). */
function nearestTaps(p: number, length: number): [number, number, number] {
  const i0 = Math.min(Math.max(roundHalfEven(p), 0), length - 1);
  return [i0, i0, 0];
}

/** Resamples `axis` to `outLength` samples at positions j x length / outLength, linear with clamped neighbours. */
export function resampleAxisLinear(src: Float32Array, shape: Triple, axis: number, outLength: number): { data: Float32Array; shape: Triple } {
  return resampleAxis(src, shape, axis, outLength, linearTaps);
}

/** Resamples `axis` to `outLength` samples at positions j x length / outLength, nearest (half to even), clamped. */
export function resampleAxisNearest(src: Float32Array, shape: Triple, axis: number, outLength: number): { data: Float32Array; shape: Triple } {
  return resampleAxis(src, shape, axis, outLength, nearestTaps);
}

/** Linear resize of a whole volume (neuron Resize, 'linear'), one axis at a time. */
export function resizeLinear(src: Float32Array, shape: Triple, outShape: Triple): Float32Array {
  let cur = { data: src, shape };
  for (let a = 0; a < 3; a++) if (cur.shape[a] !== outShape[a]) cur = resampleAxisLinear(cur.data, cur.shape, a, outShape[a]);
  return cur.data === src ? src.slice() : cur.data;
}
