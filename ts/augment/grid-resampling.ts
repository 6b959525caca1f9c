/**
 * Linear resampling of scalar fields between a fine grid and a coarser one over the same extent, with corner voxel
 * centres aligned: voxel q of a grid of m voxels sits at q (n - 1) / (m - 1) in a grid of n voxels along an axis.
 * Both directions work axis by axis (separable), so a 96 x 128 x 96 field resizes in a few passes over memory.
 */
import type { Triple } from '../labels/label-volume.js';

function otherAxes(axis: number): [number, number] {
  return [0, 1, 2].filter((x) => x !== axis) as [number, number];
}

/** Linear interpolation of `data` along `axis` to `len` samples, times `gain`. */
export function resizeAxis(data: Float32Array, shape: Triple, axis: number, len: number, gain = 1): { data: Float32Array; shape: Triple } {
  const outShape = [...shape] as Triple;
  outShape[axis] = len;
  const out = new Float32Array(outShape[0] * outShape[1] * outShape[2]);
  const n = shape[axis];
  const ratio = len > 1 ? (n - 1) / (len - 1) : 0;
  const lo = new Int32Array(len);
  const frac = new Float64Array(len);
  for (let q = 0; q < len; q++) {
    const pos = q * ratio;
    lo[q] = Math.min(Math.floor(pos), Math.max(0, n - 2));
    frac[q] = n > 1 ? pos - lo[q] : 0;
  }
  const inStrides = [1, shape[0], shape[0] * shape[1]];
  const outStrides = [1, outShape[0], outShape[0] * outShape[1]];
  const [a, b] = otherAxes(axis);
  const step = n > 1 ? inStrides[axis] : 0;
  for (let jb = 0; jb < shape[b]; jb++) for (let ja = 0; ja < shape[a]; ja++) {
    const inBase = ja * inStrides[a] + jb * inStrides[b];
    const outBase = ja * outStrides[a] + jb * outStrides[b];
    for (let q = 0; q < len; q++) {
      const p = inBase + lo[q] * inStrides[axis];
      out[outBase + q * outStrides[axis]] = gain * (data[p] + frac[q] * (data[p + step] - data[p]));
    }
  }
  return { data: out, shape: outShape };
}

/** Linear interpolation of a scalar field to `shape`. */
export function resizeScalar(data: Float32Array, shape: Triple, to: Triple): Float32Array {
  let cur = { data, shape };
  for (let axis = 0; axis < 3; axis++) cur = resizeAxis(cur.data, cur.shape, axis, to[axis]);
  return cur.data;
}

/**
 * Average of a fine field onto a coarser grid: each fine sample is shared between its two enclosing coarse voxels
 * with the linear-interpolation weights (the transpose of resizeScalar), normalised by the weight each coarse voxel
 * received. A 0/1 mask becomes the fraction of it near each coarse voxel, so structures thinner than a coarse voxel
 * still show.
 */
export function averageDown(data: Float32Array, shape: Triple, to: Triple): Float32Array {
  let cur = { data, shape };
  for (let axis = 0; axis < 3; axis++) {
    const n = cur.shape[axis];
    const len = to[axis];
    const outShape = [...cur.shape] as Triple;
    outShape[axis] = len;
    const sum = new Float64Array(outShape[0] * outShape[1] * outShape[2]);
    const weight = new Float64Array(len);
    const ratio = n > 1 ? (len - 1) / (n - 1) : 0;
    const lo = new Int32Array(n);
    const frac = new Float64Array(n);
    for (let f = 0; f < n; f++) {
      const pos = f * ratio;
      lo[f] = Math.min(Math.floor(pos), Math.max(0, len - 2));
      frac[f] = len > 1 ? pos - lo[f] : 0;
      weight[lo[f]] += 1 - frac[f];
      if (len > 1) weight[lo[f] + 1] += frac[f];
    }
    const inStrides = [1, cur.shape[0], cur.shape[0] * cur.shape[1]];
    const outStrides = [1, outShape[0], outShape[0] * outShape[1]];
    const [a, b] = otherAxes(axis);
    const step = len > 1 ? outStrides[axis] : 0;
    for (let jb = 0; jb < cur.shape[b]; jb++) for (let ja = 0; ja < cur.shape[a]; ja++) {
      const inBase = ja * inStrides[a] + jb * inStrides[b];
      const outBase = ja * outStrides[a] + jb * outStrides[b];
      for (let f = 0; f < n; f++) {
        const v = cur.data[inBase + f * inStrides[axis]];
        const o = outBase + lo[f] * outStrides[axis];
        sum[o] += (1 - frac[f]) * v;
        sum[o + step] += frac[f] * v;
      }
    }
    const out = new Float32Array(sum.length);
    for (let jb = 0; jb < outShape[b]; jb++) for (let ja = 0; ja < outShape[a]; ja++) {
      const outBase = ja * outStrides[a] + jb * outStrides[b];
      for (let q = 0; q < len; q++) {
        const o = outBase + q * outStrides[axis];
        out[o] = weight[q] > 0 ? sum[o] / weight[q] : 0;
      }
    }
    cur = { data: out, shape: outShape };
  }
  return cur.data;
}
