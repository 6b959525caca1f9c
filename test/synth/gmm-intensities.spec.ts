/**
 * GMM intensities: the per-class draws follow SynthSeg's priors (T1 normal hyper-priors, random-contrast uniforms,
 * the background override frequencies), and a rendered map's voxels per label have the drawn mean and std within
 * sampling error.
 */
import test from 'ava';
import type { LabelVolume } from '../../ts/labels/label-volume.js';
import { seededRandom } from '../../ts/random/seeded-random.js';
import { classLookup, describeGmm, drawGmmParameters, renderGmm } from '../../ts/synth/gmm-intensities.js';
import { generationClasses, T1_PRIOR_MEANS, T1_PRIOR_STDS } from '../../ts/synth/synthseg-priors.js';

const IDENTITY = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];

/** Slabs along the slowest axis, one label each (`perLabel` voxels per label). */
function slabMap(labels: number[], perLabel = 16 * 16 * 40): LabelVolume {
  const data = new Int32Array(labels.length * perLabel);
  labels.forEach((l, i) => data.fill(l, i * perLabel, (i + 1) * perLabel));
  return { data, shape: [16, 16, (labels.length * perLabel) / 256], affine: IDENTITY };
}

function meanStd(values: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  const mean = s / values.length;
  let q = 0;
  for (let i = 0; i < values.length; i++) q += (values[i] - mean) ** 2;
  return { mean, std: Math.sqrt(q / values.length) };
}

test('T1 draws: class means and stds follow the normal hyper-priors (mean and spread over 3000 images)', (t) => {
  const rng = seededRandom(7, 'gmm-spec', 't1');
  const draws = Array.from({ length: 3000 }, () => drawGmmParameters(rng, 't1'));
  // Classes far from 0 (clipping at 0 negligible): fluid 1, WM 2, GM 3, cerebellum cortex 5, thalamus 6.
  for (const k of [1, 2, 3, 5, 6]) {
    for (const [prior, field] of [[T1_PRIOR_MEANS, 'means'], [T1_PRIOR_STDS, 'stds']] as const) {
      const { mean, std } = meanStd(draws.map((d) => d[field][k]));
      const mu = prior[0][k];
      const sigma = prior[1][k];
      // Clipped draws only matter for the std of fluid (25.6 +- 9.8: 0.5 % below 0); 5 standard errors otherwise.
      t.true(Math.abs(mean - mu) < 5 * sigma / Math.sqrt(draws.length), `class ${k} ${field}: mean ${mean} vs prior ${mu}`);
      t.true(Math.abs(std - sigma) < 0.1 * sigma, `class ${k} ${field}: spread ${std} vs prior ${sigma}`);
    }
  }
  for (const d of draws) for (let k = 1; k < 25; k++) t.true(d.means[k] >= 0 && d.stds[k] >= 0);
});

test('random-contrast draws lie in SynthSeg\'s ranges U(0, 250) and U(0, 30), one per class of 48', (t) => {
  const rng = seededRandom(8, 'gmm-spec', 'random');
  const all: number[] = [];
  for (let i = 0; i < 400; i++) {
    const d = drawGmmParameters(rng, 'random');
    t.is(d.means.length, 48);
    for (let k = 1; k < 48; k++) {
      t.true(d.means[k] >= 0 && d.means[k] < 250);
      t.true(d.stds[k] >= 0 && d.stds[k] < 30);
      all.push(d.means[k]);
    }
  }
  const { mean, std } = meanStd(all);
  t.true(Math.abs(mean - 125) < 3, `mean of U(0, 250) draws ${mean}`);
  t.true(Math.abs(std - 250 / Math.sqrt(12)) < 2, `spread of U(0, 250) draws ${std}`);
});

test('background override: zero in 5 %, low U(0, 15) / U(0, 5) in 25 %, as drawn otherwise', (t) => {
  const rng = seededRandom(9, 'gmm-spec', 'background');
  const n = 4000;
  const seen = { prior: 0, zero: 0, low: 0 };
  for (let i = 0; i < n; i++) {
    const d = drawGmmParameters(rng, i % 2 ? 't1' : 'random');
    seen[d.background]++;
    if (d.background === 'zero') { t.is(d.means[0], 0); t.is(d.stds[0], 0); }
    if (d.background === 'low') t.true(d.means[0] < 15 && d.stds[0] < 5);
  }
  // Binomial 4-sigma bounds.
  const near = (count: number, p: number) => Math.abs(count / n - p) < 4 * Math.sqrt(p * (1 - p) / n);
  t.true(near(seen.zero, 0.05), JSON.stringify(seen));
  t.true(near(seen.low, 0.25), JSON.stringify(seen));
  t.true(near(seen.prior, 0.70), JSON.stringify(seen));
});

test('rendered voxels of each label have the drawn class mean and std (within 5 standard errors)', (t) => {
  for (const contrast of ['t1', 'random'] as const) {
    const labels = [0, 2, 3, 4, 24, 43, 17, 507];
    const map = slabMap(labels);
    const { lut, counts } = classLookup(map, contrast, 'slabs');
    const params = drawGmmParameters(seededRandom(3, 'gmm-spec', contrast), contrast);
    const image = renderGmm(map, lut, params, seededRandom(3, 'gmm-spec', contrast, 'voxels'));
    const per = image.length / labels.length;
    labels.forEach((l, i) => {
      const k = generationClasses(contrast).get(l)!;
      const { mean, std } = meanStd(image.subarray(i * per, (i + 1) * per));
      const mu = params.means[k];
      const sigma = params.stds[k];
      t.true(Math.abs(mean - mu) <= 5 * sigma / Math.sqrt(per) + 1e-4, `${contrast} label ${l}: mean ${mean} vs ${mu}`);
      t.true(Math.abs(std - sigma) <= 5 * sigma / Math.sqrt(2 * per) + 1e-4, `${contrast} label ${l}: std ${std} vs ${sigma}`);
    });
    const described = describeGmm(params, counts);
    t.deepEqual(described.classes.flatMap((c) => c.labels).sort((a, b) => a - b), [...labels].sort((a, b) => a - b));
    for (const c of described.classes) t.is(c.mean, params.means[c.class]);
  }
});

test('labels sharing a T1 class get the same Gaussian; unknown labels are an error naming map, value and count', (t) => {
  const map = slabMap([4, 43, 14]);
  const { lut } = classLookup(map, 't1', 'x');
  t.is(lut[4], lut[43]);
  t.is(lut[4], lut[14]);
  const bad = slabMap([0, 2, 31, 77], 256);
  t.throws(() => classLookup(bad, 't1', 'bad.nii.gz'), {
    instanceOf: RangeError,
    message: /^bad\.nii\.gz: label values 31 \(256 voxels\), 77 \(256 voxels\) are not SynthSeg generation labels; expected values among 0, 14, 15/,
  });
});
