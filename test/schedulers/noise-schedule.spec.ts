/**
 * Noise schedules against MONAI's tensors (test/fixtures/schedulers/schedules.safetensors): the linear and scaled
 * linear schedules bit for bit; sigmoid and cosine within the ulps by which torch's float32 exp/cos (not
 * correctly rounded on CPU) differ from a correctly rounded one.
 */
import test from 'ava';
import { f32, index, loadTensors } from './harness.js';
import {
  COMMON_DEFAULTS, cosineSchedule, cumprodF32, makeNoiseSchedule, torchLinspaceF32, type NoiseScheduleOptions,
} from '../../ts/schedulers/index.js';

/** One unit in the last place of a float32 value. */
function ulp(x: number): number {
  const a = Math.abs(x);
  return a === 0 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
}

function maxUlps(got: Float32Array, want: Float32Array): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]) / ulp(want[i]));
  return m;
}

function maxAbs(got: Float32Array, want: Float32Array): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
  return m;
}

test('every schedule matches MONAI: beta schedules bit for bit, sigmoid/cosine within torch\'s transcendental ulps', async (t) => {
  const st = await loadTensors('schedules.safetensors');
  t.true(index.schedules.length >= 10);
  for (const s of index.schedules) {
    const opts = { ...COMMON_DEFAULTS, ...s.config, semantics: s.semantics } as NoiseScheduleOptions;
    const ours = makeNoiseSchedule(opts);
    const want = {
      betas: f32(st.get(`${s.key}.betas`)), alphas: f32(st.get(`${s.key}.alphas`)), alphasCumprod: f32(st.get(`${s.key}.alphas_cumprod`)),
    };
    t.is(ours.betas.length, want.betas.length, s.key);
    const report = `${s.key}: betas ${maxUlps(ours.betas, want.betas).toFixed(0)} ulp, alphas ${maxUlps(ours.alphas, want.alphas).toFixed(0)} ulp, alphasCumprod ${maxUlps(ours.alphasCumprod, want.alphasCumprod).toFixed(1)} ulp`;
    t.log(report);
    if (opts.schedule === 'linear_beta' || opts.schedule === 'scaled_linear_beta') {
      t.deepEqual(ours.betas, want.betas, report);
      t.deepEqual(ours.alphas, want.alphas, report);
      t.deepEqual(ours.alphasCumprod, want.alphasCumprod, report);
    } else if (opts.schedule === 'sigmoid_beta') {
      t.true(maxUlps(ours.betas, want.betas) <= 2, report);
      t.true(maxUlps(ours.alphas, want.alphas) <= 1, report);
      t.true(maxUlps(ours.alphasCumprod, want.alphasCumprod) <= 4, report);
    } else {
      // cos is 1 ulp off in ~5% of entries; the ratio of neighbouring cos^2 that makes alpha inherits up to
      // 4 ulps of that, and beta = 1 - alpha keeps it as an absolute error (up to 6e-4 relative in the smallest
      // betas near t = 0); the cumulative products drift by a few ulps.
      t.true(maxAbs(ours.alphas, want.alphas) <= 4 * 2 ** -23, report);
      t.true(maxAbs(ours.betas, want.betas) <= 4 * 2 ** -23, report);
      t.true(maxUlps(ours.alphasCumprod, want.alphasCumprod) <= 8, report);
    }
  }
});

test('generative 0.2.3 and MONAI core agree on the beta schedules and differ on cosine', (t) => {
  for (const s of index.schedules) if (s.semantics === 'monai-1.6' && s.config.schedule !== 'cosine') t.true(s.generativeIdentical, s.key);
  const g = cosineSchedule(1000, 8e-3, 'generative-0.2.3');
  const m = cosineSchedule(1000, 8e-3, 'monai-1.6');
  // generative: alphasCumprod is the normalised cos^2 itself, so alphaBar_0 = 1 exactly (and 1 - alphaBar_0 = 0)
  t.is(g.alphasCumprod[0], 1);
  t.true(m.alphasCumprod[0] < 1);
  // generative clips alpha to [1e-4, 0.9999], MONAI core clips beta to [0, 0.999]
  t.is(g.alphas[999], Math.fround(1e-4));
  t.is(m.betas[999], Math.fround(0.999));
  t.is(g.alphas[0], Math.fround(0.9999));
});

test('torchLinspaceF32 reproduces torch.linspace float32 (fused step, halves from both ends) and half-even rounding cases', (t) => {
  t.deepEqual(Array.from(torchLinspaceF32(0, 1, 0)), []);
  t.deepEqual(Array.from(torchLinspaceF32(3, 7, 1)), [3]);
  const x = torchLinspaceF32(999, 0, 7);
  t.deepEqual(Array.from(x), [999, 832.5, 666, 499.5, 333, 166.5, 0]);
  const b = torchLinspaceF32(1e-4, 2e-2, 1000);
  t.is(b[0], Math.fround(1e-4));
  t.is(b[999], Math.fround(2e-2)); // the second half counts down from the end, so the end is exact
});

test('cumprodF32 accumulates in float64 like torch.cumprod on CPU', (t) => {
  const a = Float32Array.from({ length: 1000 }, (_, i) => Math.fround(1 - 1e-4 - (i * (2e-2 - 1e-4)) / 999));
  const ours = cumprodF32(a);
  let acc = 1;
  const f32acc = new Float32Array(1000);
  for (let i = 0; i < 1000; i++) f32acc[i] = acc = Math.fround(acc * a[i]);
  t.not(ours[999], f32acc[999]);
  let d = 1;
  for (let i = 0; i < 1000; i++) d *= a[i];
  t.is(ours[999], Math.fround(d));
});
