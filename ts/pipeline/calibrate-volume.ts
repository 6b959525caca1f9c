/**
 * Volume calibration: make requests in mL land where asked.
 *
 * Sweep: `requests` conditions evenly over the training range [0, 1], `samplesPerRequest` masks each (mask stage
 * only; the image stage does not change the label map), each mask's ventricle volume measured. Fit: the mean
 * achieved volume per condition, made monotone by isotonic regression, inverted into a piecewise-linear map from mL
 * to condition (volume-condition.ts). Verify: `requests` targets evenly over the training set's ventricle volumes,
 * generated through the new map with fresh sample indices, and the achieved-vs-requested error reported
 * (Spearman correlation, median relative error, mean absolute error).
 *
 * Sample indices: sweep sample s of condition j is index j * samplesPerRequest + s; verification indices start at
 * 1_000_000, so the two never share noise.
 */
import type { Backend } from '../backend/types.js';
import type { Generator, VolumeCalibration } from '../bundle/generator-bundle.js';
import type { SchedulerType } from '../schedulers/index.js';
import { measureLabelMap } from './generate-dataset.js';
import { LabeledPairGenerator } from './labeled-pair-generator.js';
import { conditionForVolumeMl, fitVolumeCalibration, median, spearman, type CalibrationMeasurement } from './volume-condition.js';
import { generatorGridAffine } from '../bundle/generator-bundle.js';

export interface CalibrateOptions {
  generator: Generator;
  backend: Backend;
  requests?: number;
  samplesPerRequest?: number;
  guidanceScale?: number;
  solver?: SchedulerType;
  steps?: number;
  seed?: number;
  verify?: boolean;
  onProgress?: (e: { phase: 'sweep' | 'verify'; done: number; total: number; condition: number; achievedMl: number }) => void;
  onStep?: (e: { phase: 'sweep' | 'verify'; sample: number; stepIndex: number; totalSteps: number }) => void;
}

export interface VerificationRow {
  requestedMl: number;
  condition: number;
  achievedMl: number[];
}

export interface CalibrationResult {
  calibration: VolumeCalibration;
  sweep: CalibrationMeasurement[];
  verification: { rows: VerificationRow[]; spearman: number; medianRelativeError: number; meanAbsoluteErrorMl: number } | null;
}

export const VERIFY_INDEX_OFFSET = 1_000_000;

function evenly(lo: number, hi: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => (n === 1 ? (lo + hi) / 2 : lo + ((hi - lo) * i) / (n - 1)));
}

export async function calibrateVolume(o: CalibrateOptions): Promise<CalibrationResult> {
  const g = o.generator;
  const requests = o.requests ?? 8;
  const samples = o.samplesPerRequest ?? 4;
  if (!Number.isSafeInteger(requests) || requests < 2) throw new RangeError(`calibrate: 'requests' must be an integer >= 2, got ${requests}`);
  if (!Number.isSafeInteger(samples) || samples < 1) throw new RangeError(`calibrate: 'samplesPerRequest' must be a positive integer, got ${samples}`);
  const guidanceScale = o.guidanceScale ?? g.config.defaults.guidanceScale;
  const solver = o.solver ?? g.config.defaults.solver;
  const steps = o.steps ?? g.config.defaults.steps;
  const seed = o.seed ?? 0;
  const k = g.config.conditioning;
  const affine = generatorGridAffine(g.config.grid);
  const measure = (labels: Uint8Array) => measureLabelMap({ data: labels, shape: [...g.config.grid.shape], affine }, k.ventricleLabels).ventricleMl;

  const pairs = await LabeledPairGenerator.create(o.backend, g);
  try {
    const mask = async (phase: 'sweep' | 'verify', sampleIndex: number, condition: number) => measure(await pairs.generateMask({
      seed, sampleIndex, condition, guidanceScale, solver, steps,
      onStep: o.onStep ? (e) => o.onStep!({ phase, sample: sampleIndex, stepIndex: e.stepIndex, totalSteps: e.totalSteps }) : undefined,
    }));

    const sweep: CalibrationMeasurement[] = [];
    const conditions = evenly(0, 1, requests);
    for (let j = 0; j < requests; j++) {
      for (let s = 0; s < samples; s++) {
        const achievedMl = await mask('sweep', j * samples + s, conditions[j]);
        sweep.push({ condition: conditions[j], achievedMl });
        o.onProgress?.({ phase: 'sweep', done: sweep.length, total: requests * samples, condition: conditions[j], achievedMl });
      }
    }
    const calibration: VolumeCalibration = {
      points: fitVolumeCalibration(sweep), guidanceScale, solver, steps, samplesPerRequest: samples, seed,
      date: new Date().toISOString(), verification: null,
    };

    let verification: CalibrationResult['verification'] = null;
    if (o.verify ?? true) {
      const rows: VerificationRow[] = [];
      const [lo, hi] = k.trainingVentricleMl;
      let n = 0;
      for (const requestedMl of evenly(lo, hi, requests)) {
        const { condition } = conditionForVolumeMl(requestedMl, k, calibration);
        const row: VerificationRow = { requestedMl, condition, achievedMl: [] };
        for (let s = 0; s < samples; s++) {
          const achievedMl = await mask('verify', VERIFY_INDEX_OFFSET + n++, condition);
          row.achievedMl.push(achievedMl);
          o.onProgress?.({ phase: 'verify', done: n, total: requests * samples, condition, achievedMl });
        }
        rows.push(row);
      }
      const requested = rows.flatMap((r) => r.achievedMl.map(() => r.requestedMl));
      const achieved = rows.flatMap((r) => r.achievedMl);
      const relative = achieved.map((a, i) => Math.abs(a - requested[i]) / requested[i]);
      verification = {
        rows,
        spearman: spearman(requested, achieved),
        medianRelativeError: median(relative),
        meanAbsoluteErrorMl: achieved.reduce((acc, a, i) => acc + Math.abs(a - requested[i]), 0) / achieved.length,
      };
      calibration.verification = {
        requests, samplesPerRequest: samples, spearman: Number.isFinite(verification.spearman) ? verification.spearman : null, medianRelativeError: verification.medianRelativeError,
        meanAbsoluteErrorMl: verification.meanAbsoluteErrorMl,
      };
    }
    return { calibration, sweep, verification };
  } finally {
    await pairs.dispose();
  }
}
