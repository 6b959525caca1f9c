import test from 'ava';
import type { VolumeCalibration, VolumeConditioning } from '../../ts/bundle/generator-bundle.js';
import { seededRandom } from '../../ts/random/seeded-random.js';
import {
  CALIBRATION_EXTRAPOLATION, conditionForRatio, conditionForVolumeMl, fitVolumeCalibration, interpolateLinear, isotonicFit,
  median, referenceVolumeMlForCondition, spearman,
} from '../../ts/pipeline/volume-condition.js';

const K: VolumeConditioning = {
  quantity: 'ventricle-icv-ratio', ventricleLabels: [4, 5, 43, 44, 14, 15], ratioMin: 0.01, ratioMax: 0.09, referenceIcvMl: 1500,
  trainingVentricleMl: [15, 135], nullContext: { convention: 'thesis' }, guidanceOrder: 'cond-first',
};

/** The min-max formula of the isotonic regression (Robertson et al. 1988): an independent O(n^3) reference. */
function isotonicReference(y: number[], w: number[]): number[] {
  const n = y.length;
  const mean = (j: number, k: number) => {
    let s = 0, ws = 0;
    for (let i = j; i <= k; i++) { s += y[i] * w[i]; ws += w[i]; }
    return s / ws;
  };
  return y.map((_, i) => {
    let best = -Infinity;
    for (let j = 0; j <= i; j++) {
      let m = Infinity;
      for (let k = i; k < n; k++) m = Math.min(m, mean(j, k));
      best = Math.max(best, m);
    }
    return best;
  });
}

test('isotonic fit equals the min-max formula on random data, and is non-decreasing', (t) => {
  t.deepEqual(isotonicFit([1, 3, 2, 4]), [1, 2.5, 2.5, 4]);
  const rng = seededRandom(1, 'isotonic');
  for (let trial = 0; trial < 50; trial++) {
    const n = 2 + rng.int(12);
    const y = Array.from({ length: n }, (_, i) => i * 0.3 + rng.normal(0, 1));
    const w = Array.from({ length: n }, () => 1 + rng.int(4));
    const got = isotonicFit(y, w);
    const want = isotonicReference(y, w);
    got.forEach((v, i) => t.true(Math.abs(v - want[i]) < 1e-9, `trial ${trial} i ${i}: ${v} vs ${want[i]}`));
    for (let i = 1; i < n; i++) t.true(got[i] >= got[i - 1] - 1e-12);
  }
});

test('spearman: the no-ties formula, ties by average ranks, reversed order', (t) => {
  const rng = seededRandom(2, 'spearman');
  const x = Array.from({ length: 30 }, () => rng.next());
  const y = x.map((v) => v + rng.normal(0, 0.3));
  const rank = (v: number[]) => v.map((a) => v.filter((b) => b < a).length + 1);
  const rx = rank(x), ry = rank(y);
  const d2 = rx.reduce((s, r, i) => s + (r - ry[i]) ** 2, 0);
  t.true(Math.abs(spearman(x, y) - (1 - (6 * d2) / (30 * (30 * 30 - 1)))) < 1e-12);
  // Ties: ranks of [5, 6, 7, 8, 7] are [1, 2, 3.5, 5, 3.5]; Pearson of those with [1..5] = 0.820782681668...
  t.true(Math.abs(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) - 0.8207826816681233) < 1e-12);
  t.is(spearman([1, 2, 3], [3, 2, 1]), -1);
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 2, 3]), 2.5);
});

test('without calibration, mL -> ratio over the reference ICV -> min-max condition, and back', (t) => {
  const r = conditionForVolumeMl(60, K, null);
  t.is(r.source, 'reference-icv');
  t.false(r.extrapolated);
  t.true(Math.abs(r.condition - conditionForRatio(60 / 1500, K)) < 1e-15);
  t.true(Math.abs(referenceVolumeMlForCondition(r.condition, K) - 60) < 1e-9);
  t.is(r.extrapolation, null);
  t.true(conditionForVolumeMl(200, K, null).extrapolated);
  t.is(conditionForVolumeMl(10, K, null).extrapolation, '10 mL lies outside the training range 15-135 mL');
  t.throws(() => conditionForVolumeMl(-3, K, null), { message: /positive volume in mL, got -3/ });
  t.throws(() => conditionForVolumeMl(Number.NaN, K, null), { message: /must be a number of mL/ });
});

test('calibration: a monotone measured map is inverted; pooled stretches collapse; extrapolation is bounded', (t) => {
  // Achieved volume rises with the condition except for one dip, which isotonic regression pools.
  const measurements = [
    { condition: 0, achievedMl: 20 }, { condition: 0, achievedMl: 22 },
    { condition: 0.25, achievedMl: 40 }, { condition: 0.5, achievedMl: 38 },
    { condition: 0.75, achievedMl: 80 }, { condition: 1, achievedMl: 120 },
  ];
  const points = fitVolumeCalibration(measurements);
  t.deepEqual(points, [[21, 0], [39, 0.375], [80, 0.75], [120, 1]]);
  const cal: VolumeCalibration = { points, guidanceScale: 3, solver: 'dpm-solver++', steps: 20, samplesPerRequest: 2, seed: 0, date: '2026-01-01T00:00:00Z', verification: null };
  const mid = conditionForVolumeMl(100, K, cal);
  t.is(mid.source, 'calibration');
  t.true(Math.abs(mid.condition - 0.875) < 1e-12);
  t.true(Math.abs(interpolateLinear([0, 1], [0, 2], 3) - 6) < 1e-12, 'straight line past the end');
  const far = conditionForVolumeMl(1000, K, cal);
  t.is(far.condition, 1 + CALIBRATION_EXTRAPOLATION);
  t.true(far.extrapolated);
  t.is(far.extrapolation, '1000 mL lies outside the training range 15-135 mL');
  // Inside the training range but outside what the model reached when calibrated: the warning names the calibrated range.
  const narrow = conditionForVolumeMl(130, K, cal);
  t.true(narrow.extrapolated);
  t.is(narrow.extrapolation, '130 mL lies outside the calibrated range 21-120 mL');
  t.is(conditionForVolumeMl(50, K, cal).extrapolation, null);
  t.throws(() => fitVolumeCalibration([{ condition: 0, achievedMl: 30 }, { condition: 1, achievedMl: 20 }]), { message: /does not increase with the condition/ });
});
