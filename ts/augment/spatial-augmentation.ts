/**
 * SynthSeg-style spatial augmentation of a label map (BBillot/SynthSeg, ext/lab2im/layers.py RandomSpatialDeformation
 * and RandomFlip; EVALUATION.md section 2.1): a random affine transform, a random smooth diffeomorphic deformation,
 * then a left/right flip with the left/right labels swapped. Labels stay SynthSeg values; the output is on the
 * input grid (same shape and affine).
 *
 * Affine (SynthSeg's BrainGenerator defaults): T = scaling . shearing . rotation, scaling per axis U(1 - 0.2,
 * 1 + 0.2), rotation per axis U(-15, 15) degrees (R = Rx Ry Rz), the six shearing terms U(-0.012, 0.012),
 * translation off. It acts in world (RAS, mm) coordinates about the centre of the grid, as a sampling map: output
 * point p reads the input at c + T (p - c) + t (so a scaling above 1 shrinks the anatomy, as in SynthSeg); working
 * in mm keeps rotations rigid on anisotropic grids.
 * Elastic: a small velocity field of ceil(extent_mm x 0.04) control points per axis (SynthSeg: shape x nonlin_scale
 * on 1 mm maps, so 25 mm apart), values N(0, sigma^2) mm with sigma ~ U(0, 4), resized linearly to half the grid,
 * integrated by scaling and squaring, resized to the grid. SynthSeg keeps the values in voxels of whatever grid they
 * sit on; here they are mm throughout, so the strength does not depend on the label grid's voxel size.
 * The elastic displacement is applied first, then the affine; both are folded into one sampling map so the labels
 * are resampled once (one-hot linear + argmax, warp-labels.ts). The flip mirrors the voxel axis closest to world
 * left-right about the grid centre and swaps left/right labels (mirrorLabels), exactly invertible.
 */
import { affineZooms, det3, invert3 } from '../io/nifti.js';
import { checkVolume, type Triple, type Volume } from '../labels/label-volume.js';
import { MIRROR_LUT } from '../labels/synthseg-labels.js';
import type { SeededRandom } from '../random/seeded-random.js';
import { integrateVelocity, jacobianDeterminant, resizeField, zeroField, type DisplacementField } from './displacement-field.js';
import { warpLabels } from './warp-labels.js';

export interface SpatialAugmentationOptions {
  /** Scaling per axis ~ U(1 - s, 1 + s); default 0.2. */
  scalingBounds?: number;
  /** Rotation per axis ~ U(-r, r) degrees; default 15. */
  rotationBoundsDeg?: number;
  /** Each of the six shearing terms ~ U(-s, s); default 0.012. */
  shearingBounds?: number;
  /** Translation per axis ~ U(-t, t) mm; default 0 (SynthSeg: off, cropping plays that role). */
  translationBoundsMm?: number;
  /** Upper bound of the elastic field's standard deviation in mm; default 4. */
  nonlinStdMm?: number;
  /** Control points per mm of the elastic field; default 0.04. */
  nonlinScale?: number;
  /** Probability of the left/right flip; default 0.5. */
  flipProbability?: number;
  /** Apply the affine part; default true. Its parameters are drawn either way, so the other parts do not change. */
  affine?: boolean;
  /** Apply the elastic part; default true (parameters drawn either way). */
  elastic?: boolean;
}

export interface SpatialAugmentationParameters {
  scaling: Triple;
  rotationDeg: Triple;
  /** [s01, s02, s10, s12, s20, s21] of the shearing matrix. */
  shearing: number[];
  translationMm: Triple;
  /** The world-space matrix T = scaling . shearing . rotation, row-major 3x3. */
  matrix: number[][];
  /** Standard deviation drawn for the elastic field, mm. */
  nonlinStdMm: number;
  /** Shape of the small velocity field and its values (x, y, z planes along the voxel axes, mm). */
  svfShape: Triple;
  svfMm: [Float32Array, Float32Array, Float32Array];
  flip: boolean;
  affine: boolean;
  elastic: boolean;
}

const DEFAULTS = { scalingBounds: 0.2, rotationBoundsDeg: 15, shearingBounds: 0.012, translationBoundsMm: 0, nonlinStdMm: 4, nonlinScale: 0.04, flipProbability: 0.5 };

function resolveOptions(options: SpatialAugmentationOptions): Required<SpatialAugmentationOptions> {
  const o = { ...DEFAULTS, affine: true, elastic: true, ...options };
  const check = (name: keyof typeof DEFAULTS, ok: (v: number) => boolean, want: string) => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new RangeError(`spatial augmentation: option '${name}' must be ${want}, got ${v}`);
  };
  check('scalingBounds', (v) => v >= 0 && v < 1, 'in [0, 1)');
  check('rotationBoundsDeg', (v) => v >= 0 && v <= 180, 'in [0, 180] degrees');
  check('shearingBounds', (v) => v >= 0 && v < 0.5, 'in [0, 0.5)');
  check('translationBoundsMm', (v) => v >= 0, '>= 0 mm');
  check('nonlinStdMm', (v) => v >= 0, '>= 0 mm');
  check('nonlinScale', (v) => v > 0 && v <= 1, 'in (0, 1] control points per mm');
  check('flipProbability', (v) => v >= 0 && v <= 1, 'a probability in [0, 1]');
  return o;
}

