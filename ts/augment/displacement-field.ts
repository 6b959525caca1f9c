/**
 * Dense displacement fields on a voxel grid and the operations the label augmentations share: composition,
 * resizing, integration of a stationary velocity field by scaling and squaring (Arsigny et al., MICCAI 2006; the
 * `VecInt` layer SynthSeg uses), and the Jacobian determinant.
 *
 * Convention: a field u on grid `shape` (first index fastest) is a sampling map: output voxel x takes the value the
 * source has at x + u(x). Components are along the three voxel axes, in voxels of that grid.
 */
import type { Triple } from '../labels/label-volume.js';
import { resampleAxis } from '../volume/axis-resampling.js';

export interface DisplacementField {
  shape: Triple;
  /** Displacement along voxel axis 0, 1, 2 (voxels). */
  x: Float32Array;
  y: Float32Array;
  z: Float32Array;
}

export function zeroField(shape: Triple): DisplacementField {
  const n = shape[0] * shape[1] * shape[2];
  return { shape: [shape[0], shape[1], shape[2]], x: new Float32Array(n), y: new Float32Array(n), z: new Float32Array(n) };
}

/** Largest displacement length, in voxels. */
export function maxDisplacement(u: DisplacementField): number {
  let m = 0;
  for (let p = 0; p < u.x.length; p++) m = Math.max(m, u.x[p] * u.x[p] + u.y[p] * u.y[p] + u.z[p] * u.z[p]);
  return Math.sqrt(m);
}

/** u multiplied by s (a new field). */
export function scaleField(u: DisplacementField, s: number): DisplacementField {
  const out = zeroField(u.shape);
  for (let p = 0; p < u.x.length; p++) { out.x[p] = u.x[p] * s; out.y[p] = u.y[p] * s; out.z[p] = u.z[p] * s; }
  return out;
}

/**
 * Linear resampling of a field to `shape` over the same extent (corner voxel centres aligned: voxel i of the new
 * grid sits at i (n_old - 1) / (n_new - 1) of the old one), done axis by axis; values are rescaled so they stay in
 * voxels of the grid they live on (SynthSeg resizes without rescaling; here the units stay physical).
 */
export function resizeField(u: DisplacementField, shape: Triple): DisplacementField {
  const gain = [0, 1, 2].map((a) => (shape[a] > 1 && u.shape[a] > 1 ? (shape[a] - 1) / (u.shape[a] - 1) : 1));
  const comps = [u.x, u.y, u.z].map((c, comp) => {
    let cur = { data: c, shape: u.shape };
    for (let axis = 0; axis < 3; axis++) cur = resampleAxis(cur.data, cur.shape, axis, shape[axis], { alignment: 'corners', gain: axis === comp ? gain[comp] : 1 });
    return cur.data;
  });
  return { shape: [shape[0], shape[1], shape[2]], x: comps[0], y: comps[1], z: comps[2] };
}

