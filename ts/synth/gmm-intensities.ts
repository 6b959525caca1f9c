/**
 * Step 1 of SynthSeg's label -> image model: a Gaussian mixture conditioned on the labels. Each intensity class gets
 * one (mean, std) per image; every voxel is mean[class] + std[class] x N(0, 1), independently, so the within-structure
 * texture is the only noise in the image (SynthSeg adds no other white noise by default).
 *
 * Port of SynthSeg (BBillot/SynthSeg @66342c1) `SynthSeg/model_inputs.py` build_model_inputs (the draws) and
 * `ext/lab2im/layers.py` SampleConditionalGMM (the rendering); EVALUATION.md 2.1 step 4.
 *   - random contrast ('uniform' priors, no prior arrays): mean ~ U(0, 250), std ~ U(0, 30) per class;
 *   - T1 ('normal' priors with prior_means_t1 / prior_stds_t1): mean ~ N(mu_k, sigma_k), std likewise;
 *   negative draws are clipped to 0 (draw_value_from_distribution's positive_only);
 *   - background override, both contrasts: with probability 0.05 mean = std = 0, with probability 0.25
 *     mean ~ U(0, 15) and std ~ U(0, 5), otherwise the draw stands.
 */
import { labelCounts, type LabelVolume } from '../labels/label-volume.js';
import { SYNTHSEG_GENERATION_LABELS } from '../labels/synthseg-labels.js';
import type { SeededRandom } from '../random/seeded-random.js';
import { classCount, generationClasses, T1_PRIOR_MEANS, T1_PRIOR_STDS, type Contrast } from './synthseg-priors.js';

/** Random-contrast ranges in SynthSeg's code (model_inputs.py: centre 125 +- 125 and 15 +- 15). */
export const RANDOM_MEAN_RANGE = Object.freeze([0, 250] as const);
export const RANDOM_STD_RANGE = Object.freeze([0, 30] as const);

export type BackgroundOverride = 'prior' | 'zero' | 'low';

export interface GmmParameters {
  contrast: Contrast;
  /** Mean and std per intensity class (index = class). */
  means: Float64Array;
  stds: Float64Array;
  /** What happened to class 0 (background): kept as drawn, set to 0, or redrawn low. */
  background: BackgroundOverride;
}

/** Draws one image's class means and stds. Draw order: all means, all stds, then the background coin. */
export function drawGmmParameters(rng: SeededRandom, contrast: Contrast): GmmParameters {
  const n = classCount(contrast);
  const means = new Float64Array(n);
  const stds = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    means[k] = Math.max(0, contrast === 't1' ? rng.normal(T1_PRIOR_MEANS[0][k], T1_PRIOR_MEANS[1][k]) : rng.uniform(RANDOM_MEAN_RANGE[0], RANDOM_MEAN_RANGE[1]));
  }
  for (let k = 0; k < n; k++) {
    stds[k] = Math.max(0, contrast === 't1' ? rng.normal(T1_PRIOR_STDS[0][k], T1_PRIOR_STDS[1][k]) : rng.uniform(RANDOM_STD_RANGE[0], RANDOM_STD_RANGE[1]));
  }
  const coin = rng.next();
  let background: BackgroundOverride = 'prior';
  if (coin > 0.95) {
    background = 'zero';
    means[0] = 0;
    stds[0] = 0;
  } else if (coin > 0.7) {
    background = 'low';
    means[0] = rng.uniform(0, 15);
    stds[0] = rng.uniform(0, 5);
  }
  return { contrast, means, stds, background };
}

/** The largest generation label value; the class lookup is a dense table up to it. */
const MAX_GENERATION_LABEL = Math.max(...SYNTHSEG_GENERATION_LABELS);

/**
 * Dense label -> class table for a label map, after checking that every value in it is a SynthSeg generation label
 * (the 33 SynthSeg labels are among them). `source` names the map in the error.
 */
export function classLookup(labels: LabelVolume, contrast: Contrast, source: string): { lut: Int16Array; counts: Map<number, number> } {
  const classes = generationClasses(contrast);
  const counts = labelCounts(labels);
  const unknown = [...counts.keys()].filter((v) => !classes.has(v));
  if (unknown.length) {
    const list = unknown.slice(0, 8).map((v) => `${v} (${counts.get(v)} voxels)`).join(', ');
    throw new RangeError(`${source}: label values ${list}${unknown.length > 8 ? ', ...' : ''} are not SynthSeg generation labels; expected values among ${SYNTHSEG_GENERATION_LABELS.join(', ')} (the 33 SynthSeg labels or aseg-style maps such as SynthSeg's training maps)`);
  }
  const lut = new Int16Array(MAX_GENERATION_LABEL + 1).fill(-1);
  for (const [label, k] of classes) lut[label] = k;
  return { lut, counts };
}

/** Renders the mixture: voxel = means[class] + stds[class] x N(0, 1), one normal draw per voxel in file order. */
export function renderGmm(labels: LabelVolume, lut: Int16Array, params: GmmParameters, rng: SeededRandom): Float32Array {
  const src = labels.data;
  const out = new Float32Array(src.length);
  const { means, stds } = params;
  for (let n = 0; n < src.length; n++) {
    const k = lut[src[n]];
    out[n] = means[k] + stds[k] * rng.normal();
  }
  return out;
}

/** The manifest's view of a draw: one entry per class present in the map, with the labels that use it. */
export function describeGmm(params: GmmParameters, counts: ReadonlyMap<number, number>): {
  contrast: Contrast; background: BackgroundOverride; classes: Array<{ class: number; labels: number[]; mean: number; std: number }>;
} {
  const classes = generationClasses(params.contrast);
  const byClass = new Map<number, number[]>();
  for (const label of counts.keys()) {
    const k = classes.get(label)!;
    if (!byClass.has(k)) byClass.set(k, []);
    byClass.get(k)!.push(label);
  }
  return {
    contrast: params.contrast,
    background: params.background,
    classes: [...byClass.entries()].sort((a, b) => a[0] - b[0]).map(([k, ls]) => ({ class: k, labels: ls, mean: params.means[k], std: params.stds[k] })),
  };
}