function spacingOf(volume: Volume): Triple {
  const z = affineZooms(volume.affine);
  return [z[0], z[1], z[2]];
}

function matmul(a: number[][], b: number[][]): number[][] {
  return a.map((row) => [0, 1, 2].map((c) => row[0] * b[0][c] + row[1] * b[1][c] + row[2] * b[2][c]));
}

/** T = scaling . shearing . rotation (SynthSeg's sample_affine_transform order), R = Rx Ry Rz. */
export function affineMatrix(scaling: readonly number[], rotationDeg: readonly number[], shearing: readonly number[]): number[][] {
  const [ax, ay, az] = rotationDeg.map((d) => (d * Math.PI) / 180);
  const rx = [[1, 0, 0], [0, Math.cos(ax), -Math.sin(ax)], [0, Math.sin(ax), Math.cos(ax)]];
  const ry = [[Math.cos(ay), 0, Math.sin(ay)], [0, 1, 0], [-Math.sin(ay), 0, Math.cos(ay)]];
  const rz = [[Math.cos(az), -Math.sin(az), 0], [Math.sin(az), Math.cos(az), 0], [0, 0, 1]];
  const sh = [[1, shearing[0], shearing[1]], [shearing[2], 1, shearing[3]], [shearing[4], shearing[5], 1]];
  const sc = [[scaling[0], 0, 0], [0, scaling[1], 0], [0, 0, scaling[2]]];
  return matmul(matmul(sc, sh), matmul(matmul(rx, ry), rz));
}

/**
 * Draws every parameter from `rng` in a fixed order (scaling, rotation, shearing, translation, elastic sigma, elastic
 * field, flip), whatever the affine / elastic switches say, so that switching one part off leaves the others as
 * they were.
 */
export function drawSpatialAugmentation(rng: SeededRandom, volume: Volume, options: SpatialAugmentationOptions = {}): SpatialAugmentationParameters {
  checkVolume(volume, 'drawSpatialAugmentation');
  const o = resolveOptions(options);
  const scaling = [0, 1, 2].map(() => rng.uniform(1 - o.scalingBounds, 1 + o.scalingBounds)) as Triple;
  const rotationDeg = [0, 1, 2].map(() => rng.uniform(-o.rotationBoundsDeg, o.rotationBoundsDeg)) as Triple;
  const shearing = [0, 1, 2, 3, 4, 5].map(() => rng.uniform(-o.shearingBounds, o.shearingBounds));
  const translationMm = [0, 1, 2].map(() => rng.uniform(-o.translationBoundsMm, o.translationBoundsMm)) as Triple;
  const nonlinStdMm = rng.uniform(0, o.nonlinStdMm);
  const spacing = spacingOf(volume);
  const svfShape = [0, 1, 2].map((a) => Math.max(2, Math.ceil(volume.shape[a] * spacing[a] * o.nonlinScale))) as Triple;
  const count = svfShape[0] * svfShape[1] * svfShape[2];
  const svfMm = [0, 1, 2].map(() => {
    const plane = new Float32Array(count);
    for (let p = 0; p < count; p++) plane[p] = rng.normal(0, nonlinStdMm);
    return plane;
  }) as [Float32Array, Float32Array, Float32Array];
  const flip = rng.next() < o.flipProbability;
  return { scaling, rotationDeg, shearing, translationMm, matrix: affineMatrix(scaling, rotationDeg, shearing), nonlinStdMm, svfShape, svfMm, flip, affine: o.affine, elastic: o.elastic };
}

/** The elastic sampling map on the label grid (voxels): the small field in mm, resized, integrated at half size. */
export function elasticField(shape: Triple, spacing: Triple, svfShape: Triple, svfMm: readonly Float32Array[]): DisplacementField {
  const small = zeroField(svfShape);
  const comps = [small.x, small.y, small.z];
  // Values become voxels of the small grid, whose voxels span the label grid's extent.
  for (let a = 0; a < 3; a++) {
    const step = svfShape[a] > 1 ? ((shape[a] - 1) * spacing[a]) / (svfShape[a] - 1) : spacing[a];
    for (let p = 0; p < comps[a].length; p++) comps[a][p] = svfMm[a][p] / step;
  }
  const half = [0, 1, 2].map((a) => Math.max(svfShape[a], Math.floor(shape[a] / 2))) as Triple;
  return resizeField(integrateVelocity(resizeField(small, half)), shape);
}

/**
 * The combined sampling map of the affine and elastic parts (voxels of the label grid), or null when both are off
 * or the parameters make it the identity.
 */
