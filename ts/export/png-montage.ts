/**
 * A quick-look PNG of a generated pair: axial, coronal and sagittal planes through one point, side by side (in that
 * order, vertically centred, `gap` black pixels apart), the image in grey with the labels over it in FreeSurfer's
 * colours.
 *
 * Orientation comes from the affine, not the voxel order: each voxel axis is matched to its closest world axis
 * (nibabel io_orientation, `orientationOfAffine`), so an LIA, IPL or RAS grid of the same head gives the same picture.
 * Oblique grids are shown along those closest axes without resampling, as viewers do in voxel mode. Display:
 *   axial      superior view from below: anterior at the top;
 *   coronal    superior at the top;
 *   sagittal   superior at the top, anterior on the left;
 *   left/right radiological convention (default; patient's right on the image's left, as radiology viewers and
 *              ITK-SNAP show it) or neurological (patient's left on the left, as FreeView and nilearn).
 * Physical aspect: every panel uses the same mm per pixel, the smallest voxel spacing divided by `scale`.
 */
import { writeFileAtomically } from '../io/atomic-write.js';
import { affineZooms, applyAffine, invertAffine, orientationOfAffine } from '../io/nifti.js';
import { checkVolume, type Triple, type Volume, type VolumeData } from '../labels/label-volume.js';
import { VENTRICLE_LABELS } from '../labels/synthseg-labels.js';
import { FREESURFER_COLORS } from './freesurfer-colors.js';
import { encodePngRgb } from './png-encode.js';

export type DisplayConvention = 'radiological' | 'neurological';

export interface MontageOptions {
  /** The point the three planes pass through, in world mm (the affine's space). */
  centerMm?: readonly number[];
  /** ... or as a voxel index (i, j, k) of the input grid. Default: the centroid of the ventricle labels
   * (4, 5, 43, 44, 14, 15) when labels are given and hold any, else the centre voxel. */
  centerVoxel?: readonly number[];
  /** Pixels per smallest voxel spacing (default 1; 2 doubles the size). */
  scale?: number;
  /** Label overlay opacity in [0, 1] (default 0.4; 0 shows only the image). */
  opacity?: number;
  /** Image values mapped to black and white (default [0, 1], the generator's range). */
  window?: readonly [number, number];
  /** Left/right display convention (default 'radiological'). */
  convention?: DisplayConvention;
  /** Black pixels between panels (default 2). */
  gap?: number;
}

/** Where things landed: for callers that annotate the montage, and for tests. */
export interface MontageLayout {
  width: number;
  height: number;
  /** Voxel (i, j, k) of the input grid the planes pass through. */
  centerVoxel: Triple;
  panels: Array<{ plane: 'axial' | 'coronal' | 'sagittal'; x: number; y: number; width: number; height: number }>;
}

const DEFAULT_OPACITY = 0.4;
const DEFAULT_GAP = 2;

/** Renders the montage and returns the PNG bytes. */
export function renderMontage(image: Volume, labels: Volume | null, options: MontageOptions = {}): Uint8Array {
  const { width, height, rgb } = renderMontageRgb(image, labels, options);
  return encodePngRgb(width, height, rgb);
}

/** Renders the montage and writes it to `path` (.png) atomically. */
export async function writeMontagePng(path: string, image: Volume, labels: Volume | null, options: MontageOptions = {}): Promise<MontageLayout> {
  if (typeof path !== 'string' || !/\.png$/i.test(path)) throw new TypeError(`writeMontagePng: argument 'path' must end in .png, got ${JSON.stringify(path)}`);
  const { rgb, ...layout } = renderMontageRgb(image, labels, options);
  await writeFileAtomically(path, [encodePngRgb(layout.width, layout.height, rgb)]);
  return layout;
}

