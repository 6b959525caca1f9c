/**
 * Resampling of 3D float volumes (NIfTI order, first index fastest) one axis at a time, so a 3D resize is three
 * passes over memory. One loop serves both places that need it; they differ only in where output sample j of m sits
 * on an input axis of n voxels, which is part of each caller's reference:
 *   - 'corners': at j (n - 1) / (m - 1), the first and last voxel centres of both grids coincide (two grids over
 *     the same extent: the displacement fields and the coarse Poisson grid of ts/augment);
 *   - 'origin': at j n / m with no half-voxel shift, as neuron's Resize / interpn does (SynthSeg `ext/neuron`; the
 *     bias field and the low-resolution acquisition of ts/synth follow SynthSeg).
 * Linear weights come from that position clamped to [0, n - 1] (the upper neighbour clamped to the edge);
 * nearest rounds it half to even (tf.round) and clamps.
 *
 * Hand-written because no npm package resamples typed-array volumes with these conventions.
 */
import { roundHalfEven, type Triple } from '../labels/label-volume.js';

export type SampleAlignment = 'corners' | 'origin';

export interface AxisResampling {
  alignment: SampleAlignment;
  /** Default 'linear'. */
  interpolation?: 'linear' | 'nearest';
  /** Factor applied to every output value (default 1), e.g. to keep a displacement in voxels of the new grid. */
  gain?: number;
}

/** The (outer, length, inner) view of `axis`: `inner` is the stride of the axis, `outer` the lines above it. */
export function axisView(shape: Triple, axis: number): { outer: number; length: number; inner: number } {
  const inner = axis === 0 ? 1 : axis === 1 ? shape[0] : shape[0] * shape[1];
  const outer = axis === 0 ? shape[1] * shape[2] : axis === 1 ? shape[2] : 1;
  return { outer, length: shape[axis], inner };
}

/** Output sample j reads (1 - w[j]) x input[i0[j]] + w[j] x input[i1[j]]. */
interface Taps { i0: Int32Array; i1: Int32Array; w: Float64Array }

/** Taps for `outLength` samples on an axis of `length` voxels. */
export function axisTaps(length: number, outLength: number, alignment: SampleAlignment, interpolation: 'linear' | 'nearest' = 'linear'): Taps {
  const step = alignment === 'corners' ? (outLength > 1 ? (length - 1) / (outLength - 1) : 0) : length / outLength;
  const taps: Taps = { i0: new Int32Array(outLength), i1: new Int32Array(outLength), w: new Float64Array(outLength) };
  for (let j = 0; j < outLength; j++) {
    const p = j * step;
    if (interpolation === 'nearest') {
      taps.i0[j] = taps.i1[j] = Math.min(Math.max(roundHalfEven(p), 0), length - 1);
      continue;
    }
    const q = Math.min(Math.max(p, 0), length - 1);
    const i0 = Math.floor(q);
    taps.i0[j] = i0;
    taps.i1[j] = Math.min(i0 + 1, length - 1);
    taps.w[j] = q - i0;
  }
  return taps;
}

/** Resamples `axis` to `outLength` samples (all lines of the axis at once, so the inner loop runs over contiguous memory). */
export function resampleAxis(src: Float32Array, shape: Triple, axis: number, outLength: number, options: AxisResampling): { data: Float32Array; shape: Triple } {
  const { outer, length, inner } = axisView(shape, axis);
  const gain = options.gain ?? 1;
  const outShape = shape.slice() as Triple;
  outShape[axis] = outLength;
  const out = new Float32Array(outer * outLength * inner);
  const { i0, i1, w } = axisTaps(length, outLength, options.alignment, options.interpolation);
  for (let j = 0; j < outLength; j++) {
    for (let o = 0; o < outer; o++) {
      const a = (o * length + i0[j]) * inner;
      const to = (o * outLength + j) * inner;
      if (w[j] === 0 && gain === 1) {
        out.set(src.subarray(a, a + inner), to);
        continue;
      }
      const b = (o * length + i1[j]) * inner;
      const wj = w[j];
      for (let i = 0; i < inner; i++) out[to + i] = gain * ((1 - wj) * src[a + i] + wj * src[b + i]);
    }
  }
  return { data: out, shape: outShape };
}

/** Resizes a whole volume to `outShape`, one axis at a time (axes already the right length are left alone); a new array. */
export function resizeVolume(src: Float32Array, shape: Triple, outShape: Triple, options: Omit<AxisResampling, 'gain'>): Float32Array {
  let cur = { data: src, shape };
  for (let a = 0; a < 3; a++) if (cur.shape[a] !== outShape[a]) cur = resampleAxis(cur.data, cur.shape, a, outShape[a], options);
  return cur.data === src ? src.slice() : cur.data;
}

/**
 * Average of a fine volume onto a coarser grid over the same extent ('corners'): each fine sample is shared between
 * its two enclosing coarse voxels with the linear-interpolation weights (the transpose of a 'corners' linear resize),
 * normalised by the weight each coarse voxel received. A 0/1 mask becomes the fraction of it near each coarse voxel,
 * so structures thinner than a coarse voxel still show.
 */
export function averageDown(data: Float32Array, shape: Triple, to: Triple): Float32Array {
  let cur = { data, shape };
  for (let axis = 0; axis < 3; axis++) {
    const { outer, length, inner } = axisView(cur.shape, axis);
    const len = to[axis];
    const outShape = cur.shape.slice() as Triple;
    outShape[axis] = len;
    // Where fine sample f lands on the coarse axis: the taps of resizing the coarse axis to the fine one.
    const { i0, i1, w } = axisTaps(len, length, 'corners');
    const weight = new Float64Array(len);
    for (let f = 0; f < length; f++) {
      weight[i0[f]] += 1 - w[f];
      weight[i1[f]] += w[f];
    }
    const sum = new Float64Array(outer * len * inner);
    for (let o = 0; o < outer; o++) {
      for (let f = 0; f < length; f++) {
        const from = (o * length + f) * inner;
        const a = (o * len + i0[f]) * inner;
        const b = (o * len + i1[f]) * inner;
        const wf = w[f];
        for (let i = 0; i < inner; i++) {
          const v = cur.data[from + i];
          sum[a + i] += (1 - wf) * v;
          sum[b + i] += wf * v;
        }
      }
    }
    const out = new Float32Array(sum.length);
    for (let o = 0; o < outer; o++) {
      for (let q = 0; q < len; q++) {
        const at = (o * len + q) * inner;
        for (let i = 0; i < inner; i++) out[at + i] = weight[q] > 0 ? sum[at + i] / weight[q] : 0;
      }
    }
    cur = { data: out, shape: outShape };
  }
  return cur.data;
}
