/**
 * Simulated ventriculomegaly (hydrocephalus): grows the ventricles (labels 4, 5, 43, 44, 14, 15) of a SynthSeg label
 * map by a chosen volume factor with a smooth, invertible deformation that pushes the surrounding tissue outward,
 * compresses the parenchyma rather than tearing it, and leaves the outer brain boundary in place, so the
 * intracranial volume stays about the same (in hydrocephalus the parenchyma is compressed; the skull does not grow).
 *
 * The deformation is the flow of a potential velocity field v = grad p, integrated by scaling and squaring (a
 * diffeomorphism: no folding, topology kept). p solves lap p = div v = f in the brain (the non-zero labels) with no
 * flux through its boundary:
 *   - f = 1 in the ventricles: they expand at the same relative rate everywhere (temporal horns and the 4th ventricle
 *     included), each from within;
 *   - f = -c w in the parenchyma, w = dB / (dB + dV) (dV distance to the ventricles, dB to the background): the
 *     tissue takes up the growth by a compression that is strongest next to the ventricles and vanishes at the brain
 *     surface; c balances the source per connected piece of brain, so the boundary gets no net flux.
 * A potential flow moves tissue between two ventricles (septum, the fornix, the caudate in the ventricle's
 * concavity) with the ventricles instead of crushing it, which an outward push along the surface normal would do.
 * v is tapered to 0 over the last two coarse voxels inside the boundary, where it is nearly tangential anyway.
 * p is solved on a coarse grid (about `coarseMm` voxels; the field is smooth on that scale), v is integrated there
 * and the displacement resized to the label grid. The flow time a (v's amplitude) is searched (regula falsi on log
 * volume) until the ventricle volume of the warped labels is within `tolerance` of the requested factor. Labels
 * are warped by one-hot linear interpolation + argmax (warp-labels.ts).
 */
import { affineZooms } from '../io/nifti.js';
import { checkVolume, countLabels, intracranialVolumeMl, nonZeroBox, voxelVolumeMm3, type Triple, type Volume } from '../labels/label-volume.js';
import { VENTRICLE_LABELS } from '../labels/synthseg-labels.js';
import { distanceTransform } from './distance-transform.js';
import { integrateVelocity, jacobianDeterminant, maxDisplacement, resizeField, scaleField, zeroField, type DisplacementField } from './displacement-field.js';
import { averageDown } from '../volume/axis-resampling.js';
import { connectedComponents, solveNeumannPoisson } from './poisson-solver.js';
import { countWarpedLabels, warpLabels } from './warp-labels.js';

export interface VentricleEnlargementOptions {
  /** Accepted relative error of the achieved volume factor; default 0.02. */
  tolerance?: number;
  /** Voxel size (mm) of the coarse grid the flow is computed on; default 3. */
  coarseMm?: number;
  /** Most label counts the flow-time search may try; default 24. */
  maxEvaluations?: number;
}

export interface VentricleEnlargementResult {
  volume: Volume<Uint8Array>;
  factorRequested: number;
  /** ventricleMlAfter / ventricleMlBefore. */
  factorAchieved: number;
  ventricleMlBefore: number;
  ventricleMlAfter: number;
  icvMlBefore: number;
  icvMlAfter: number;
  /** Flow time of the unit-source velocity field (about ln of the factor, a bit more); 0 for factor 1. */
  flowTime: number;
  /** Largest displacement of the sampling map, mm. */
  maxDisplacementMm: number;
  /** Smallest Jacobian determinant of the sampling map on the label grid (1 for factor 1). */
  minJacobian: number;
  /** Label counts the flow-time search used. */
  evaluations: number;
  /** The sampling map (output voxel x reads the input at x + field(x)), in voxels of the label grid. */
  field: DisplacementField;
}

export const MAX_VENTRICLE_FACTOR = 3;

