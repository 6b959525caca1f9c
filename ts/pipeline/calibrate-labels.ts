/**
 * Label calibration: fit the generator's label offsets (label-offsets.ts) so generated masks hold each label in the
 * amount the training maps do.
 *
 * Targets: the mean voxel count of each label over reference label maps on the generator's grid (the training
 * maps; never the held-out ones, which the evaluation measures). Fit masks: `masks` mask-stage samples with
 * conditions evenly over the training range [0, 1], sample indices from LABEL_FIT_INDEX_OFFSET on (the volume
 * sweep uses 0.., its check 1_000_000..), decoded once; the fit then re-decides their argmax from the logits.
 */
import type { Backend } from '../backend/types.js';
import type { Generator, LabelOffsets } from '../bundle/generator-bundle.js';
import type { SchedulerType } from '../schedulers/index.js';
import { LabelCandidates, fitLabelOffsets } from './label-offsets.js';
import { LabeledPairGenerator } from './labeled-pair-generator.js';

export const LABEL_FIT_INDEX_OFFSET = 2_000_000;
/** Masks the offsets are fitted on by default: on the CPU default generator, offsets fitted on 24 masks brought the
 * accumbens to 0.87 of its training volume on those masks but 0.74 on 64 fresh ones (too few voxels per mask). */
export const DEFAULT_LABEL_MASKS = 64;

/** Mean voxels per generator label (channel order) over label maps given as label values; `names` label errors. */
export function meanLabelVoxels(maps: readonly ArrayLike<number>[], labels: readonly number[], names: readonly string[]): number[] {
  if (maps.length === 0) throw new RangeError('label calibration: no reference label maps');
  const channel = new Map(labels.map((l, c) => [l, c]));
  const sums = new Float64Array(labels.length);
  maps.forEach((m, i) => {
    for (let v = 0; v < m.length; v++) {
      const c = channel.get(m[v]);
      if (c === undefined) throw new RangeError(`${names[i]}: voxel ${v} holds label ${m[v]}, which is not one of the generator's labels [${labels.join(', ')}]`);
      sums[c]++;
    }
  });
  return Array.from(sums, (s) => s / maps.length);
}

export interface LabelCalibrationOptions {
  generator: Generator;
  backend: Backend;
  /** Mean voxels per label (channel order) of the reference maps, and how many maps. */
  targetVoxels: number[];
  referenceMaps: number;
  masks?: number;
  guidanceScale?: number;
  solver?: SchedulerType;
  steps?: number;
  seed?: number;
  onProgress?: (e: { done: number; total: number; condition: number }) => void;
  onStep?: (e: { sample: number; stepIndex: number; totalSteps: number }) => void;
}

export async function calibrateLabels(o: LabelCalibrationOptions): Promise<LabelOffsets> {
  const g = o.generator;
  const { labels, grid } = g.config;
  const masks = o.masks ?? DEFAULT_LABEL_MASKS;
  if (!Number.isSafeInteger(masks) || masks < 1) throw new RangeError(`calibrate: 'masks' must be a positive integer, got ${masks}`);
  if (o.targetVoxels.length !== labels.length) throw new RangeError(`calibrate: expected ${labels.length} target counts, got ${o.targetVoxels.length}`);
  const guidanceScale = o.guidanceScale ?? g.config.defaults.guidanceScale;
  const solver = o.solver ?? g.config.defaults.solver;
  const steps = o.steps ?? g.config.defaults.steps;
  const seed = o.seed ?? 0;
  const voxels = grid.shape[0] * grid.shape[1] * grid.shape[2];
  // Background anchors the logits; the ventricles' volume is the condition's.
  const fixed = new Set<number>([0, ...g.config.conditioning.ventricleLabels.map((l) => labels.indexOf(l))]);

  const candidates = new LabelCandidates(labels.length, voxels);
  const pairs = await LabeledPairGenerator.create(o.backend, g);
  try {
    for (let i = 0; i < masks; i++) {
      const condition = masks === 1 ? 0.5 : i / (masks - 1);
      const sampleIndex = LABEL_FIT_INDEX_OFFSET + i;
      candidates.add(await pairs.generateMaskLogits({
        seed, sampleIndex, condition, guidanceScale, solver, steps,
        onStep: o.onStep ? (e) => o.onStep!({ sample: sampleIndex, stepIndex: e.stepIndex, totalSteps: e.totalSteps }) : undefined,
      }));
      o.onProgress?.({ done: i + 1, total: masks, condition });
    }
  } finally {
    await pairs.dispose();
  }
  const fit = fitLabelOffsets(candidates, o.targetVoxels, fixed);
  return {
    offsets: fit.offsets, referenceMaps: o.referenceMaps, targetVoxels: o.targetVoxels.slice(), fittedMasks: masks,
    guidanceScale, solver, steps, seed, date: new Date().toISOString(),
    meanVoxelsBefore: fit.meanVoxelsBefore, meanVoxelsAfter: fit.meanVoxelsAfter,
  };
}
