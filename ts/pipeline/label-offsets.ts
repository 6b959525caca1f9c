/**
 * Label offsets: per-label constants added to the mask decoder's logits before the argmax, fitted so that the mean
 * voxel count of every label over generated masks matches the training maps (logit adjustment for a label prior,
 * as in long-tail classification: Menon et al. 2021).
 *
 * Why: sampled latents are smoother than encoded ones, and the decoder's argmax gives the voxels where two
 * structures blur into each other to the larger one. In the CPU-trained default generator the accumbens came out at
 * 17% of its training volume and the other deep grey structures at 50-65%, so 40% of masks had no accumbens at all,
 * although the decoder keeps every label when it decodes encoded maps (train/README.md, "v6"). One constant per
 * label moves those boundaries without touching the networks; the ventricle labels keep offset 0, their volume is
 * the condition's job (and the volume calibration's), and so does the background, the reference of the softmax.
 *
 * The fit matches proportions among the free labels, not absolute counts: how many voxels the fixed labels take
 * depends on the conditions of the fitted masks (ventricle size) and is not the fit's to change. So the free labels
 * share the voxels they hold without offsets: with F that sum and T the sum of the free labels' targets, label c aims
 * at goal_c = target_c * F / T, and iteration k moves o_c by rate / (1 + k / 20) * ln((goal_c + 1) / (mean_c + 1)) (at most 1 logit;
 * the decay damps the oscillation of labels whose logits lie close together), clamped to
 * [-OFFSET_BOUND, OFFSET_BOUND], mean_c being the mean count of label c over the fitted masks after the argmax of
 * logits + o. (Goals rescaled to the current free total instead had no restoring force: every free label rose to the
 * bound together, taking voxels from the fixed ones.) Only the labels whose logit lies within 2 * OFFSET_BOUND of a voxel's maximum can win there under
 * any offsets in the bound, so each voxel keeps only those candidates (most voxels have one or two) and every
 * iteration re-decides the argmax exactly from them.
 */

/** Largest |offset| the fit may use (in logits). */
export const OFFSET_BOUND = 8;

/** The voxels' candidate labels of a set of masks: CSR lists of (channel, logit) per voxel. */
export class LabelCandidates {
  private starts: Int32Array[] = [];
  private channels: Uint8Array[] = [];
  private values: Float32Array[] = [];

  constructor(readonly labelCount: number, readonly voxels: number) {
    if (!Number.isSafeInteger(labelCount) || labelCount < 1 || labelCount > 255) throw new RangeError(`LabelCandidates: labelCount must be 1..255, got ${labelCount}`);
    if (!Number.isSafeInteger(voxels) || voxels < 1) throw new RangeError(`LabelCandidates: voxels must be a positive integer, got ${voxels}`);
  }

  get masks(): number {
    return this.starts.length;
  }

  /** Keeps the candidates of one mask's logits [L, voxels] (channel-major, as the decoder writes them). */
  add(logits: Float32Array): void {
    const { labelCount: L, voxels: n } = this;
    if (logits.length !== L * n) throw new RangeError(`LabelCandidates.add: logits have ${logits.length} elements, expected ${L} x ${n}`);
    const max = new Float32Array(logits.subarray(0, n));
    for (let c = 1; c < L; c++) {
      const plane = logits.subarray(c * n, (c + 1) * n);
      for (let v = 0; v < n; v++) if (plane[v] > max[v]) max[v] = plane[v];
    }
    const starts = new Int32Array(n + 1);
    for (let v = 0; v < n; v++) max[v] -= 2 * OFFSET_BOUND;
    for (let c = 0; c < L; c++) {
      const plane = logits.subarray(c * n, (c + 1) * n);
      for (let v = 0; v < n; v++) if (plane[v] >= max[v]) starts[v + 1]++;
    }
    for (let v = 0; v < n; v++) starts[v + 1] += starts[v];
    const fill = starts.slice(0, n);
    const channels = new Uint8Array(starts[n]);
    const values = new Float32Array(starts[n]);
    for (let c = 0; c < L; c++) {  // channel order within a voxel: ties go to the first channel, as torch.argmax
      const plane = logits.subarray(c * n, (c + 1) * n);
      for (let v = 0; v < n; v++)
        if (plane[v] >= max[v]) { channels[fill[v]] = c; values[fill[v]++] = plane[v]; }
    }
    this.starts.push(starts);
    this.channels.push(channels);
    this.values.push(values);
  }

