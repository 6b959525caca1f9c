/**
 * Plausibility checks of a generated labeled pair (issue 5's quality criteria), each a yes/no with the numbers
 * behind it, so a dataset report can say how many samples pass:
 *
 *   - every label present: all 33 SynthSeg labels have at least one voxel;
 *   - ventricles inside the brain: at most 1% of the ventricle voxels touch the outside, i.e. background connected to
 *     the volume border (6-neighbourhood), or the border itself. Background enclosed by the brain (labels SynthSeg
 *     maps to 0, such as vessels and the 5th ventricle) is inside. Real maps are not at 0: the 4th ventricle and the
 *     temporal horns reach unlabelled space in places (up to 0.35% of ventricle voxels on the 20 reference maps at
 *     the thesis and reduced grids), so the bound is 1%, which a ventricle drawn outside the brain exceeds at once;
 *   - left of right: for every left/right pair present on both sides, the left structure's centroid lies left of
 *     the right one's in world coordinates (NIfTI world is RAS+: x grows to the subject's right);
 *   - T1 contrast: mean image intensity over white matter > cortex > ventricles.
 */
import { applyAffine } from '../io/nifti.js';
import type { Volume } from '../labels/label-volume.js';
import { forEachNeighbour6 } from '../volume/neighbours.js';
import { LEFT_RIGHT_PAIRS, SYNTHSEG_LABELS, VENTRICLE_LABELS } from '../labels/synthseg-labels.js';

export const MAX_VENTRICLE_FRACTION_OUTSIDE = 0.01;

export const WHITE_MATTER_LABELS: readonly number[] = Object.freeze([2, 41]);
export const CORTEX_LABELS: readonly number[] = Object.freeze([3, 42]);

export interface AnatomyReport {
  missingLabels: number[];
  /** Ventricle voxels next to outside background or on the border, and their fraction of all ventricle voxels. */
  ventricleVoxelsTouchingOutside: number;
  ventricleFractionTouchingOutside: number;
  /** Pairs whose left structure is not left of the right one: [left, right, left x, right x] (mm). */
  leftRightViolations: Array<[number, number, number, number]>;
  allLabelsPresent: boolean;
  ventriclesInsideBrain: boolean;
  leftOfRight: boolean;
}

export interface ContrastReport {
  meanWhiteMatter: number;
  meanCortex: number;
  meanVentricles: number;
  /** White matter > cortex > ventricles (T1). */
  t1Order: boolean;
}

function isLabelSet(labels: readonly number[]): Uint8Array {
  const set = new Uint8Array(256);
  for (const l of labels) set[l] = 1;
  return set;
}

/** Background voxels reachable from the volume border through background (6-connectivity): the outside of the head. */
export function outsideBackground(v: Volume<Uint8Array>): Uint8Array {
  const [X, Y, Z] = v.shape;
  const d = v.data;
  const outside = new Uint8Array(d.length);
  const queue = new Int32Array(d.length);
  let head = 0, tail = 0;
  const push = (n: number) => {
    if (d[n] === 0 && !outside[n]) { outside[n] = 1; queue[tail++] = n; }
  };
  for (let k = 0; k < Z; k++) for (let j = 0; j < Y; j++) for (let i = 0; i < X; i++)
    if (i === 0 || j === 0 || k === 0 || i === X - 1 || j === Y - 1 || k === Z - 1) push(i + X * (j + Y * k));
  while (head < tail) forEachNeighbour6(queue[head++], X, Y, Z, push);
  return outside;
}

export function checkAnatomy(v: Volume<Uint8Array>): AnatomyReport {
  const [X, Y, Z] = v.shape;
  const d = v.data;
  const out = outsideBackground(v);
  const present = new Uint8Array(256);
  const sum = new Float64Array(256 * 3);
  const count = new Float64Array(256);
  const ventricle = isLabelSet(VENTRICLE_LABELS);
  let touching = 0;
  let ventricleVoxels = 0;
  for (let k = 0; k < Z; k++) {
    for (let j = 0; j < Y; j++) {
      for (let i = 0; i < X; i++) {
        const n = i + X * (j + Y * k);
        const l = d[n];
        present[l] = 1;
        count[l]++;
        sum[3 * l] += i;
        sum[3 * l + 1] += j;
        sum[3 * l + 2] += k;
        if (!ventricle[l]) continue;
        ventricleVoxels++;
        const border = i === 0 || j === 0 || k === 0 || i === X - 1 || j === Y - 1 || k === Z - 1;
        if (border || out[n - 1] || out[n + 1] || out[n - X] || out[n + X] || out[n - X * Y] || out[n + X * Y]) touching++;
      }
    }
  }
  const missingLabels = SYNTHSEG_LABELS.filter((l) => !present[l]);
  const worldX = (l: number) => applyAffine(v.affine, [sum[3 * l] / count[l], sum[3 * l + 1] / count[l], sum[3 * l + 2] / count[l]])[0];
  const leftRightViolations: AnatomyReport['leftRightViolations'] = [];
  for (const [left, right] of LEFT_RIGHT_PAIRS) {
    if (!present[left] || !present[right]) continue;
    const xl = worldX(left);
    const xr = worldX(right);
    if (!(xl < xr)) leftRightViolations.push([left, right, xl, xr]);
  }
  return {
    missingLabels,
    ventricleVoxelsTouchingOutside: touching,
    ventricleFractionTouchingOutside: ventricleVoxels ? touching / ventricleVoxels : 0,
    leftRightViolations,
    allLabelsPresent: missingLabels.length === 0,
    ventriclesInsideBrain: ventricleVoxels > 0 && touching <= MAX_VENTRICLE_FRACTION_OUTSIDE * ventricleVoxels,
    leftOfRight: leftRightViolations.length === 0,
  };
}

export function checkContrast(image: Volume<Float32Array>, labels: Volume<Uint8Array>): ContrastReport {
  if (image.data.length !== labels.data.length) throw new RangeError(`checkContrast: image has ${image.data.length} voxels, labels ${labels.data.length}`);
  const mean = (set: readonly number[]) => {
    const member = isLabelSet(set);
    let s = 0, n = 0;
    for (let v = 0; v < labels.data.length; v++) if (member[labels.data[v]]) { s += image.data[v]; n++; }
    return n ? s / n : Number.NaN;
  };
  const meanWhiteMatter = mean(WHITE_MATTER_LABELS);
  const meanCortex = mean(CORTEX_LABELS);
  const meanVentricles = mean(VENTRICLE_LABELS);
  return { meanWhiteMatter, meanCortex, meanVentricles, t1Order: meanWhiteMatter > meanCortex && meanCortex > meanVentricles };
}
