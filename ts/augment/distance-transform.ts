/**
 * Exact Euclidean distance transform on an anisotropic voxel grid (Felzenszwalb & Huttenlocher, "Distance Transforms
 * of Sampled Functions", Theory of Computing 8, 2012): the squared distance is separable, so one lower-envelope-of-
 * parabolas pass per axis gives the exact result in O(voxels).
 *
 * Written here because no maintained npm package does 3D with per-axis voxel sizes (the scijs `distance-transform`
 * package works on ndarrays in voxel units, with no spacing); the algorithm is about 40 lines.
 */
import type { Triple } from '../labels/label-volume.js';

/** Squared distance transform of one line: f is read at stride `stride` from `offset`, positions are q * h. */
function envelope1d(f: Float64Array, n: number, h: number, v: Int32Array, z: Float64Array, out: Float64Array): void {
  // Voxels with f = Infinity are skipped; if every one is, the line stays Infinity.
  let k = -1;
  for (let q = 0; q < n; q++) {
    const fq = f[q];
    if (fq === Infinity) continue;
    const pq = q * h;
    while (k >= 0) {
      const p = v[k] * h;
      const s = ((fq + pq * pq) - (f[v[k]] + p * p)) / (2 * (pq - p));
      if (s <= z[k]) k--;
      else { k++; v[k] = q; z[k] = s; break; }
    }
    if (k < 0) { k = 0; v[0] = q; z[0] = -Infinity; }
    z[k + 1] = Infinity;
  }
  if (k < 0) { out.fill(Infinity, 0, n); return; }
  let j = 0;
  for (let q = 0; q < n; q++) {
    const pq = q * h;
    while (z[j + 1] < pq) j++;
    const d = pq - v[j] * h;
    out[q] = d * d + f[v[j]];
  }
}

/**
 * Distance in mm from every voxel to the nearest voxel where `feature` is non-zero (0 on feature voxels), on a grid
 * of `shape` (first index fastest) with voxel sizes `spacingMm`. Infinity everywhere when there is no feature voxel.
 */
export function distanceTransform(feature: Uint8Array, shape: Triple, spacingMm: Triple): Float32Array {
  const [nx, ny, nz] = shape;
  const n = nx * ny * nz;
  if (feature.length !== n) throw new RangeError(`distanceTransform: 'feature' has ${feature.length} voxels, shape [${shape.join(', ')}] needs ${n}`);
  const d2 = new Float64Array(n);
  for (let p = 0; p < n; p++) d2[p] = feature[p] ? 0 : Infinity;
  const longest = Math.max(nx, ny, nz);
  const f = new Float64Array(longest);
  const out = new Float64Array(longest);
  const v = new Int32Array(longest);
  const z = new Float64Array(longest + 1);
  const strides = [1, nx, nx * ny];
  for (let axis = 0; axis < 3; axis++) {
    const len = shape[axis];
    const stride = strides[axis];
    const [a, b] = [0, 1, 2].filter((x) => x !== axis);
    for (let jb = 0; jb < shape[b]; jb++) {
      for (let ja = 0; ja < shape[a]; ja++) {
        const base = ja * strides[a] + jb * strides[b];
        for (let q = 0; q < len; q++) f[q] = d2[base + q * stride];
        envelope1d(f, len, spacingMm[axis], v, z, out);
        for (let q = 0; q < len; q++) d2[base + q * stride] = out[q];
      }
    }
  }
  const dist = new Float32Array(n);
  for (let p = 0; p < n; p++) dist[p] = Math.sqrt(d2[p]);
  return dist;
}
