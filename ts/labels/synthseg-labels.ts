/**
 * The SynthSeg label set the thesis uses, and the mapping from SynthSeg's generation labels (FreeSurfer aseg
 * numbering plus SynthSeg's own extra labels) to it.
 *
 * Sources (../shared/design):
 *   - MONAI-COMPAT.md section 1.2 "Label set (T:src/synthseg_masks.py)": the 33 labels in channel order
 *     0, 2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28, 41, 42, 43, 44, 46, 47, 49, 50, 51, 52,
 *     53, 54, 58, 60; one-hot channel c means label value list[c]; for nnU-Net the labels are written as contiguous
 *     indices 0..32; ventricles are 4, 5, 43, 44, 14, 15.
 *   - EVALUATION.md section 2.3 "SynthSeg output label set and generation labels":
 *       output set (SynthSeg 2.0, with 24 = CSF);
 *       generation labels (54 values): neutral 0, 14, 15, 16, 24, 72, 85, 502, 506, 507, 508, 509, 511, 512, 514,
 *       515, 516, 530; left 2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 17, 18, 25, 26, 28, 30, 136, 137; right 41, 42, 43,
 *       44, 46, 47, 49, 50, 51, 52, 53, 54, 57, 58, 60, 62, 163, 164;
 *       "Generation -> output mapping (synthseg_segmentation_labels.npy): 24, 72, 85, 5xx, 30, 62 -> 0 (background;
 *       24 stays 24 in 2.0); 25 -> 2 and 57 -> 41 (lesions rendered but labelled as WM); 136 -> 4, 137 -> 5,
 *       163 -> 43, 164 -> 44 (choroid plexus counted as ventricle in the output)."
 *   - EVALUATION.md section 2.2 (FreeSurfer LUT) and section 4.1 (ventricles = {43, 44, 4, 5, 14, 15}, CSF 24 is
 *     not a ventricle).
 * The shared copy of SynthSeg's `synthseg_segmentation_labels.npy` (54 entries) agrees position by position with
 * `generation_labels.npy` and with the table below, except that it maps 24 -> 0 (SynthSeg 1.0); the `_2.0` file has
 * 55 entries, one more than the generation list, so it cannot be paired with it position by position.
 *
 * Labels outside the 54 generation labels (e.g. FreeSurfer's 31/63 choroid plexus, 77 WM hypointensities,
 * 251-255 corpus callosum) have no rule in the design docs: `mapToSynthSeg` drops them to background and reports
 * them, or takes a caller's `extraMapping`.
 */

/** The 33 SynthSeg labels in one-hot channel order (MONAI-COMPAT.md 1.2). */
export const SYNTHSEG_LABELS: readonly number[] = Object.freeze([
  0, 2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28,
  41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 58, 60,
]);

export const NUM_SYNTHSEG_LABELS = 33;

/** Structure names (SynthSeg `labels table.txt`). */
export const SYNTHSEG_LABEL_NAMES: Readonly<Record<number, string>> = Object.freeze({
  0: 'background',
  2: 'left cerebral white matter',
  3: 'left cerebral cortex',
  4: 'left lateral ventricle',
  5: 'left inferior lateral ventricle',
  7: 'left cerebellum white matter',
  8: 'left cerebellum cortex',
  10: 'left thalamus',
  11: 'left caudate',
  12: 'left putamen',
  13: 'left pallidum',
  14: '3rd ventricle',
  15: '4th ventricle',
  16: 'brain-stem',
  17: 'left hippocampus',
  18: 'left amygdala',
  24: 'CSF',
  26: 'left accumbens area',
  28: 'left ventral DC',
  41: 'right cerebral white matter',
  42: 'right cerebral cortex',
  43: 'right lateral ventricle',
  44: 'right inferior lateral ventricle',
  46: 'right cerebellum white matter',
  47: 'right cerebellum cortex',
  49: 'right thalamus',
  50: 'right caudate',
  51: 'right putamen',
  52: 'right pallidum',
  53: 'right hippocampus',
  54: 'right amygdala',
  58: 'right accumbens area',
  60: 'right ventral DC',
});