const IS_VENTRICLE = (() => {
  const t = new Uint8Array(256);
  for (const l of VENTRICLE_LABELS) t[l] = 1;
  return t;
})();

function spacingOf(volume: Volume): Triple {
  const z = affineZooms(volume.affine);
  return [z[0], z[1], z[2]];
}

/** The coarse grid over the same extent as `shape`: about `coarseMm` voxels, at least 2 per axis. */
export function coarseGrid(shape: Triple, spacing: Triple, coarseMm: number): { shape: Triple; spacingMm: Triple } {
  const coarse = [0, 1, 2].map((a) => Math.max(2, Math.round(((shape[a] - 1) * spacing[a]) / coarseMm) + 1)) as Triple;
  return { shape: coarse, spacingMm: [0, 1, 2].map((a) => ((shape[a] - 1) * spacing[a]) / (coarse[a] - 1)) as Triple };
}

/**
 * The ventricle-expanding velocity field with unit source rate, on the coarse grid, in coarse voxels per unit time
 * (see the file comment).
 */
export function ventricleFlowField(volume: Volume<Uint8Array>, coarseMm = 3): DisplacementField {
  checkVolume(volume, 'ventricleFlowField');
  const spacing = spacingOf(volume);
  const grid = coarseGrid(volume.shape, spacing, coarseMm);
  const shape = grid.shape;
  const h = grid.spacingMm;
  const fineVentricle = new Float32Array(volume.data.length);
  const fineBrain = new Float32Array(volume.data.length);
  for (let p = 0; p < volume.data.length; p++) {
    fineVentricle[p] = IS_VENTRICLE[volume.data[p]];
    fineBrain[p] = volume.data[p] !== 0 ? 1 : 0;
  }
  const ventricle = averageDown(fineVentricle, volume.shape, shape);
  const brain = averageDown(fineBrain, volume.shape, shape);
  const n = ventricle.length;
  const domain = new Uint8Array(n);
  const source = new Uint8Array(n);
  const outside = new Uint8Array(n);
  for (let q = 0; q < n; q++) {
    domain[q] = brain[q] >= 0.5 || ventricle[q] > 0 ? 1 : 0;
    source[q] = ventricle[q] > 0 ? 1 : 0;
    outside[q] = 1 - domain[q];
  }
  const dV = distanceTransform(source, shape, h);
  const dB = distanceTransform(outside, shape, h);
  const { labels: piece, count } = connectedComponents(domain, shape);
  // Balance source and sink within each connected piece of brain; pieces without ventricle do not move.
  const sourceSum = new Float64Array(count + 1);
  const sinkSum = new Float64Array(count + 1);
  const sink = new Float64Array(n);
  for (let q = 0; q < n; q++) {
    if (!domain[q]) continue;
    sink[q] = (dB[q] / (dB[q] + dV[q])) * (1 - ventricle[q]);
    sourceSum[piece[q]] += ventricle[q];
    sinkSum[piece[q]] += sink[q];
  }
  const f = new Float64Array(n);
  const flowDomain = new Uint8Array(n);
  for (let q = 0; q < n; q++) {
    const c = piece[q];
    if (!domain[q] || !(sourceSum[c] > 0) || !(sinkSum[c] > 0)) continue;
    flowDomain[q] = 1;
    f[q] = ventricle[q] - (sourceSum[c] / sinkSum[c]) * sink[q];
  }
  const { p } = solveNeumannPoisson(flowDomain, f, shape, h);
  const [nx, ny, nz] = shape;
  const strides = [1, nx, nx * ny];
  const field = zeroField(shape);
  const comps = [field.x, field.y, field.z];
  const taperMm = 2 * Math.max(...h);
  let q = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, q++) {
    if (!flowDomain[q]) continue;
    const taper = Math.min(1, Math.max(0, (dB[q] - 0.5 * Math.min(...h)) / taperMm));
    const idx = [i, j, k];
    for (let a = 0; a < 3; a++) {
      // No flux through the boundary: a neighbour outside the domain counts as having this cell's potential.
      const lo = idx[a] > 0 && flowDomain[q - strides[a]] ? q - strides[a] : q;
      const hi = idx[a] < shape[a] - 1 && flowDomain[q + strides[a]] ? q + strides[a] : q;
      const d = ((hi - lo) / strides[a]) * h[a];
      comps[a][q] = d > 0 ? (taper * (p[hi] - p[lo])) / d / h[a] : 0;
    }
  }
  return field;
}

