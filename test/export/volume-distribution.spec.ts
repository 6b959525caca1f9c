import test from 'ava';
import { parseVolumeDistribution } from '../../ts/export/volume-distribution.js';
import { seededRandom } from '../../ts/random/seeded-random.js';

function moments(values: number[]): { mean: number; sd: number; min: number; max: number } {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const sd = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1));
  return { mean, sd, min: Math.min(...values), max: Math.max(...values) };
}

const draws = (spec: string, n: number, seed = 11) => {
  const d = parseVolumeDistribution(spec);
  return Array.from({ length: n }, (_, i) => d.draw(i, seed));
};

/** Mean and sd of N(mu, sigma^2) restricted to [lo, hi], by midpoint integration of the density (independent of the sampler). */
function truncatedNormalMoments(mu: number, sigma: number, lo: number, hi: number): { mean: number; sd: number } {
  const steps = 200000;
  const h = (hi - lo) / steps;
  let m0 = 0, m1 = 0, m2 = 0;
  for (let i = 0; i < steps; i++) {
    const x = lo + (i + 0.5) * h;
    const p = Math.exp(-0.5 * ((x - mu) / sigma) ** 2);
    m0 += p; m1 += p * x; m2 += p * x * x;
  }
  const mean = m1 / m0;
  return { mean, sd: Math.sqrt(m2 / m0 - mean * mean) };
}

test('a draw is a pure function of (seed, sampleIndex): order and other samples do not matter', (t) => {
  for (const spec of ['uniform:20:120', 'normal:60:15', 'normal:60:30:20:100']) {
    const d = parseVolumeDistribution(spec);
    const forward = [0, 1, 2, 3, 4, 5].map((i) => d.draw(i, 42));
    const backward = [5, 4, 3, 2, 1, 0].map((i) => d.draw(i, 42)).reverse();
    t.deepEqual(forward, backward, spec);
    t.is(d.draw(3, 42), forward[3]);
    t.not(d.draw(3, 43), forward[3], `${spec}: another seed gives another volume`);
    t.is(new Set(forward).size, 6, `${spec}: samples differ`);
  }
  // The stream is the documented one: (seed, 'ventricle-volume', sampleIndex).
  t.is(parseVolumeDistribution('uniform:20:120').draw(7, 5), seededRandom(5, 'ventricle-volume', 7).uniform(20, 120));
});

test('uniform:A:B stays in [A, B) with the uniform mean and sd', (t) => {
  const v = draws('uniform:20:120', 40000);
  const m = moments(v);
  t.true(m.min >= 20 && m.max < 120, `range ${m.min}..${m.max}`);
  t.true(m.min < 20.1 && m.max > 119.9, 'fills the range');
  t.true(Math.abs(m.mean - 70) < 0.6, `mean ${m.mean}`);
  t.true(Math.abs(m.sd - 100 / Math.sqrt(12)) < 0.5, `sd ${m.sd}`);
  const d = parseVolumeDistribution('uniform:20:120');
  t.is(d.kind, 'uniform');
  t.deepEqual([d.min, d.max], [20, 120]);
});

test('normal:MEAN:SD has the right moments and is truncated at 0', (t) => {
  const m = moments(draws('normal:60:15', 40000));
  t.true(Math.abs(m.mean - 60) < 0.3, `mean ${m.mean}`);
  t.true(Math.abs(m.sd - 15) < 0.3, `sd ${m.sd}`);
  // 31 % of N(5, 10^2) lies below 0: those draws are redrawn, so the moments are the truncated ones.
  const v = draws('normal:5:10', 40000);
  t.true(Math.min(...v) >= 0);
  const ref = truncatedNormalMoments(5, 10, 0, 200);
  const w = moments(v);
  t.true(Math.abs(w.mean - ref.mean) < 0.15, `mean ${w.mean} vs ${ref.mean}`);
  t.true(Math.abs(w.sd - ref.sd) < 0.15, `sd ${w.sd} vs ${ref.sd}`);
  const d = parseVolumeDistribution('normal:60:15');
  t.deepEqual([d.min, d.max], [0, Infinity]);
});