/** Ventricle labels: left/right lateral, left/right inferior lateral, 3rd, 4th (EVALUATION.md 4.1, MONAI-COMPAT.md 1.2). */
export const VENTRICLE_LABELS: readonly number[] = Object.freeze([4, 5, 43, 44, 14, 15]);

/** Left/right pairs among the 33 labels (left, right); 0, 14, 15, 16, 24 are unpaired (midline or bilateral). */
export const LEFT_RIGHT_PAIRS: ReadonlyArray<readonly [number, number]> = Object.freeze([
  [2, 41], [3, 42], [4, 43], [5, 44], [7, 46], [8, 47], [10, 49], [11, 50], [12, 51], [13, 52], [17, 53], [18, 54],
  [26, 58], [28, 60],
].map((p) => Object.freeze(p as [number, number])));

/** Labels without a mirror partner. */
export const NEUTRAL_LABELS: readonly number[] = Object.freeze([0, 14, 15, 16, 24]);

/** SynthSeg's generation labels (EVALUATION.md 2.3, `generation_labels.npy`), in its order: neutral, left, right. */
export const SYNTHSEG_GENERATION_LABELS: readonly number[] = Object.freeze([
  0, 14, 15, 16, 24, 72, 85, 502, 506, 507, 508, 509, 511, 512, 514, 515, 516, 530,
  2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 17, 18, 25, 26, 28, 30, 136, 137,
  41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 57, 58, 60, 62, 163, 164,
]);

/** Generation labels that are not among the 33 and what they become (EVALUATION.md 2.3, SynthSeg 2.0 output). */
export const SYNTHSEG_MERGES: Readonly<Record<number, number>> = Object.freeze({
  // Lesions are rendered but labelled as white matter.
  25: 2, 57: 41,
  // Choroid plexus (split in two per hemisphere; BBillot/SynthSeg#119) counted as ventricle.
  136: 4, 137: 5, 163: 43, 164: 44,
  // Vessels, 5th ventricle, optic chiasm and the extra-cerebral 5xx labels become background.
  30: 0, 62: 0, 72: 0, 85: 0,
  502: 0, 506: 0, 507: 0, 508: 0, 509: 0, 511: 0, 512: 0, 514: 0, 515: 0, 516: 0, 530: 0,
});

/** Names of the generation-only labels, for reports (FreeSurfer LUT; SynthSeg SOURCE.md for 136-164 and 5xx). */
export const GENERATION_ONLY_LABEL_NAMES: Readonly<Record<number, string>> = Object.freeze({
  25: 'left lesion', 57: 'right lesion', 30: 'left vessel', 62: 'right vessel', 72: '5th ventricle',
  85: 'optic chiasm', 136: 'left choroid plexus (a, next to 4)', 137: 'left choroid plexus (b, next to 5)',
  163: 'right choroid plexus (a, next to 43)', 164: 'right choroid plexus (b, next to 44)',
  502: 'extra-cerebral 502', 506: 'extra-cerebral 506 (eyes)', 507: 'extra-cerebral 507 (soft tissue)',
  508: 'extra-cerebral 508', 509: 'extra-cerebral 509', 511: 'extra-cerebral 511',
  512: 'extra-cerebral 512 (spinal cord)', 514: 'extra-cerebral 514', 515: 'extra-cerebral 515 (bone)',
  516: 'extra-cerebral 516', 530: 'extra-cerebral 530',
});

export function labelName(label: number): string {
  return SYNTHSEG_LABEL_NAMES[label] ?? GENERATION_ONLY_LABEL_NAMES[label] ?? `label ${label}`;
}

/** Generation label -> SynthSeg label: the 33 map to themselves, the rest as in SYNTHSEG_MERGES. */
export const GENERATION_TO_SYNTHSEG: ReadonlyMap<number, number> = new Map<number, number>([
  ...SYNTHSEG_LABELS.map((l) => [l, l] as [number, number]),
  ...Object.entries(SYNTHSEG_MERGES).map(([k, v]) => [Number(k), v] as [number, number]),
]);

const INDEX_OF = new Map<number, number>(SYNTHSEG_LABELS.map((l, i) => [l, i]));