/** The montage as raw RGB (rows top to bottom) plus its layout. */
export function renderMontageRgb(image: Volume, labels: Volume | null, options: MontageOptions = {}): MontageLayout & { rgb: Uint8Array } {
  const op = 'renderMontage';
  checkVolume(image, `${op}: image`);
  if (labels !== null) checkLabels(image, labels, op);
  const o = checkOptions(options, op);

  // World axis w (0 = L->R, 1 = P->A, 2 = I->S): which voxel axis runs along it, and in which direction.
  const orientation = orientationOfAffine(image.affine);
  const zooms = affineZooms(image.affine);
  const axisOf: Triple = [0, 0, 0];
  const dirOf: Triple = [1, 1, 1];
  orientation.forEach(([w, dir], a) => { axisOf[w] = a; dirOf[w] = dir; });
  const strides = [1, image.shape[0], image.shape[0] * image.shape[1]];
  const n = [0, 1, 2].map((w) => image.shape[axisOf[w]]);
  const spacing = [0, 1, 2].map((w) => zooms[axisOf[w]]);
  const pitch = Math.min(...zooms) / o.scale;

  if (o.centerVoxel && o.centerVoxel.some((v, a) => v < 0 || v >= image.shape[a]))
    throw new RangeError(`${op}: option 'centerVoxel' [${o.centerVoxel.join(', ')}] is outside the volume [${image.shape.join(', ')}]`);
  const center = o.centerVoxel ?? (o.centerMm ? voxelOfWorld(image, o.centerMm, op) : (labels && ventricleCentroid(labels)) ?? image.shape.map((s) => Math.floor(s / 2)) as Triple);
  // Position along each world axis, counted from the L, P and I ends.
  const u = [0, 1, 2].map((w) => (dirOf[w] > 0 ? center[axisOf[w]] : n[w] - 1 - center[axisOf[w]]));
  // Voxel offset of the (L/P/I-counted) position p along world axis w.
  const offset = (w: number, p: number) => (dirOf[w] > 0 ? p : n[w] - 1 - p) * strides[axisOf[w]];

  // Each panel: fixed world axis, then the world axes across (left to right) and down (top to bottom), and
  // whether counting from the L/P/I end runs against the screen direction.
  const rightToLeft = o.convention === 'radiological';
  const planes = [
    { plane: 'axial' as const, fixed: 2, across: 0, acrossFlip: rightToLeft, down: 1, downFlip: true },
    { plane: 'coronal' as const, fixed: 1, across: 0, acrossFlip: rightToLeft, down: 2, downFlip: true },
    { plane: 'sagittal' as const, fixed: 0, across: 1, acrossFlip: true, down: 2, downFlip: true },
  ].map((p) => ({ ...p, width: pixels(n[p.across], spacing[p.across], pitch), height: pixels(n[p.down], spacing[p.down], pitch) }));

  const height = Math.max(...planes.map((p) => p.height));
  const width = planes.reduce((s, p) => s + p.width, 0) + o.gap * (planes.length - 1);
  const rgb = new Uint8Array(width * height * 3);
  const grey = greyLut(o.window);
  const colors = overlayColors(o.opacity);
  const panels: MontageLayout['panels'] = [];
  let x0 = 0;
  for (const p of planes) {
    const y0 = Math.floor((height - p.height) / 2);
    panels.push({ plane: p.plane, x: x0, y: y0, width: p.width, height: p.height });
    const base = offset(p.fixed, u[p.fixed]);
    const acrossOffsets = Int32Array.from({ length: p.width }, (_, c) => offset(p.across, sample(c, p.width, n[p.across], p.acrossFlip)));
    for (let r = 0; r < p.height; r++) {
      const rowOffset = base + offset(p.down, sample(r, p.height, n[p.down], p.downFlip));
      let at = ((y0 + r) * width + x0) * 3;
      for (let c = 0; c < p.width; c++, at += 3) {
        const voxel = rowOffset + acrossOffsets[c];
        const g = grey(image.data[voxel]);
        const label = labels ? labels.data[voxel] : 0;
        if (label === 0) {
          rgb[at] = g; rgb[at + 1] = g; rgb[at + 2] = g;
        } else {
          const blend = colors.get(label)!;
          rgb[at] = blend[0](g); rgb[at + 1] = blend[1](g); rgb[at + 2] = blend[2](g);
        }
      }
    }
    x0 += p.width + o.gap;
  }
  return { width, height, centerVoxel: [...center] as Triple, panels, rgb };
}

/** Pixels a panel side gets: its physical extent over the pitch, at least 1. */
function pixels(voxels: number, spacingMm: number, pitchMm: number): number {
  return Math.max(1, Math.round((voxels * spacingMm) / pitchMm));
}

/** Voxel position (counted from the L/P/I end) under pixel `i` of `count`, nearest neighbour; `flip` counts from the other end. */
function sample(i: number, count: number, voxels: number, flip: boolean): number {
  const v = Math.min(voxels - 1, Math.floor(((i + 0.5) * voxels) / count));
  return flip ? voxels - 1 - v : v;
}

function greyLut(window: readonly [number, number]): (v: number) => number {
  const [lo, hi] = window;
  return (v) => {
    if (!(v > lo)) return 0; // NaN shows black
    if (v >= hi) return 255;
    return Math.round(((v - lo) / (hi - lo)) * 255);
  };
}

/** Per label, per channel: grey -> blended value (1 - a) * grey + a * colour, rounded. */
function overlayColors(opacity: number): Map<number, Array<(g: number) => number>> {
  const out = new Map<number, Array<(g: number) => number>>();
  for (const [label, color] of Object.entries(FREESURFER_COLORS)) {
    out.set(Number(label), color.map((c) => (g: number) => Math.round((1 - opacity) * g + opacity * c)));
  }
  return out;
}