/** The field of "first u, then w": x -> x + u(x) + w(x + u(x)), i.e. source position w-displaced from u's. */
export function composeFields(u: DisplacementField, w: DisplacementField): DisplacementField {
  const [nx, ny, nz] = u.shape;
  const out = zeroField(u.shape);
  const sy = nx, sz = nx * ny;
  let n = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, n++) {
    // Trilinear weights shared by the three components; positions outside the grid are clamped to its edge.
    let px = i + u.x[n], py = j + u.y[n], pz = k + u.z[n];
    px = px < 0 ? 0 : px > nx - 1 ? nx - 1 : px;
    py = py < 0 ? 0 : py > ny - 1 ? ny - 1 : py;
    pz = pz < 0 ? 0 : pz > nz - 1 ? nz - 1 : pz;
    let i0 = Math.floor(px), j0 = Math.floor(py), k0 = Math.floor(pz);
    if (i0 === nx - 1 && i0 > 0) i0--;
    if (j0 === ny - 1 && j0 > 0) j0--;
    if (k0 === nz - 1 && k0 > 0) k0--;
    const fx = px - i0, fy = py - j0, fz = pz - k0;
    const dx = i0 + 1 < nx ? 1 : 0, dy = j0 + 1 < ny ? sy : 0, dz = k0 + 1 < nz ? sz : 0;
    const p = i0 + sy * j0 + sz * k0;
    const w000 = (1 - fx) * (1 - fy) * (1 - fz), w100 = fx * (1 - fy) * (1 - fz), w010 = (1 - fx) * fy * (1 - fz), w110 = fx * fy * (1 - fz);
    const w001 = (1 - fx) * (1 - fy) * fz, w101 = fx * (1 - fy) * fz, w011 = (1 - fx) * fy * fz, w111 = fx * fy * fz;
    const a = p, b = p + dx, c = p + dy, d = p + dy + dx, e = p + dz, f = p + dz + dx, g = p + dz + dy, h = p + dz + dy + dx;
    out.x[n] = u.x[n] + w000 * w.x[a] + w100 * w.x[b] + w010 * w.x[c] + w110 * w.x[d] + w001 * w.x[e] + w101 * w.x[f] + w011 * w.x[g] + w111 * w.x[h];
    out.y[n] = u.y[n] + w000 * w.y[a] + w100 * w.y[b] + w010 * w.y[c] + w110 * w.y[d] + w001 * w.y[e] + w101 * w.y[f] + w011 * w.y[g] + w111 * w.y[h];
    out.z[n] = u.z[n] + w000 * w.z[a] + w100 * w.z[b] + w010 * w.z[c] + w110 * w.z[d] + w001 * w.z[e] + w101 * w.z[f] + w011 * w.z[g] + w111 * w.z[h];
  }
  return out;
}

/**
 * exp(v): the displacement of the flow of the stationary velocity field v at time 1, by scaling and squaring
 * (u = v / 2^N, then N times u <- u + u o (id + u)). For a smooth v the result is a diffeomorphism: no folding, and
 * exp(-v) is its inverse. `steps` defaults to the fewest that bring the largest scaled velocity under 0.25 voxel.
 */
export function integrateVelocity(v: DisplacementField, steps?: number): DisplacementField {
  const m = maxDisplacement(v);
  const n = steps ?? (m > 0.25 ? Math.min(20, Math.ceil(Math.log2(m / 0.25))) : 0);
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new RangeError(`integrateVelocity: argument 'steps' must be an integer in 0..30, got ${n}`);
  let u = scaleField(v, 1 / 2 ** n);
  for (let s = 0; s < n; s++) u = composeFields(u, u);
  return u;
}

/**
 * Jacobian determinant of the map x -> x + u(x) per voxel (central differences, one-sided at the edges). It is also
 * the determinant in world space, since the voxel-to-world affine is the same on both sides.
 */
export function jacobianDeterminant(u: DisplacementField): Float32Array {
  const [nx, ny, nz] = u.shape;
  const out = new Float32Array(nx * ny * nz);
  const sy = nx, sz = nx * ny;
  // d/d(axis) of each component: central differences, one-sided at the edges.
  const diff = (c: Float32Array, n: number, at: number, len: number, stride: number): number => {
    if (len < 2) return 0;
    if (at === 0) return c[n + stride] - c[n];
    if (at === len - 1) return c[n] - c[n - stride];
    return 0.5 * (c[n + stride] - c[n - stride]);
  };
  let n = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, n++) {
    const a00 = 1 + diff(u.x, n, i, nx, 1), a01 = diff(u.x, n, j, ny, sy), a02 = diff(u.x, n, k, nz, sz);
    const a10 = diff(u.y, n, i, nx, 1), a11 = 1 + diff(u.y, n, j, ny, sy), a12 = diff(u.y, n, k, nz, sz);
    const a20 = diff(u.z, n, i, nx, 1), a21 = diff(u.z, n, j, ny, sy), a22 = 1 + diff(u.z, n, k, nz, sz);
    out[n] = a00 * (a11 * a22 - a12 * a21) - a01 * (a10 * a22 - a12 * a20) + a02 * (a10 * a21 - a11 * a20);
  }
  return out;
}
