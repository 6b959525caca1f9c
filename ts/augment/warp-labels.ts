/**
 * Resampling a label map through a displacement field without nearest-neighbour staircase: each label is treated
 * as a one-hot channel, interpolated trilinearly, and the label with the largest weight wins (the one-hot + linear +
 * argmax scheme; it keeps thin structures that nearest sampling breaks up). Outside the grid counts as label 0.
 */
import type { Triple } from '../labels/label-volume.js';
import type { DisplacementField } from './displacement-field.js';

/** Inclusive voxel box [min, max] per axis. */
export interface VoxelBox { min: Triple; max: Triple }

function checkShapes(op: string, labels: Uint8Array, shape: Triple, u: DisplacementField): void {
  const [nx, ny, nz] = shape;
  if (labels.length !== nx * ny * nz) throw new RangeError(`${op}: 'labels' has ${labels.length} voxels, shape [${shape.join(', ')}] needs ${nx * ny * nz}`);
  if (u.shape[0] !== nx || u.shape[1] !== ny || u.shape[2] !== nz) throw new RangeError(`${op}: field shape [${u.shape.join(', ')}] differs from the label shape [${shape.join(', ')}]`);
}

/**
 * Argmax label of the trilinear one-hot weights at (px, py, pz). Ties go to the first neighbour in (i, j, k) order
 * with that weight, so a zero or whole-voxel displacement copies labels exactly. `lab` and `w` are scratch (8).
 */
function labelAt(labels: Uint8Array, nx: number, ny: number, nz: number, px: number, py: number, pz: number, lab: Int32Array, w: Float64Array): number {
  const i0 = Math.floor(px), j0 = Math.floor(py), k0 = Math.floor(pz);
  const fx = px - i0, fy = py - j0, fz = pz - k0;
  const inside = i0 >= 0 && j0 >= 0 && k0 >= 0 && i0 + 1 < nx && j0 + 1 < ny && k0 + 1 < nz;
  if (inside) {
    // Most voxels sit inside one structure: all eight neighbours agree and no weights are needed.
    const p = i0 + nx * (j0 + ny * k0);
    const sy = nx, sz = nx * ny;
    const l = labels[p];
    if (labels[p + 1] === l && labels[p + sy] === l && labels[p + sy + 1] === l && labels[p + sz] === l
      && labels[p + sz + 1] === l && labels[p + sz + sy] === l && labels[p + sz + sy + 1] === l) return l;
  }
  let c = 0;
  for (let dz = 0; dz < 2; dz++) {
    const z = k0 + dz;
    const wz = dz ? fz : 1 - fz;
    for (let dy = 0; dy < 2; dy++) {
      const y = j0 + dy;
      const wy = dy ? fy : 1 - fy;
      for (let dx = 0; dx < 2; dx++, c++) {
        const x = i0 + dx;
        w[c] = (dx ? fx : 1 - fx) * wy * wz;
        lab[c] = x >= 0 && x < nx && y >= 0 && y < ny && z >= 0 && z < nz ? labels[x + nx * (y + ny * z)] : 0;
      }
    }
  }
  let best = lab[0];
  let bestW = -1;
  for (let a = 0; a < 8; a++) {
    if (w[a] === 0) continue;
    const l = lab[a];
    let s = 0;
    for (let b = 0; b < 8; b++) if (lab[b] === l) s += w[b];
    if (s > bestW) { bestW = s; best = l; }
  }
  return best;
}

/** The label map seen through `u`: output voxel x gets the argmax label of the one-hot weights at x + u(x). */
export function warpLabels(labels: Uint8Array, shape: Triple, u: DisplacementField): Uint8Array {
  checkShapes('warpLabels', labels, shape, u);
  const [nx, ny, nz] = shape;
  const out = new Uint8Array(labels.length);
  const lab = new Int32Array(8);
  const w = new Float64Array(8);
  let n = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, n++)
    out[n] = labelAt(labels, nx, ny, nz, i + u.x[n], j + u.y[n], k + u.z[n], lab, w);
  return out;
}

/**
 * How many voxels of `box` would warpLabels give a label whose `wanted` entry (a 256-entry table) is non-zero;
 * the same numbers as warping and counting, without warping the rest of the grid.
 */
export function countWarpedLabels(labels: Uint8Array, shape: Triple, u: DisplacementField, wanted: Uint8Array, box: VoxelBox): number {
  checkShapes('countWarpedLabels', labels, shape, u);
  const [nx, ny, nz] = shape;
  const lab = new Int32Array(8);
  const w = new Float64Array(8);
  let count = 0;
  for (let k = Math.max(0, box.min[2]); k <= Math.min(nz - 1, box.max[2]); k++)
    for (let j = Math.max(0, box.min[1]); j <= Math.min(ny - 1, box.max[1]); j++)
      for (let i = Math.max(0, box.min[0]); i <= Math.min(nx - 1, box.max[0]); i++) {
        const n = i + nx * (j + ny * k);
        if (wanted[labelAt(labels, nx, ny, nz, i + u.x[n], j + u.y[n], k + u.z[n], lab, w)]) count++;
      }
  return count;
}
