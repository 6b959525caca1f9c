/**
 * Labeled 3D volumes and the geometry operations the training pipeline needs: reorientation (axis permutation and
 * flips, as nibabel's ornt_transform / apply_orientation / inv_ornt_aff), nearest-neighbour resampling in physical
 * space, cropping around the brain, and volume measures.
 *
 * Layout: `data` is in NIfTI file order, the first index fastest: voxel (i, j, k) of shape [nx, ny, nz] is
 * data[i + nx * (j + ny * k)]; `affine` maps (i, j, k, 1) to world mm (see ts/io/nifti.ts).
 *
 * The thesis pipeline these reproduce (MONAI-COMPAT.md 1.2, EVALUATION.md 4.1): MONAI Orientation to axcodes
 * ("IPL" for LDM100K), Spacing to 1.667 x 1.75 x 1.667 mm with nearest interpolation for masks, then a crop of
 * 96 x 128 x 96 around the centre of the bounding box of non-background voxels, zero-padded.
 */
import {
  affineAxcodes, affineZooms, det3, invertAffine, multiplyAffines, orientationOfAffine, readNifti, writeNifti,
  niftiScaling, type Affine, type NiftiHeaderOverrides, type NiftiImage,
} from '../io/nifti.js';
import { VENTRICLE_LABELS } from './synthseg-labels.js';

export type LabelData = Uint8Array | Int32Array;
/** Voxel arrays the geometry operations accept (labels, and images for reorient / crop windows). */
export type VolumeData = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

export interface Volume<T extends VolumeData = VolumeData> {
  data: T;
  shape: [number, number, number];
  affine: Affine;
}

export type LabelVolume = Volume<LabelData>;

export type Triple = [number, number, number];

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function checkTriple(v: unknown, op: string, name: string, integer: boolean): asserts v is Triple {
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && (integer ? Number.isSafeInteger(x) && x >= 1 : Number.isFinite(x) && x > 0)))
    throw new RangeError(`${op}: argument '${name}' must be 3 ${integer ? 'integers >= 1' : 'positive numbers'}, got ${describe(v)}`);
}

export function checkVolume(v: unknown, op: string): asserts v is Volume {
  if (v === null || typeof v !== 'object') throw new TypeError(`${op}: argument 'volume' must be an object with data, shape and affine`);
  const { data, shape, affine } = v as Volume;
  checkTriple(shape, op, 'volume.shape', true);
  if (!ArrayBuffer.isView(data) || data instanceof DataView || data instanceof BigInt64Array || data instanceof BigUint64Array)
    throw new TypeError(`${op}: field 'volume.data' must be a typed array, got ${(data as object)?.constructor?.name ?? typeof data}`);
  const n = shape[0] * shape[1] * shape[2];
  if ((data as VolumeData).length !== n) throw new RangeError(`${op}: field 'volume.shape' [${shape.join(', ')}] has ${n} voxels but 'volume.data' has ${(data as VolumeData).length}`);
  if (!Array.isArray(affine) || affine.length !== 4 || !affine.every((r) => Array.isArray(r) && r.length === 4 && r.every(Number.isFinite)))
    throw new TypeError(`${op}: field 'volume.affine' must be a 4x4 array of finite numbers, got ${describe(affine)}`);
}

function newLike<T extends VolumeData>(data: T, length: number): T {
  return new (data.constructor as new (n: number) => T)(length);
}

// ---------------------------------------------------------------------------------------------------------------
// NIfTI glue.

/**
 * A label volume from a NIfTI image: 3D (trailing size-1 dimensions allowed), values made whole-number integers
 * (float files holding whole numbers are accepted, as SynthSeg's training maps are partly float32). uint8 data stay
 * Uint8Array; everything else becomes Int32Array.
 */