  /** Mean voxel count per channel over the masks, for the argmax of logits + offsets (|offsets| <= OFFSET_BOUND). */
  meanCounts(offsets: readonly number[]): Float64Array {
    if (offsets.length !== this.labelCount) throw new RangeError(`meanCounts: expected ${this.labelCount} offsets, got ${offsets.length}`);
    const o = Float32Array.from(offsets);
    const counts = new Float64Array(this.labelCount);
    for (let m = 0; m < this.masks; m++) {
      const starts = this.starts[m], channels = this.channels[m], values = this.values[m];
      for (let v = 0; v < this.voxels; v++) {
        let best = -Infinity, bestC = 0;
        for (let i = starts[v]; i < starts[v + 1]; i++) {
          const s = values[i] + o[channels[i]];
          if (s > best) { best = s; bestC = channels[i]; }
        }
        counts[bestC]++;
      }
    }
    for (let c = 0; c < counts.length; c++) counts[c] /= Math.max(1, this.masks);
    return counts;
  }
}

export interface LabelOffsetFit {
  /** One offset per generator label (channel order); 0 for the fixed channels. */
  offsets: number[];
  /** Mean voxels per label over the fitted masks, before (offsets 0) and after the fit. */
  meanVoxelsBefore: number[];
  meanVoxelsAfter: number[];
}

/**
 * Fits offsets so that mean counts match `targetVoxels` (per channel) for the channels not in `fixed`.
 * Deterministic: the same candidates and targets give the same offsets.
 */
export function fitLabelOffsets(
  candidates: LabelCandidates,
  targetVoxels: readonly number[],
  fixed: ReadonlySet<number>,
  options: { iterations?: number; rate?: number } = {},
): LabelOffsetFit {
  const L = candidates.labelCount;
  if (targetVoxels.length !== L) throw new RangeError(`fitLabelOffsets: expected ${L} target counts, got ${targetVoxels.length}`);
  if (candidates.masks < 1) throw new RangeError('fitLabelOffsets: no masks to fit on');
  const iterations = options.iterations ?? 60;
  const rate = options.rate ?? 0.5;
  const offsets = new Array<number>(L).fill(0);
  const before = Array.from(candidates.meanCounts(offsets));
  const free = Array.from({ length: L }, (_, c) => c).filter((c) => !fixed.has(c));
  const targetFree = free.reduce((acc, c) => acc + targetVoxels[c], 0);
  if (!(targetFree > 0)) throw new RangeError('fitLabelOffsets: the targets of the free labels sum to 0');
  const freeBefore = free.reduce((acc, c) => acc + before[c], 0);
  const goal = targetVoxels.map((t) => t * freeBefore / targetFree);
  let counts = before;
  for (let it = 0; it < iterations; it++) {
    const r = rate / (1 + it / 20);
    for (const c of free) {
      const step = Math.min(1, Math.max(-1, r * Math.log((goal[c] + 1) / (counts[c] + 1))));
      offsets[c] = Math.min(OFFSET_BOUND, Math.max(-OFFSET_BOUND, offsets[c] + step));
    }
    counts = Array.from(candidates.meanCounts(offsets));
  }
  // Offsets are stored and applied in float32 (the argmax adds them to float32 logits).
  return { offsets: offsets.map((o) => Math.fround(o)), meanVoxelsBefore: before, meanVoxelsAfter: counts };
}