export function isSynthSegLabel(label: number): boolean {
  return INDEX_OF.has(label);
}

/** Channel / contiguous index (0..32) of a SynthSeg label. */
export function synthSegIndex(label: number): number {
  const i = INDEX_OF.get(label);
  if (i === undefined) throw new RangeError(`synthSegIndex: ${label} is not one of the 33 SynthSeg labels (${SYNTHSEG_LABELS.join(', ')})`);
  return i;
}

/** SynthSeg label of a channel / contiguous index (0..32). */
export function synthSegLabelAt(index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= NUM_SYNTHSEG_LABELS)
    throw new RangeError(`synthSegLabelAt: index must be an integer in 0..${NUM_SYNTHSEG_LABELS - 1}, got ${index}`);
  return SYNTHSEG_LABELS[index];
}

const MIRROR = new Map<number, number>();
for (const l of NEUTRAL_LABELS) MIRROR.set(l, l);
for (const [l, r] of LEFT_RIGHT_PAIRS) { MIRROR.set(l, r); MIRROR.set(r, l); }

/** The label of the mirrored structure (left <-> right); neutral labels map to themselves. */
export function mirrorLabel(label: number): number {
  const m = MIRROR.get(label);
  if (m === undefined) throw new RangeError(`mirrorLabel: ${label} is not one of the 33 SynthSeg labels`);
  return m;
}

/** Lookup table over 0..60 for mirroring; -1 where the value is not a SynthSeg label. */
export const MIRROR_LUT: Readonly<Int16Array> = (() => {
  const lut = new Int16Array(61).fill(-1);
  for (const [k, v] of MIRROR) lut[k] = v;
  return lut;
})();

type IntLabels = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;

function checkIntegerArray(data: unknown, op: string): asserts data is IntLabels {
  if (!(data instanceof Uint8Array || data instanceof Int8Array || data instanceof Int16Array || data instanceof Uint16Array || data instanceof Int32Array || data instanceof Uint32Array))
    throw new TypeError(`${op}: argument 'labels' must be an integer typed array, got ${(data as object)?.constructor?.name ?? typeof data}`);
}

/** SynthSeg label values -> contiguous indices 0..32 (nnU-Net labels, one-hot channels). */
export function labelsToIndices(labels: IntLabels): Uint8Array {
  checkIntegerArray(labels, 'labelsToIndices');
  const lut = new Int16Array(61).fill(-1);
  SYNTHSEG_LABELS.forEach((l, i) => { lut[l] = i; });
  const out = new Uint8Array(labels.length);
  for (let n = 0; n < labels.length; n++) {
    const v = labels[n];
    const i = v >= 0 && v <= 60 ? lut[v] : -1;
    if (i < 0) throw new RangeError(`labelsToIndices: voxel ${n} has value ${v}, which is not one of the 33 SynthSeg labels`);
    out[n] = i;
  }
  return out;
}

/** Contiguous indices 0..32 -> SynthSeg label values. */
export function indicesToLabels(indices: IntLabels): Uint8Array {
  checkIntegerArray(indices, 'indicesToLabels');
  const out = new Uint8Array(indices.length);
  for (let n = 0; n < indices.length; n++) {
    const v = indices[n];
    if (!(v >= 0 && v < NUM_SYNTHSEG_LABELS)) throw new RangeError(`indicesToLabels: voxel ${n} has value ${v}, expected an index in 0..32`);
    out[n] = SYNTHSEG_LABELS[v];
  }
  return out;
}

/** Per-label voxel counts of what `mapToSynthSeg` did. */
export interface SynthSegMappingReport {
  /** Generation labels folded into another of the 33 (25 -> 2, 136 -> 4, ...), with voxel counts. */
  merged: Array<{ from: number; to: number; voxels: number }>;
  /** Generation labels that became background (30, 62, 72, 85, 5xx), with voxel counts. */
  dropped: Array<{ label: number; voxels: number }>;
  /** Values outside the 54 generation labels (and not in extraMapping), set to background. */
  unknown: Array<{ label: number; voxels: number }>;
  /** Values mapped through the caller's extraMapping. */
  extra: Array<{ from: number; to: number; voxels: number }>;
}