export function labelVolumeFromNifti(image: NiftiImage, source = image.source): LabelVolume {
  const shape = image.shape.slice();
  while (shape.length > 3 && shape[shape.length - 1] === 1) shape.pop();
  while (shape.length < 3) shape.push(1);
  if (shape.length !== 3) throw new RangeError(`${source}: field dim is [${image.shape.join(', ')}]; a label map must be 3D`);
  const scaling = niftiScaling(image.header, source);
  const slope = scaling?.slope ?? 1;
  const inter = scaling?.inter ?? 0;
  const src = image.data;
  let data: LabelData;
  if (src instanceof Uint8Array && slope === 1 && inter === 0) data = src;
  else if (src instanceof Int32Array && slope === 1 && inter === 0) data = src;
  else {
    data = new Int32Array(src.length);
    for (let n = 0; n < src.length; n++) {
      const v = src[n] * slope + inter;
      if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647)
        throw new RangeError(`${source}: voxel ${n} has value ${v}, a label map needs whole numbers (datatype ${image.datatypeName}${slope !== 1 || inter !== 0 ? `, scl_slope ${slope}, scl_inter ${inter}` : ''})`);
      data[n] = v;
    }
  }
  return { data, shape: shape as Triple, affine: image.affine.map((r) => r.slice()) };
}

export async function readLabelVolume(path: string): Promise<LabelVolume> {
  return labelVolumeFromNifti(await readNifti(path), path);
}

/** Writes a volume as NIfTI (sform and qform from its affine); `header` carries descrip, codes, ... */
export async function writeVolume(path: string, volume: Volume, header?: NiftiHeaderOverrides): Promise<void> {
  checkVolume(volume, 'writeVolume');
  await writeNifti(path, { data: volume.data, shape: volume.shape, affine: volume.affine, header: header ? { ...header, sclSlope: 1, sclInter: 0 } : undefined });
}

// ---------------------------------------------------------------------------------------------------------------
// Orientation.

const AXIS_LETTERS: ReadonlyArray<readonly [string, string]> = [['L', 'R'], ['P', 'A'], ['I', 'S']];

/** Orientation (world axis, direction) per voxel axis for axis codes like 'RAS', 'LIA', 'IPL' (nibabel axcodes2ornt). */
export function axcodesToOrientation(codes: string, op = 'axcodesToOrientation'): Array<[number, number]> {
  if (typeof codes !== 'string' || codes.length !== 3)
    throw new RangeError(`${op}: argument 'orientation' must be 3 letters such as 'RAS', 'LIA' or 'IPL', got ${describe(codes)}`);
  const out: Array<[number, number]> = [];
  const used = new Set<number>();
  for (const ch of codes.toUpperCase()) {
    const axis = AXIS_LETTERS.findIndex((p) => p.includes(ch));
    if (axis < 0 || used.has(axis))
      throw new RangeError(`${op}: argument 'orientation' ${JSON.stringify(codes)} must name each of the pairs L/R, P/A, I/S exactly once`);
    used.add(axis);
    out.push([axis, AXIS_LETTERS[axis][1] === ch ? 1 : -1]);
  }
  return out;
}

/** Axis codes of a volume's affine (e.g. SynthSeg's maps are 'LIA', the MNI template 'RAS'). */
export function volumeAxcodes(volume: Volume): string {
  return affineAxcodes(volume.affine);
}

/**
 * Reorients to `orientation` (e.g. 'RAS', 'LIA', 'IPL') by permuting and flipping voxel axes, as nibabel
 * (io_orientation -> ornt_transform -> apply_orientation, affine x inv_ornt_aff) and MONAI Orientation do. Values
 * are copied, never interpolated; every voxel keeps its world position.
 */