function checkLabels(image: Volume, labels: Volume, op: string): void {
  checkVolume(labels, `${op}: labels`);
  if (labels.shape.some((d, a) => d !== image.shape[a]))
    throw new RangeError(`${op}: labels shape [${labels.shape.join(', ')}] differs from image shape [${image.shape.join(', ')}]`);
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++)
    if (Math.abs(labels.affine[r][c] - image.affine[r][c]) > 1e-3)
      throw new RangeError(`${op}: labels affine differs from the image affine at [${r}][${c}] (${labels.affine[r][c]} vs ${image.affine[r][c]}); they must describe the same grid`);
  const d = labels.data as VolumeData;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (!(v >= 0 && v < 256 && HAS_COLOR[v])) throw new RangeError(`${op}: labels voxel ${i} has value ${v}, which is not one of the 33 SynthSeg labels`);
  }
}

const HAS_COLOR: Uint8Array = (() => {
  const lut = new Uint8Array(256);
  for (const label of Object.keys(FREESURFER_COLORS)) lut[Number(label)] = 1;
  return lut;
})();

function checkOptions(options: MontageOptions, op: string): { scale: number; opacity: number; window: readonly [number, number]; convention: DisplayConvention; gap: number; centerVoxel?: Triple; centerMm?: readonly number[] } {
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: argument 'options' must be an object`);
  const scale = options.scale ?? 1;
  if (!(Number.isFinite(scale) && scale > 0 && scale <= 64)) throw new RangeError(`${op}: option 'scale' must be a number in (0, 64], got ${options.scale}`);
  const opacity = options.opacity ?? DEFAULT_OPACITY;
  if (!(opacity >= 0 && opacity <= 1)) throw new RangeError(`${op}: option 'opacity' must be in [0, 1], got ${options.opacity}`);
  const window = options.window ?? ([0, 1] as const);
  if (!Array.isArray(window) || window.length !== 2 || !window.every(Number.isFinite) || !(window[1] > window[0]))
    throw new RangeError(`${op}: option 'window' must be [low, high] with low < high, got ${JSON.stringify(options.window)}`);
  const convention = options.convention ?? 'radiological';
  if (convention !== 'radiological' && convention !== 'neurological') throw new RangeError(`${op}: option 'convention' must be 'radiological' or 'neurological', got ${JSON.stringify(convention)}`);
  const gap = options.gap ?? DEFAULT_GAP;
  if (!Number.isSafeInteger(gap) || gap < 0 || gap > 1000) throw new RangeError(`${op}: option 'gap' must be an integer in 0..1000, got ${options.gap}`);
  if (options.centerMm !== undefined && options.centerVoxel !== undefined) throw new RangeError(`${op}: give option 'centerMm' or 'centerVoxel', not both`);
  if (options.centerMm !== undefined && !(Array.isArray(options.centerMm) && options.centerMm.length === 3 && options.centerMm.every(Number.isFinite)))
    throw new RangeError(`${op}: option 'centerMm' must be 3 finite numbers (world mm), got ${JSON.stringify(options.centerMm)}`);
  return { scale, opacity, window: [window[0], window[1]], convention, gap, centerMm: options.centerMm, centerVoxel: options.centerVoxel === undefined ? undefined : checkVoxel(options.centerVoxel, op) };
}

function checkVoxel(v: readonly number[], op: string): Triple {
  if (!Array.isArray(v) || v.length !== 3 || !v.every(Number.isSafeInteger)) throw new RangeError(`${op}: option 'centerVoxel' must be 3 integers (i, j, k), got ${JSON.stringify(v)}`);
  return [v[0], v[1], v[2]];
}

function voxelOfWorld(image: Volume, mm: readonly number[], op: string): Triple {
  const ijk = applyAffine(invertAffine(image.affine), mm).slice(0, 3).map(Math.round) as Triple;
  if (ijk.some((v, a) => v < 0 || v >= image.shape[a]))
    throw new RangeError(`${op}: option 'centerMm' [${mm.join(', ')}] is voxel [${ijk.join(', ')}], outside the volume [${image.shape.join(', ')}]`);
  return ijk;
}

/** Mean voxel index of the ventricle labels, rounded; null when there are none. */
function ventricleCentroid(labels: Volume): Triple | null {
  const isVentricle = new Uint8Array(256);
  for (const l of VENTRICLE_LABELS) isVentricle[l] = 1;
  const [nx, ny, nz] = labels.shape;
  const d = labels.data as VolumeData;
  let count = 0, si = 0, sj = 0, sk = 0;
  let at = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, at++) {
    if (isVentricle[d[at]]) { count++; si += i; sj += j; sk += k; }
  }
  return count === 0 ? null : [Math.round(si / count), Math.round(sj / count), Math.round(sk / count)];
}