test('normal:MEAN:SD:LO:HI stays in [LO, HI] with the truncated-normal moments', (t) => {
  const v = draws('normal:50:40:30:150', 40000);
  const m = moments(v);
  t.true(m.min >= 30 && m.max <= 150, `range ${m.min}..${m.max}`);
  const ref = truncatedNormalMoments(50, 40, 30, 150);
  t.true(Math.abs(m.mean - ref.mean) < 0.5, `mean ${m.mean} vs ${ref.mean}`);
  t.true(Math.abs(m.sd - ref.sd) < 0.5, `sd ${m.sd} vs ${ref.sd}`);
});

test('list:... cycles by sample index and fixed:V is constant, whatever the seed', (t) => {
  const d = parseVolumeDistribution('list:20,40,80');
  t.deepEqual([0, 1, 2, 3, 4, 5, 6].map((i) => d.draw(i, 1)), [20, 40, 80, 20, 40, 80, 20]);
  t.is(d.draw(4, 999), 40);
  t.deepEqual([d.min, d.max], [20, 80]);
  const f = parseVolumeDistribution('fixed:55.5');
  t.deepEqual([0, 1, 100].map((i) => f.draw(i, i)), [55.5, 55.5, 55.5]);
  t.is(parseVolumeDistribution('list:1e2').draw(3, 0), 100);
});

test('bad specs are errors naming the spec and the field', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /--volume-dist: expected a distribution such as 'uniform:20:120'/],
    ['gamma:2:3', /--volume-dist "gamma:2:3": unknown distribution "gamma"/],
    ['uniform:20', /--volume-dist "uniform:20": 'uniform' takes uniform:A:B, got 1 field/],
    ['uniform:120:20', /--volume-dist "uniform:120:20": field B \(upper bound, 20 mL\) must be greater than A \(lower bound, 120 mL\)/],
    ['uniform:20:20', /field B .* must be greater than A/],
    ['uniform:-5:20', /--volume-dist "uniform:-5:20": field A must be >= 0 mL, got -5/],
    ['uniform:abc:20', /--volume-dist "uniform:abc:20": field A must be a number \(mL\), got "abc"/],
    ['uniform::20', /field A is missing/],
    ['normal:60:0', /field SD must be > 0 mL, got 0/],
    ['normal:60:10:100:50', /field HI \(50 mL\) must be greater than LO \(100 mL\)/],
    ['normal:60:10:20', /'normal' takes normal:MEAN:SD or normal:MEAN:SD:LO:HI, got 3 fields/],
    ['normal:10:1:200:300', /\[200, 300\] mL holds only .* of N\(10, 1\^2\)/],
    ['normal:NaN:10', /field MEAN must be a number/],
    ['fixed:Infinity', /field V must be a number/],
    ['fixed:0x10', /field V must be a number/],
    ['list:', /field V1,V2,... is empty/],
    ['list:20,,40', /field V2 is missing/],
    ['list:20,-1', /field V2 must be >= 0 mL, got -1/],
  ];
  for (const [spec, message] of cases) t.throws(() => parseVolumeDistribution(spec), { message }, spec);
  t.throws(() => parseVolumeDistribution('fixed:-1', '--dist'), { message: /^--dist "fixed:-1": field V/ }, 'the option name is the caller\'s');
});

test('draw() rejects a bad sample index or seed', (t) => {
  const d = parseVolumeDistribution('uniform:1:2');
  t.throws(() => d.draw(-1, 0), { message: /'sampleIndex' must be an integer >= 0, got -1/ });
  t.throws(() => d.draw(1.5, 0), { message: /'sampleIndex'/ });
  t.throws(() => d.draw(0, 0.5), { message: /'seed' must be a safe integer, got 0.5/ });
});