export function reorient<T extends VolumeData>(volume: Volume<T>, orientation: string): Volume<T> {
  checkVolume(volume, 'reorient');
  const start = orientationOfAffine(volume.affine);
  const end = axcodesToOrientation(orientation, 'reorient');
  // For each input axis a: the output axis it becomes and whether it is flipped (nibabel ornt_transform).
  const transform = start.map(([worldAxis, dir]) => {
    const outAxis = end.findIndex(([w]) => w === worldAxis);
    return [outAxis, end[outAxis][1] === dir ? 1 : -1] as [number, number];
  });
  const inShape = volume.shape;
  const outShape: Triple = [0, 0, 0];
  transform.forEach(([o], a) => { outShape[o] = inShape[a]; });
  // Input index i_a = flip ? n_a - 1 - o_b : o_b, with b = transform[a][0]. As a matrix: i = M o + t.
  const M: Affine = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  transform.forEach(([o, f], a) => {
    M[a][o] = f;
    M[a][3] = f < 0 ? inShape[a] - 1 : 0;
  });
  const affine = multiplyAffines(volume.affine, M);
  // Strides of the input along each output axis, and the input offset of output voxel (0, 0, 0).
  const inStride = [1, inShape[0], inShape[0] * inShape[1]];
  const step = [0, 0, 0];
  let base = 0;
  transform.forEach(([o, f], a) => {
    step[o] = f * inStride[a];
    if (f < 0) base += (inShape[a] - 1) * inStride[a];
  });
  const src = volume.data;
  const out = newLike(src, src.length);
  let n = 0;
  for (let k = 0; k < outShape[2]; k++) {
    for (let j = 0; j < outShape[1]; j++) {
      let p = base + j * step[1] + k * step[2];
      for (let i = 0; i < outShape[0]; i++, p += step[0]) out[n++] = src[p];
    }
  }
  return { data: out, shape: outShape, affine };
}

// ---------------------------------------------------------------------------------------------------------------
// Resampling.

/**
 * The grid MONAI Spacing produces for new voxel sizes: same axis directions, voxel (0, 0, 0) at the same world
 * point, shape round((n - 1) x old / new + 1) per axis (monai.data.utils.compute_shape_offset, scale_extent False).
 */
export function spacingGrid(volume: Volume, spacingMm: readonly number[]): { shape: Triple; affine: Affine } {
  checkVolume(volume, 'spacingGrid');
  checkTriple(spacingMm, 'spacingGrid', 'spacingMm', false);
  const zooms = affineZooms(volume.affine);
  const affine: Affine = volume.affine.map((r) => r.slice());
  for (let c = 0; c < 3; c++) for (let r = 0; r < 3; r++) affine[r][c] = (volume.affine[r][c] / zooms[c]) * spacingMm[c];
  const shape = [0, 1, 2].map((c) => Math.max(1, roundHalfEven((volume.shape[c] - 1) * zooms[c] / spacingMm[c] + 1))) as Triple;
  return { shape, affine };
}

/** Round half to even, as torch's grid_sample 'nearest' (std::nearbyint) does. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Nearest-neighbour resampling in physical space: every target voxel centre goes through the target affine to world
 * mm and through the inverse source affine to a source index, rounded half to even; outside the source -> 0.
 * Without `targetAffine` the target grid keeps the source's axis directions and its voxel (0, 0, 0) position, with
 * `targetSpacingMm` voxels (MONAI Spacing's placement). With `targetAffine`, its voxel sizes must equal
 * `targetSpacingMm` (within 1e-4 relative).
 */
export function resampleNearest<T extends VolumeData>(volume: Volume<T>, targetShape: readonly number[], targetSpacingMm: readonly number[], targetAffine?: Affine): Volume<T> {
  checkVolume(volume, 'resampleNearest');
  checkTriple(targetShape, 'resampleNearest', 'targetShape', true);
  checkTriple(targetSpacingMm, 'resampleNearest', 'targetSpacingMm', false);
  let T: Affine;
  if (targetAffine === undefined) {
    T = spacingGrid(volume, targetSpacingMm).affine;
  } else {
    if (!Array.isArray(targetAffine) || targetAffine.length !== 4 || !targetAffine.every((r) => Array.isArray(r) && r.length === 4 && r.every(Number.isFinite)))
      throw new TypeError(`resampleNearest: argument 'targetAffine' must be a 4x4 array of finite numbers, got ${describe(targetAffine)}`);
    const z = affineZooms(targetAffine);
    z.forEach((v, c) => {
      if (Math.abs(v - targetSpacingMm[c]) > 1e-4 * targetSpacingMm[c])
        throw new RangeError(`resampleNearest: argument 'targetAffine' has voxel size ${v} mm on axis ${c}, but 'targetSpacingMm' says ${targetSpacingMm[c]}`);
    });
    T = targetAffine.map((r) => r.slice());
  }
  // Source index of target voxel (i, j, k): M x (i, j, k, 1).
  const M = multiplyAffines(invertAffine(volume.affine), T);
  const [nx, ny, nz] = volume.shape;
  const [tx, ty, tz] = targetShape;
  const src = volume.data;
  const out = newLike(src, tx * ty * tz);
  let n = 0;
  for (let k = 0; k < tz; k++) {
    for (let j = 0; j < ty; j++) {
      const bx = M[0][1] * j + M[0][2] * k + M[0][3];
      const by = M[1][1] * j + M[1][2] * k + M[1][3];
      const bz = M[2][1] * j + M[2][2] * k + M[2][3];
      for (let i = 0; i < tx; i++, n++) {
        const x = roundHalfEven(bx + M[0][0] * i);
        const y = roundHalfEven(by + M[1][0] * i);
        const z = roundHalfEven(bz + M[2][0] * i);
        if (x >= 0 && x < nx && y >= 0 && y < ny && z >= 0 && z < nz) out[n] = src[x + nx * (y + ny * z)];
      }
    }
  }
  return { data: out, shape: [tx, ty, tz], affine: T };
}