export function spatialDeformationField(volume: Volume, params: SpatialAugmentationParameters): DisplacementField | null {
  checkVolume(volume, 'spatialDeformationField');
  const { shape } = volume;
  const spacing = spacingOf(volume);
  const elastic = params.elastic && params.nonlinStdMm > 0 ? elasticField(shape, spacing, params.svfShape, params.svfMm) : null;
  const L = volume.affine.map((r) => r.slice(0, 3));
  const Linv = invert3(L);
  const T = params.affine ? params.matrix : [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  const t = params.affine ? params.translationMm : [0, 0, 0];
  // Voxel-space form of q = c + T (p - c) + t: source = c_vox + K (x - c_vox) + L^-1 t, K = L^-1 T L.
  const K = matmul(matmul(Linv, T), L);
  const shift = [0, 1, 2].map((r) => Linv[r][0] * t[0] + Linv[r][1] * t[1] + Linv[r][2] * t[2]);
  const identity = K.every((row, r) => row.every((v, c) => v === (r === c ? 1 : 0))) && shift.every((v) => v === 0);
  if (identity && !elastic) return null;
  const centre = shape.map((n) => (n - 1) / 2);
  const out = zeroField(shape);
  const [nx, ny, nz] = shape;
  let n = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, n++) {
    const x = i + (elastic ? elastic.x[n] : 0) - centre[0];
    const y = j + (elastic ? elastic.y[n] : 0) - centre[1];
    const z = k + (elastic ? elastic.z[n] : 0) - centre[2];
    out.x[n] = centre[0] + K[0][0] * x + K[0][1] * y + K[0][2] * z + shift[0] - i;
    out.y[n] = centre[1] + K[1][0] * x + K[1][1] * y + K[1][2] * z + shift[1] - j;
    out.z[n] = centre[2] + K[2][0] * x + K[2][1] * y + K[2][2] * z + shift[2] - k;
  }
  return out;
}

/** The voxel axis closest to world left-right (largest |x| component of its affine column). */
export function leftRightAxis(volume: Volume): number {
  const a = volume.affine;
  const c = [0, 1, 2].map((col) => Math.abs(a[0][col]) / Math.hypot(a[0][col], a[1][col], a[2][col]));
  return c.indexOf(Math.max(...c));
}

/** Mirrors the label map along its left-right voxel axis about the grid centre and swaps left/right labels. */
export function flipLeftRight(volume: Volume<Uint8Array>): Volume<Uint8Array> {
  checkVolume(volume, 'flipLeftRight');
  const axis = leftRightAxis(volume);
  const [nx, ny, nz] = volume.shape;
  const strides = [1, nx, nx * ny];
  const len = volume.shape[axis];
  const src = volume.data;
  const out = new Uint8Array(src.length);
  let n = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, n++) {
    const at = [i, j, k][axis];
    const v = src[n + (len - 1 - 2 * at) * strides[axis]];
    const m = v <= 60 ? MIRROR_LUT[v] : -1;
    if (m < 0) throw new RangeError(`flipLeftRight: voxel ${n + (len - 1 - 2 * at) * strides[axis]} has value ${v}, which is not one of the 33 SynthSeg labels`);
    out[n] = m;
  }
  return { data: out, shape: [nx, ny, nz], affine: volume.affine.map((r) => r.slice()) };
}

export interface SpatialAugmentationResult {
  volume: Volume<Uint8Array>;
  parameters: SpatialAugmentationParameters;
  /** det(T) of the applied affine (1 when off): the affine alone changes every volume by 1 / det. */
  affineDeterminant: number;
  /** Range of the Jacobian determinant of the combined sampling map (1, 1 when nothing was applied). */
  minJacobian: number;
  maxJacobian: number;
}

/** Applies drawn parameters: deformation (one resampling), then the flip. */
export function applySpatialAugmentation(volume: Volume<Uint8Array>, parameters: SpatialAugmentationParameters): SpatialAugmentationResult {
  checkVolume(volume, 'applySpatialAugmentation');
  if (!(volume.data instanceof Uint8Array)) throw new TypeError(`applySpatialAugmentation: field 'volume.data' must be a Uint8Array of SynthSeg labels, got ${(volume.data as object).constructor.name}`);
  const field = spatialDeformationField(volume, parameters);
  let minJacobian = 1, maxJacobian = 1;
  let out: Volume<Uint8Array> = { data: volume.data.slice(), shape: [...volume.shape] as Triple, affine: volume.affine.map((r) => r.slice()) };
  if (field) {
    out.data = warpLabels(volume.data, volume.shape, field);
    const jac = jacobianDeterminant(field);
    minJacobian = Infinity; maxJacobian = -Infinity;
    for (let p = 0; p < jac.length; p++) { if (jac[p] < minJacobian) minJacobian = jac[p]; if (jac[p] > maxJacobian) maxJacobian = jac[p]; }
  }
  if (parameters.flip) out = flipLeftRight(out);
  return { volume: out, parameters, affineDeterminant: parameters.affine ? det3(parameters.matrix) : 1, minJacobian, maxJacobian };
}
