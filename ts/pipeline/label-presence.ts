/**
 * Label presence: every label of a generated mask holds at least a minimum number of voxels, where that label
 * belongs.
 *
 * The mask decoder draws small structures (inferior lateral ventricles, 3rd/4th ventricle, accumbens) from a few
 * voxels at the reduced grid, and at small ventricle requests it sometimes leaves one out, with confident logits
 * (train/README.md, "v8"): more training, more solver steps, a decoder fine-tuned on generated latents and guidance
 * limited to an interval of steps did not bring them back. A real brain has all 33 structures, and a segmentation
 * network trained on masks that miss one learns that it may be absent. So where a label falls short it is grown
 * where the decoder ranks it closest to winning, inside the region where the reference maps have it: an ellipsoid
 * around the label's mean position relative to the brain's centroid, its radius per axis the reference maps' largest
 * deviation along that axis plus one voxel. Without a region the decoder's best voxel for a missing label lay 20-40
 * mm from where it belongs on half the repairs (its logits for a label it left out carry little position); a sphere
 * as wide as the largest deviation in any direction let a one-voxel right accumbens land left of the midline. Growth starts from the label's voxels inside
 * the region (or from the region's best voxel) and region-grows through the 6-neighbourhood in order of the margin
 * (score of the label minus score of the voxel's winner), so the result is one connected piece. Only voxels whose
 * own label keeps its minimum are taken, so a repair never empties another label.
 *
 * Scores are logit + offset, as argmaxLabels decides; ties break by the lower voxel index, so a repair is a pure
 * function of the logits (same bytes wherever the logits are the same). The manifest names every repaired label per
 * sample, so a dataset can be filtered on it.
 */

import { forEachNeighbour6 } from '../volume/neighbours.js';

/** Where each label belongs and how small it may be (generator.json "labelPresence"). Channel order of `labels`. */
export interface LabelPresenceStats {
  /** Fewest voxels a label may hold; 0 for background. */
  minVoxels: number[];
  /** Mean position of the label's centroid relative to the brain's (all non-background voxels), mm per grid axis; null where never seen. */
  offsetMm: Array<[number, number, number] | null>;
  /** Radii (mm per grid axis) of the ellipsoid around that position where the label may be grown; 0s where never seen. */
  radiusMm: Array<[number, number, number]>;
}

/** Fraction of a label's mean voxel count in the reference maps that its minimum is set to. */
export const DEFAULT_MIN_VOXEL_FRACTION = 0.1;

/** Centroid (voxel units per grid axis) of the voxels with channel `c`, or of all non-background ones for c = -1; null if none. */
function centroid(index: Uint8Array, shape: readonly number[], c: number): [number, number, number] | null {
  const [, S1, S2] = shape;
  let a = 0, b = 0, d = 0, n = 0;
  for (let v = 0; v < index.length; v++) {
    if (c < 0 ? index[v] === 0 : index[v] !== c) continue;
    d += v % S2; b += Math.floor(v / S2) % S1; a += Math.floor(v / (S1 * S2)); n++;
  }
  return n ? [a / n, b / n, d / n] : null;
}

/**
 * The presence statistics of reference label maps on the generator's grid: `maps` hold channel indices (tensor
 * order of `shape`). minVoxels = max(1, round(minFraction x mean count)), 0 for background and labels no map has;
 * the radius along each axis is the largest deviation of one map's label centroid from the mean along it, plus one
 * voxel.
 */
export function measureLabelPresence(
  maps: readonly Uint8Array[], shape: readonly number[], spacingMm: readonly number[], labelCount: number, minFraction = DEFAULT_MIN_VOXEL_FRACTION,
): LabelPresenceStats {
  if (maps.length === 0) throw new RangeError('measureLabelPresence: no reference maps');
  if (!(minFraction > 0 && minFraction <= 1)) throw new RangeError(`measureLabelPresence: 'minFraction' must be in (0, 1], got ${minFraction}`);
  const voxels = shape[0] * shape[1] * shape[2];
  const counts = new Float64Array(labelCount);
  const offsets: Array<Array<[number, number, number]>> = Array.from({ length: labelCount }, () => []);
  for (const [i, m] of maps.entries()) {
    if (m.length !== voxels) throw new RangeError(`measureLabelPresence: map ${i} has ${m.length} voxels, expected ${voxels} (grid ${shape.join('x')})`);
    for (let v = 0; v < m.length; v++) {
      if (m[v] >= labelCount) throw new RangeError(`measureLabelPresence: map ${i} voxel ${v} holds channel ${m[v]}, expected < ${labelCount}`);
      counts[m[v]]++;
    }
    const brain = centroid(m, shape, -1);
    if (!brain) continue;
    for (let c = 1; c < labelCount; c++) {
      const p = centroid(m, shape, c);
      if (p) offsets[c].push([0, 1, 2].map((k) => (p[k] - brain[k]) * spacingMm[k]) as [number, number, number]);
    }
  }
  const stats: LabelPresenceStats = { minVoxels: [], offsetMm: [], radiusMm: [] };
  for (let c = 0; c < labelCount; c++) {
    const seen = offsets[c];
    if (c === 0 || seen.length === 0) { stats.minVoxels.push(0); stats.offsetMm.push(null); stats.radiusMm.push([0, 0, 0]); continue; }
    stats.minVoxels.push(Math.max(1, Math.round((minFraction * counts[c]) / maps.length)));
    const mean = [0, 1, 2].map((k) => seen.reduce((a, p) => a + p[k], 0) / seen.length) as [number, number, number];
    stats.offsetMm.push(mean);
    stats.radiusMm.push([0, 1, 2].map((k) => Math.max(...seen.map((p) => Math.abs(p[k] - mean[k]))) + spacingMm[k]) as [number, number, number]);
  }
  return stats;
}