// ---------------------------------------------------------------------------------------------------------------
// Cropping.

/**
 * Inclusive bounding box of non-zero voxels (ignoring the values in `exclude`), or null when there is none.
 */
export function nonZeroBox(volume: Volume, exclude: readonly number[] = []): { min: Triple; max: Triple } | null {
  checkVolume(volume, 'nonZeroBox');
  const [nx, ny, nz] = volume.shape;
  const min: Triple = [nx, ny, nz];
  const max: Triple = [-1, -1, -1];
  const d = volume.data;
  const skip = new Set<number>([0, ...exclude]);
  const simple = exclude.length === 0;
  let n = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, n++) {
    const v = d[n];
    if (simple ? v !== 0 : !skip.has(v)) {
      if (i < min[0]) min[0] = i;
      if (i > max[0]) max[0] = i;
      if (j < min[1]) min[1] = j;
      if (j > max[1]) max[1] = j;
      if (k < min[2]) min[2] = k;
      if (k > max[2]) max[2] = k;
    }
  }
  return max[0] < 0 ? null : { min, max };
}

export interface BrainCropOptions {
  /**
   * Label values left out when finding the box to centre on (they are still copied). Default none. The SynthSeg
   * training maps label CSF (24) down the spinal canal, 216 mm inferior-superior in training_seg_01; centring on a
   * box that includes it moves a 160 mm crop down and cuts off the top of the cortex, so prepareLabelMap excludes 24.
   */
  exclude?: readonly number[];
}

/**
 * Start index of a `shape` window centred on the bounding box of non-zero voxels. Centre = min + floor((max - min)
 * / 2) (the thesis' crop_around_mask_center), start = centre - floor(shape / 2); may be negative or run past the
 * end (the window is then zero-padded, not shifted).
 */
export function brainCropStart(volume: Volume, shape: readonly number[], options: BrainCropOptions = {}): Triple {
  checkTriple(shape, 'brainCropStart', 'shape', true);
  const exclude = options.exclude ?? [];
  if (!Array.isArray(exclude) || !exclude.every(Number.isFinite)) throw new TypeError(`brainCropStart: option 'exclude' must be an array of label values, got ${describe(exclude)}`);
  const box = nonZeroBox(volume, exclude);
  if (!box) throw new RangeError(`brainCropStart: the volume has no non-zero voxel${exclude.length ? ` outside labels ${exclude.join(', ')}` : ''}, so there is no brain to centre on`);
  return [0, 1, 2].map((a) => box.min[a] + Math.floor((box.max[a] - box.min[a]) / 2) - Math.floor(shape[a] / 2)) as Triple;
}

/**
 * The `shape` window starting at voxel `start` (may lie partly outside: zero-padded there); the affine is shifted
 * so every copied voxel keeps its world position.
 */
