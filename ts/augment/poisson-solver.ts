/**
 * The Poisson equation lap(p) = f on a voxel domain with no flux through its boundary (Neumann), solved by conjugate
 * gradients with a Jacobi preconditioner on the 7-point graph Laplacian (anisotropic voxel sizes). Used to build the
 * potential flow that enlarges the ventricles (ventricle-enlargement.ts). Hand-written: npm has no sparse 3D solver
 * for typed-array grids, and the operator is a few lines.
 */
import type { Triple } from '../labels/label-volume.js';
import { forEachNeighbour6 } from '../volume/neighbours.js';

/** 6-connected components of the non-zero voxels of `mask`: component number per voxel (1..count, 0 outside). */
export function connectedComponents(mask: Uint8Array, shape: Triple): { labels: Int32Array; count: number } {
  const [nx, ny, nz] = shape;
  const labels = new Int32Array(mask.length);
  const stack = new Int32Array(mask.length);
  let count = 0;
  for (let seed = 0; seed < mask.length; seed++) {
    if (!mask[seed] || labels[seed]) continue;
    labels[seed] = ++count;
    let top = 0;
    stack[top++] = seed;
    while (top > 0) {
      forEachNeighbour6(stack[--top], nx, ny, nz, (q) => { if (mask[q] && !labels[q]) { labels[q] = count; stack[top++] = q; } });
    }
  }
  return { labels, count };
}

export interface PoissonOptions {
  /** Stop when the residual norm falls below this fraction of the right-hand side's; default 1e-4. */
  relativeTolerance?: number;
  /** Default 4000. */
  maxIterations?: number;
}

/**
 * p with lap(p) = f inside `domain` (non-zero voxels) and zero normal derivative on its boundary; p = 0 outside.
 * f must sum to zero over each connected component of the domain (otherwise no solution exists; the solver then
 * stops at maxIterations). Returns p and the iterations used.
 */
export function solveNeumannPoisson(domain: Uint8Array, f: Float64Array, shape: Triple, spacingMm: Triple, options: PoissonOptions = {}): { p: Float64Array; iterations: number; relativeResidual: number } {
  const [nx, ny, nz] = shape;
  const n = nx * ny * nz;
  const cells: number[] = [];
  for (let q = 0; q < n; q++) if (domain[q]) cells.push(q);
  const m = cells.length;
  const index = new Int32Array(n).fill(-1);
  cells.forEach((q, c) => { index[q] = c; });
  // Neighbour lists in compressed form: for cell c, neighbours nb[6c..6c+5] (-1 where absent), weights 1/h^2.
  const nb = new Int32Array(6 * m).fill(-1);
  const wAxis = spacingMm.map((h) => 1 / (h * h));
  const diag = new Float64Array(m);
  for (let c = 0; c < m; c++) {
    const q = cells[c];
    const i = q % nx, j = Math.floor(q / nx) % ny, k = Math.floor(q / (nx * ny));
    const cand = [i > 0 ? q - 1 : -1, i < nx - 1 ? q + 1 : -1, j > 0 ? q - nx : -1, j < ny - 1 ? q + nx : -1, k > 0 ? q - nx * ny : -1, k < nz - 1 ? q + nx * ny : -1];
    for (let d = 0; d < 6; d++) {
      const r = cand[d] >= 0 ? index[cand[d]] : -1;
      nb[6 * c + d] = r;
      if (r >= 0) diag[c] += wAxis[d >> 1];
    }
  }
  // A x = sum over neighbours (x_c - x_nb) / h^2 is positive semi-definite; lap(p) = f is A p = -f.
  const apply = (x: Float64Array, out: Float64Array) => {
    for (let c = 0; c < m; c++) {
      let s = diag[c] * x[c];
      for (let d = 0; d < 6; d++) { const r = nb[6 * c + d]; if (r >= 0) s -= wAxis[d >> 1] * x[r]; }
      out[c] = s;
    }
  };
  const b = new Float64Array(m);
  for (let c = 0; c < m; c++) b[c] = -f[cells[c]];
  const x = new Float64Array(m);
  const r = Float64Array.from(b);
  const z = new Float64Array(m);
  const ap = new Float64Array(m);
  const dot = (a: Float64Array, c: Float64Array) => { let s = 0; for (let t = 0; t < m; t++) s += a[t] * c[t]; return s; };
  const bNorm = Math.sqrt(dot(b, b));
  const tol = (options.relativeTolerance ?? 1e-4) * bNorm;
  const maxIterations = options.maxIterations ?? 4000;
  for (let c = 0; c < m; c++) z[c] = diag[c] > 0 ? r[c] / diag[c] : 0;
  const dir = Float64Array.from(z);
  let rz = dot(r, z);
  let iterations = 0;
  let rNorm = bNorm;
  while (rNorm > tol && iterations < maxIterations) {
    apply(dir, ap);
    const pAp = dot(dir, ap);
    if (!(pAp > 0)) break;
    const alpha = rz / pAp;
    for (let c = 0; c < m; c++) { x[c] += alpha * dir[c]; r[c] -= alpha * ap[c]; }
    for (let c = 0; c < m; c++) z[c] = diag[c] > 0 ? r[c] / diag[c] : 0;
    const rzNext = dot(r, z);
    const beta = rzNext / rz;
    rz = rzNext;
    for (let c = 0; c < m; c++) dir[c] = z[c] + beta * dir[c];
    rNorm = Math.sqrt(dot(r, r));
    iterations++;
  }
  const p = new Float64Array(n);
  for (let c = 0; c < m; c++) p[cells[c]] = x[c];
  return { p, iterations, relativeResidual: bNorm > 0 ? rNorm / bNorm : 0 };
}