/** What ensureLabelPresence changed. */
export interface LabelRepair {
  /** Channel of each label grown, with its voxels before and after (after < minimum: the region had no room). */
  labels: Array<{ channel: number; before: number; after: number }>;
  /** Voxels relabelled in all. */
  voxels: number;
}

/**
 * A max-heap of voxels by score, the lower voxel index first among equal scores (deterministic growth order).
 */
class VoxelHeap {
  private scores: number[] = [];
  private voxels: number[] = [];

  get size(): number {
    return this.voxels.length;
  }

  private above(i: number, j: number): boolean {
    const a = this.scores[i], b = this.scores[j];
    return a > b || (a === b && this.voxels[i] < this.voxels[j]);
  }

  private swap(i: number, j: number): void {
    [this.scores[i], this.scores[j]] = [this.scores[j], this.scores[i]];
    [this.voxels[i], this.voxels[j]] = [this.voxels[j], this.voxels[i]];
  }

  push(voxel: number, score: number): void {
    this.scores.push(score);
    this.voxels.push(voxel);
    for (let i = this.voxels.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!this.above(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): number {
    const top = this.voxels[0];
    const last = this.voxels.length - 1;
    this.swap(0, last);
    this.scores.pop();
    this.voxels.pop();
    for (let i = 0; ;) {
      const l = 2 * i + 1, r = l + 1;
      let best = i;
      if (l < last && this.above(l, best)) best = l;
      if (r < last && this.above(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
    return top;
  }
}

/**
 * Grows every label of `index` (per-voxel channel, tensor order of `shape`, last axis fastest) that holds fewer
 * than its minimum, in place, inside its region. `logits` [L, N] channel-major; `offsets` one per channel or null.
 */
export function ensureLabelPresence(
  logits: Float32Array, index: Uint8Array, shape: readonly number[], spacingMm: readonly number[], stats: LabelPresenceStats,
  offsets?: readonly number[] | null,
): LabelRepair {
  const L = stats.minVoxels.length;
  const N = index.length;
  if (shape.length !== 3 || shape[0] * shape[1] * shape[2] !== N)
    throw new RangeError(`ensureLabelPresence: 'shape' [${shape.join(', ')}] does not hold ${N} voxels`);
  if (logits.length !== L * N) throw new RangeError(`ensureLabelPresence: logits have ${logits.length} elements, expected ${L} x ${N}`);
  if (offsets && offsets.length !== L) throw new RangeError(`ensureLabelPresence: expected ${L} offsets, got ${offsets.length}`);
  const [S0, S1, S2] = shape;
  const o = offsets ? Float32Array.from(offsets) : new Float32Array(L);
  const score = (c: number, v: number) => logits[c * N + v] + o[c];
  const counts = new Int32Array(L);
  for (let v = 0; v < N; v++) counts[index[v]]++;
  const repair: LabelRepair = { labels: [], voxels: 0 };
  const brain = centroid(index, shape, -1);
  if (!brain) return repair;  // an empty mask has no anatomy to place labels in

  const coords = (v: number) => [Math.floor(v / (S1 * S2)), Math.floor(v / S2) % S1, v % S2];
  const neighbours = (v: number, visit: (n: number) => void) => forEachNeighbour6(v, S2, S1, S0, visit);
  for (let c = 1; c < L; c++) {
    const offset = stats.offsetMm[c];
    if (counts[c] >= stats.minVoxels[c] || offset === null) continue;
    const centre = [0, 1, 2].map((k) => brain[k] + offset[k] / spacingMm[k]);
    const radius = stats.radiusMm[c];
    const inRegion = (v: number) => {
      const p = coords(v);
      let d2 = 0;
      for (let k = 0; k < 3; k++) d2 += (((p[k] - centre[k]) * spacingMm[k]) / radius[k]) ** 2;
      return d2 <= 1;
    };
    const before = counts[c];
    // A voxel may change hands when it lies in the region and its label keeps its minimum.
    const takeable = (v: number) => index[v] !== c && counts[index[v]] > stats.minVoxels[index[v]] && inRegion(v);
    const margin = (v: number) => score(c, v) - score(index[v], v);
    const heap = new VoxelHeap();
    const queued = new Uint8Array(N);
    const enqueue = (n: number) => {
      if (!queued[n] && takeable(n)) { queued[n] = 1; heap.push(n, margin(n)); }
    };
    for (let v = 0; v < N; v++) if (index[v] === c && inRegion(v)) neighbours(v, enqueue);
    if (heap.size === 0) {
      let best = -1, bestMargin = -Infinity;
      for (let v = 0; v < N; v++) {
        if (!takeable(v)) continue;
        const m = margin(v);
        if (m > bestMargin) { bestMargin = m; best = v; }
      }
      if (best >= 0) enqueue(best);
    }
    while (counts[c] < stats.minVoxels[c] && heap.size > 0) {
      const v = heap.pop();
      if (!takeable(v)) continue;  // its label reached its minimum since it was queued
      counts[index[v]]--;
      index[v] = c;
      counts[c]++;
      repair.voxels++;
      neighbours(v, enqueue);
    }
    repair.labels.push({ channel: c, before, after: counts[c] });
  }
  return repair;
}