export interface MapToSynthSegOptions {
  /** What to do with values outside the generation labels: set to 0 and report (default), or throw. */
  unknownLabels?: 'background' | 'error';
  /** Extra rules for values the design docs do not cover, e.g. {31: 4, 63: 43}; targets must be SynthSeg labels. */
  extraMapping?: Readonly<Record<number, number>>;
}

/**
 * Maps a label array in aseg / SynthSeg-generation numbering to the 33 SynthSeg labels (returns a new Uint8Array;
 * all values then lie in SYNTHSEG_LABELS). `source` names the data in errors.
 */
export function mapToSynthSeg(labels: IntLabels, options: MapToSynthSegOptions = {}, source = 'mapToSynthSeg'): { labels: Uint8Array; report: SynthSegMappingReport } {
  checkIntegerArray(labels, source);
  const extra = new Map<number, number>();
  for (const [k, v] of Object.entries(options.extraMapping ?? {})) {
    const from = Number(k);
    if (!Number.isInteger(from)) throw new RangeError(`${source}: option 'extraMapping' key ${JSON.stringify(k)} is not an integer label`);
    if (GENERATION_TO_SYNTHSEG.has(from)) throw new RangeError(`${source}: option 'extraMapping' may not override generation label ${from} (the design docs fix its mapping)`);
    if (!isSynthSegLabel(v)) throw new RangeError(`${source}: option 'extraMapping' maps ${from} to ${v}, which is not one of the 33 SynthSeg labels`);
    extra.set(from, v);
  }
  // Count every distinct value first (labels are small integers; a Map handles anything else).
  const counts = new Map<number, number>();
  const small = new Float64Array(1024);
  for (let n = 0; n < labels.length; n++) {
    const v = labels[n];
    if (v >= 0 && v < 1024) small[v]++;
    else counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  for (let v = 0; v < 1024; v++) if (small[v] > 0) counts.set(v, small[v]);
  const target = new Map<number, number>();
  const report: SynthSegMappingReport = { merged: [], dropped: [], unknown: [], extra: [] };
  for (const v of [...counts.keys()].sort((a, b) => a - b)) {
    const voxels = counts.get(v)!;
    const g = GENERATION_TO_SYNTHSEG.get(v);
    if (g !== undefined) {
      target.set(v, g);
      if (g === v) continue;
      if (g === 0) report.dropped.push({ label: v, voxels });
      else report.merged.push({ from: v, to: g, voxels });
    } else if (extra.has(v)) {
      target.set(v, extra.get(v)!);
      report.extra.push({ from: v, to: extra.get(v)!, voxels });
    } else {
      if (options.unknownLabels === 'error')
        throw new RangeError(`${source}: value ${v} (${voxels} voxels) is not a SynthSeg generation label (${SYNTHSEG_GENERATION_LABELS.length} known) and has no extraMapping entry`);
      target.set(v, 0);
      report.unknown.push({ label: v, voxels });
    }
  }
  const lut = new Uint8Array(1024);
  for (const [k, v] of target) if (k >= 0 && k < 1024) lut[k] = v;
  const out = new Uint8Array(labels.length);
  for (let n = 0; n < labels.length; n++) {
    const v = labels[n];
    out[n] = v >= 0 && v < 1024 ? lut[v] : target.get(v)!;
  }
  return { labels: out, report };
}

/** Mirrors label values left <-> right (for an L/R flip of the volume); values must be SynthSeg labels. */
export function mirrorLabels(labels: IntLabels): Uint8Array {
  checkIntegerArray(labels, 'mirrorLabels');
  const out = new Uint8Array(labels.length);
  for (let n = 0; n < labels.length; n++) {
    const v = labels[n];
    const m = v >= 0 && v <= 60 ? MIRROR_LUT[v] : -1;
    if (m < 0) throw new RangeError(`mirrorLabels: voxel ${n} has value ${v}, which is not one of the 33 SynthSeg labels`);
    out[n] = m;
  }
  return out;
}