export interface VentricleEnlarger {
  /** The label map with the ventricles grown by `factor` (1..3) in volume, within `tolerance`; factor 1 is an exact copy. */
  enlarge(factor: number, tolerance?: number): VentricleEnlargementResult;
}

/**
 * Prepares one label map for any number of enlargements: the flow field (the costly part) is built on first use
 * and kept. Deterministic: the same map, options and factor give the same bytes.
 */
export function createVentricleEnlarger(volume: Volume<Uint8Array>, options: Omit<VentricleEnlargementOptions, 'tolerance'> = {}): VentricleEnlarger {
  const op = 'enlargeVentricles';
  checkVolume(volume, op);
  if (!(volume.data instanceof Uint8Array)) throw new TypeError(`${op}: field 'volume.data' must be a Uint8Array of SynthSeg labels, got ${(volume.data as object).constructor.name}`);
  const coarseMm = options.coarseMm ?? 3;
  if (!(coarseMm > 0 && Number.isFinite(coarseMm))) throw new RangeError(`${op}: option 'coarseMm' must be a positive number, got ${coarseMm}`);
  const maxEvaluations = options.maxEvaluations ?? 24;
  if (!Number.isInteger(maxEvaluations) || maxEvaluations < 1) throw new RangeError(`${op}: option 'maxEvaluations' must be a positive integer, got ${maxEvaluations}`);
  const { shape } = volume;
  const spacing = spacingOf(volume);
  const voxelMl = voxelVolumeMm3(volume.affine) / 1000;
  const before = countLabels(volume, VENTRICLE_LABELS);
  const icvMlBefore = intracranialVolumeMl(volume);
  const ventricleBox = nonZeroBox({ data: volume.data.map((l) => IS_VENTRICLE[l]), shape, affine: volume.affine });
  let flow: DisplacementField | null = null;
  const copy = (data: Uint8Array): Volume<Uint8Array> => ({ data, shape: [...shape] as Triple, affine: volume.affine.map((r) => r.slice()) });

  return {
    enlarge(factor: number, tolerance = 0.02): VentricleEnlargementResult {
      if (typeof factor !== 'number' || !(factor >= 1 && factor <= MAX_VENTRICLE_FACTOR))
        throw new RangeError(`${op}: argument 'factor' must be a number in 1..${MAX_VENTRICLE_FACTOR} (ventricle volume after / before), got ${factor}`);
      if (typeof tolerance !== 'number' || !(tolerance > 0 && tolerance < 0.5)) throw new RangeError(`${op}: option 'tolerance' must be in (0, 0.5), got ${tolerance}`);
      if (factor === 1) {
        return {
          volume: copy(volume.data.slice()), factorRequested: 1, factorAchieved: 1, ventricleMlBefore: before * voxelMl, ventricleMlAfter: before * voxelMl,
          icvMlBefore, icvMlAfter: icvMlBefore, flowTime: 0, maxDisplacementMm: 0, minJacobian: 1, evaluations: 0, field: zeroField(shape),
        };
      }
      if (before === 0 || !ventricleBox) throw new RangeError(`${op}: the label map has no ventricle voxel (labels ${VENTRICLE_LABELS.join(', ')}), so there is nothing to enlarge`);
      flow ??= ventricleFlowField(volume, coarseMm);
      const unit = flow;
      let evaluations = 0;
      const evaluate = (time: number) => {
        evaluations++;
        // The sampling map is the inverse flow: exp(-a v) pulls each voxel's label from nearer the ventricles.
        const field = resizeField(integrateVelocity(scaleField(unit, -time)), shape);
        // Only voxels within reach of the ventricles (largest displacement + 1 voxel) can turn into ventricle.
        const reach = Math.ceil(maxDisplacement(field)) + 1;
        const box = { min: ventricleBox.min.map((v) => v - reach) as Triple, max: ventricleBox.max.map((v) => v + reach) as Triple };
        return { time, field, ratio: countWarpedLabels(volume.data, shape, field, IS_VENTRICLE, box) / before };
      };
      type Trial = ReturnType<typeof evaluate>;
      const error = (t: { ratio: number }) => Math.log(t.ratio / factor);
      const within = (t: { ratio: number }) => Math.abs(t.ratio / factor - 1) <= tolerance;
      // Secant steps on log(volume ratio) against flow time, kept inside the bracket found so far (regula falsi with
      // bisection as fallback). First guess 2 ln(factor): a unit source would need ln(factor) if the ventricle walls
      // stayed in the source region; they move out of it, and on the SynthSeg maps about twice that is needed.
      let lo: { time: number; ratio: number } = { time: 0, ratio: 1 };
      let hi: Trial | null = null;
      let best: Trial | null = null;
      let prev: { time: number; ratio: number } = lo;
      let next = 2 * Math.log(factor);
      while (evaluations < maxEvaluations) {
        const t = evaluate(next);
        if (!best || Math.abs(error(t)) < Math.abs(error(best))) best = t;
        if (within(t)) break;
        if (t.ratio > factor) hi = t;
        else lo = t;
        const slope = (error(t) - error(prev)) / (t.time - prev.time);
        let guess = slope > 0 ? t.time - error(t) / slope : Number.NaN;
        prev = t;
        if (hi) {
          const span = hi.time - lo.time;
          if (!(guess > lo.time + 0.05 * span && guess < hi.time - 0.05 * span)) guess = lo.time + 0.5 * span;
        } else if (!(guess > lo.time)) guess = 2 * lo.time;
        next = Math.min(guess, 4 * Math.max(lo.time, 0.1));
      }
      const chosen = best as Trial | null;
      if (!chosen || !within(chosen))
        throw new RangeError(`${op}: could not reach a ventricle volume factor of ${factor} within ${(100 * tolerance).toFixed(1)}% in ${evaluations} tries (closest ${chosen ? chosen.ratio.toFixed(3) : 'none'})`);
      const out = copy(warpLabels(volume.data, shape, chosen.field));
      const after = countLabels(out, VENTRICLE_LABELS);
      const jac = jacobianDeterminant(chosen.field);
      let minJacobian = Infinity;
      for (let p = 0; p < jac.length; p++) if (jac[p] < minJacobian) minJacobian = jac[p];
      let maxMm = 0;
      const u = chosen.field;
      for (let p = 0; p < u.x.length; p++) maxMm = Math.max(maxMm, Math.hypot(u.x[p] * spacing[0], u.y[p] * spacing[1], u.z[p] * spacing[2]));
      return {
        volume: out, factorRequested: factor, factorAchieved: after / before,
        ventricleMlBefore: before * voxelMl, ventricleMlAfter: after * voxelMl, icvMlBefore, icvMlAfter: intracranialVolumeMl(out),
        flowTime: chosen.time, maxDisplacementMm: maxMm, minJacobian, evaluations, field: chosen.field,
      };
    },
  };
}

/** One enlargement (see createVentricleEnlarger; use that to enlarge one map several times). */
export function enlargeVentricles(volume: Volume<Uint8Array>, factor: number, options: VentricleEnlargementOptions = {}): VentricleEnlargementResult {
  const { tolerance, ...rest } = options;
  return createVentricleEnlarger(volume, rest).enlarge(factor, tolerance);
}