export function cropWindow<T extends VolumeData>(volume: Volume<T>, start: readonly number[], shape: readonly number[]): Volume<T> {
  checkVolume(volume, 'cropWindow');
  checkTriple(shape, 'cropWindow', 'shape', true);
  if (!Array.isArray(start) || start.length !== 3 || !start.every(Number.isSafeInteger))
    throw new RangeError(`cropWindow: argument 'start' must be 3 integers, got ${describe(start)}`);
  const [nx, ny, nz] = volume.shape;
  const [sx, sy, sz] = shape;
  const src = volume.data;
  const out = newLike(src, sx * sy * sz);
  const i0 = Math.max(0, -start[0]);
  const i1 = Math.min(sx, nx - start[0]);
  for (let k = 0; k < sz; k++) {
    const z = start[2] + k;
    if (z < 0 || z >= nz) continue;
    for (let j = 0; j < sy; j++) {
      const y = start[1] + j;
      if (y < 0 || y >= ny) continue;
      if (i1 <= i0) continue;
      const from = start[0] + i0 + nx * (y + ny * z);
      out.set(src.subarray(from, from + (i1 - i0)), i0 + sx * (j + sy * k));
    }
  }
  const a = volume.affine;
  const affine: Affine = a.map((r) => r.slice());
  for (let r = 0; r < 3; r++) affine[r][3] = a[r][0] * start[0] + a[r][1] * start[1] + a[r][2] * start[2] + a[r][3];
  return { data: out, shape: [sx, sy, sz], affine };
}

/** Crops (and zero-pads) to `shape` centred on the bounding box of non-zero labels; see brainCropStart. */
export function cropAroundBrain<T extends VolumeData>(volume: Volume<T>, shape: readonly number[], options: BrainCropOptions = {}): Volume<T> {
  checkVolume(volume, 'cropAroundBrain');
  return cropWindow(volume, brainCropStart(volume, shape, options), shape);
}

// ---------------------------------------------------------------------------------------------------------------
// Measures.

/** Voxel volume in mm^3: |det| of the affine's 3x3 part. */
export function voxelVolumeMm3(affine: Affine): number {
  return Math.abs(det3(affine));
}

/** Voxel count per label value (ascending by label). */
export function labelCounts(volume: Volume): Map<number, number> {
  checkVolume(volume, 'labelCounts');
  const d = volume.data;
  const small = new Float64Array(1024);
  const big = new Map<number, number>();
  for (let n = 0; n < d.length; n++) {
    const v = d[n];
    if (v >= 0 && v < 1024 && Number.isInteger(v)) small[v]++;
    else big.set(v, (big.get(v) ?? 0) + 1);
  }
  for (let v = 0; v < 1024; v++) if (small[v] > 0) big.set(v, small[v]);
  return new Map([...big.entries()].sort((a, b) => a[0] - b[0]));
}

/** Voxels whose label is in `labels`. */
export function countLabels(volume: Volume, labels: readonly number[]): number {
  checkVolume(volume, 'countLabels');
  const want = new Set(labels);
  const d = volume.data;
  let c = 0;
  if (labels.every((l) => Number.isInteger(l) && l >= 0 && l < 1024)) {
    const lut = new Uint8Array(1024);
    for (const l of labels) lut[l] = 1;
    for (let n = 0; n < d.length; n++) { const v = d[n]; if (v >= 0 && v < 1024 && lut[v]) c++; }
  } else {
    for (let n = 0; n < d.length; n++) if (want.has(d[n])) c++;
  }
  return c;
}

/** Ventricle volume in mL: voxels of labels 4, 5, 43, 44, 14, 15 times the voxel volume (|det affine| mm^3). */
export function ventricleVolumeMl(volume: Volume): number {
  return (countLabels(volume, VENTRICLE_LABELS) * voxelVolumeMm3(volume.affine)) / 1000;
}

/**
 * Intracranial volume in mL: every non-zero voxel times the voxel volume. Meaningful on SynthSeg-labelled volumes
 * (after mapToSynthSeg, where the extra-cerebral 5xx labels are background), as SynthSeg's "total intracranial".
 */
export function intracranialVolumeMl(volume: Volume): number {
  checkVolume(volume, 'intracranialVolumeMl');
  const d = volume.data;
  let c = 0;
  for (let n = 0; n < d.length; n++) if (d[n] !== 0) c++;
  return (c * voxelVolumeMm3(volume.affine)) / 1000;
}
