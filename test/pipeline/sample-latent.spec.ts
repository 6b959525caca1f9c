/**
 * The latent sampling loop with classifier-free guidance against a PyTorch reference made of MONAI's own
 * scheduler (generative 0.2.3) and DiffusionModelUNet: train/make_sampling_fixtures.py runs the thesis's loop
 * (doubled batch [cond; uncond], null context [u, 0] with one scalar u, eps = uncond + w (cond - uncond)) on the
 * `mask_unet_thesis` parity case and records every step's latent. Here the same model.pth is imported as the user
 * would (brain-ldm import), and every step's latent must match on every backend to relative L2 <= 1e-4.
 *
 * The sampling fixtures (test/fixtures/sampling) are committed; the parity model they need is generated
 * (`.venv/bin/python train/make_parity_fixtures.py`), so without it the parity tests skip, or fail when
 * BRAIN_LDM_REQUIRE_PARITY=1. The unit tests of guidance.ts and the argument checks need no fixture.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NetworkHandle, NetworkTensors } from '../../ts/backend/types.js';
import { importCheckpoint } from '../../ts/bundle/import-checkpoint.js';
import { readSafetensors } from '../../ts/io/safetensors.js';
import { loadNetwork, validateNetworkWeights } from '../../ts/nets/network.js';
import { combineGuidance, guidedContext, nullContext } from '../../ts/pipeline/guidance.js';
import { sampleLatent } from '../../ts/pipeline/sample-latent.js';
import { createScheduler, type SchedulerConfigInput } from '../../ts/schedulers/index.js';
import { testBackends } from '../helpers/backends.js';
import { relL2 } from '../helpers/reference.js';

const samplingDir = fileURLToPath(new URL('../fixtures/sampling/', import.meta.url));
const parityDir = process.env.BRAIN_LDM_PARITY_DIR ?? fileURLToPath(new URL('../fixtures/parity/', import.meta.url));

interface SamplingCase {
  name: string;
  scheduler: Record<string, unknown> & { type: string };
  steps: number;
  guidance_scale: number;
  timesteps: number[];
  latent_shape: number[];
  noise_steps: number[];
  u: number;
}
interface SamplingIndex {
  parity_case: string;
  parity_model_sha256: string;
  schedule: Record<string, unknown>;
  cases: SamplingCase[];
}

const TOL = 1e-4;

// ------------------------------------------------------------------------------------------------------------
// Parity with the PyTorch loop.

const index: SamplingIndex = JSON.parse(readFileSync(join(samplingDir, 'index.json'), 'utf8'));
const parityCaseDir = join(parityDir, index.parity_case);
const modelPath = join(parityCaseDir, 'model.pth');

if (!existsSync(modelPath)) {
  if (process.env.BRAIN_LDM_REQUIRE_PARITY) test('sampling: parity model exists', (t) => t.fail(`${modelPath} is missing: run train/make_parity_fixtures.py`));
  else test.skip(`sampling parity: ${index.parity_case} not generated (train/make_parity_fixtures.py)`, () => {});
} else {
  const pcase = JSON.parse(readFileSync(join(parityCaseDir, 'case.json'), 'utf8'));
  const work = mkdtempSync(join(tmpdir(), 'brain-ldm-sampling-'));
  test.after.always(() => rmSync(work, { recursive: true, force: true }));
  let bundle: Promise<string> | undefined;
  const bundleDir = () => (bundle ??= importCheckpoint({
    file: modelPath, network: pcase.network, args: pcase.args, out: join(work, index.parity_case), validate: validateNetworkWeights,
  }).then(() => join(work, index.parity_case)));

  test('sampling fixtures were made from this parity model', (t) => {
    const sha = createHash('sha256').update(readFileSync(modelPath)).digest('hex');
    t.is(sha, index.parity_model_sha256, `${modelPath} differs from the model the sampling fixtures were made with: rerun train/make_sampling_fixtures.py`);
  });

  for (const b of testBackends()) {
    test(`sampling parity, all cases [${b.label}]`, async (t) => {
      const backend = await b.create();
      try {
        const { network } = await loadNetwork(backend, await bundleDir());
        try {
          for (const c of index.cases) {
            const tensors = (await readSafetensors(join(samplingDir, `${c.name}.safetensors`))).tensors;
            const get = (k: string) => tensors.get(k)!.data as Float32Array;
            const getT = (k: string) => ({ shape: tensors.get(k)!.shape, data: get(k) });
            const scheduler = createScheduler({ ...index.schedule, ...c.scheduler } as SchedulerConfigInput);
            const errors: number[] = [];
            const seen: number[] = [];
            const u = get('u')[0];
            const ctxShape = tensors.get('context_cond')!.shape as [number, number, number];
            const nul = nullContext({ convention: 'thesis', u }, ctxShape);
            t.deepEqual(Array.from(nul.data), Array.from(get('context_uncond')), `${c.name}: thesis null context`);
            const noiseAsked: number[] = [];
            const final = await sampleLatent({
              network, scheduler, steps: c.steps, shape: c.latent_shape,
              initialNoise: get('initial_noise'),
              context: getT('context_cond'),
              guidanceScale: c.guidance_scale,
              nullContext: nul,
              noiseForStep: (i) => {
                noiseAsked.push(i);
                return tensors.get(`noise.${i}`)?.data as Float32Array | undefined;
              },
              onStep: ({ stepIndex, t: ts, latent }) => {
                seen.push(ts);
                errors.push(relL2(latent, get(`latent.${stepIndex}`)));
              },
            });
            t.deepEqual(seen, c.timesteps, `${c.name}: timesteps`);
            t.deepEqual(noiseAsked, c.noise_steps, `${c.name}: noise asked exactly where MONAI drew it`);
            t.deepEqual([...final.shape], c.latent_shape);
            const finalErr = relL2(final.data, get('final'));
            t.log(`${c.name}: per-step rel L2 ${errors.map((e) => e.toExponential(2)).join(' ')}; final ${finalErr.toExponential(2)}`);
            errors.forEach((e, i) => t.true(e <= TOL, `${c.name} step ${i}: relative L2 ${e.toExponential(3)}`));
            t.true(finalErr <= TOL, `${c.name} final: relative L2 ${finalErr.toExponential(3)}`);
          }
        } finally {
          await network.dispose();
        }
      } finally {
        await backend.dispose();
      }
    });
  }
}

// ------------------------------------------------------------------------------------------------------------
// guidance.ts

test('nullContext: thesis [u, 0], MONAI core all -1, configured vector', (t) => {
  t.deepEqual(Array.from(nullContext({ convention: 'thesis', u: 0.25 }, [2, 1, 2]).data), [0.25, 0, 0.25, 0]);
  t.deepEqual(Array.from(nullContext({ convention: 'monai' }, [1, 2, 2]).data), [-1, -1, -1, -1]);
  t.deepEqual(Array.from(nullContext({ convention: 'monai', fillValue: 0 }, [1, 1, 3]).data), [0, 0, 0]);
  t.deepEqual(Array.from(nullContext({ convention: 'vector', vector: [0.5, -2] }, [2, 1, 2]).data), [0.5, -2, 0.5, -2]);
  t.deepEqual([...nullContext({ convention: 'thesis', u: 0.1 }, [3, 1, 2]).shape], [3, 1, 2]);
  t.throws(() => nullContext({ convention: 'thesis', u: 0.5 }, [1, 1, 3]), { instanceOf: RangeError, message: /cross_attention_dim 2/ });
  t.throws(() => nullContext({ convention: 'thesis', u: Number.NaN }, [1, 1, 2]), { instanceOf: TypeError, message: /spec\.u/ });
  t.throws(() => nullContext({ convention: 'vector', vector: [1] }, [1, 1, 2]), { instanceOf: RangeError, message: /spec\.vector/ });
  t.throws(() => nullContext({ convention: 'nope' } as never, [1, 1, 2]), { instanceOf: RangeError, message: /convention/ });
  t.throws(() => nullContext({ convention: 'monai' }, [1, 2]), { instanceOf: RangeError, message: /'shape'/ });
});

test('guidedContext: [cond; uncond] (thesis) or [uncond; cond] (MONAI core), null context broadcast over the batch', (t) => {
  const cond = { shape: [2, 1, 2], data: Float32Array.of(0.3, 1, 0.7, 1) };
  const nul = nullContext({ convention: 'thesis', u: 0.9 }, [1, 1, 2]);
  const g = guidedContext(cond, nul);
  t.deepEqual([...g.shape], [4, 1, 2]);
  t.deepEqual(Array.from(g.data), Array.from(Float32Array.of(0.3, 1, 0.7, 1, 0.9, 0, 0.9, 0)));
  const m = guidedContext(cond, nullContext({ convention: 'monai' }, [2, 1, 2]), 'uncond-first');
  t.deepEqual(Array.from(m.data), Array.from(Float32Array.of(-1, -1, -1, -1, 0.3, 1, 0.7, 1)));
  t.throws(() => guidedContext(cond, nullContext({ convention: 'monai' }, [1, 1, 3])), { instanceOf: RangeError, message: /nullContext/ });
  t.throws(() => guidedContext({ shape: [2, 2], data: new Float32Array(4) }, nul), { instanceOf: RangeError, message: /'cond'.*\[B, S, D\]/ });
  t.throws(() => guidedContext({ shape: [2, 1, 2], data: new Float32Array(3) }, nul), { instanceOf: RangeError, message: /'cond' has 3 elements/ });
  t.throws(() => guidedContext(cond, nullContext({ convention: 'monai' }, [3, 1, 2])), { instanceOf: RangeError, message: /batch 3/ });
});

test('combineGuidance: uncond + w (cond - uncond) in float32, torch operation order; w = 1 is the conditional half', (t) => {
  const cond = Float32Array.of(1.1, -0.3, 2.5e-3, 7);
  const unc = Float32Array.of(0.9, 0.2, -1e-3, 7);
  const eps = new Float32Array(8);
  eps.set(cond, 0);
  eps.set(unc, 4);
  const w = 3.3;
  const want = Array.from(cond, (c, i) => Math.fround(unc[i] + Math.fround(Math.fround(w) * Math.fround(c - unc[i]))));
  t.deepEqual(Array.from(combineGuidance(eps, w)), want);
  const swapped = new Float32Array(8);
  swapped.set(unc, 0);
  swapped.set(cond, 4);
  t.deepEqual(Array.from(combineGuidance(swapped, w, 'uncond-first')), want);
  t.deepEqual(Array.from(combineGuidance(eps, 1)), Array.from(cond));
  t.deepEqual(Array.from(combineGuidance(eps, 0)), Array.from(unc));
  t.throws(() => combineGuidance(new Float32Array(3), 2), { instanceOf: RangeError, message: /even/ });
  t.throws(() => combineGuidance(eps, -1), { instanceOf: RangeError, message: /guidanceScale/ });
});

// ------------------------------------------------------------------------------------------------------------
// sampleLatent with a fake network: batch doubling, context order, single pass at w = 1, argument errors.

interface Call { x: number[]; t: number[]; tShape: number[]; ctx: number[] | null; batch: number }

/** eps = 0.1 * x + context[b][0] per batch item (so guidance and ordering are visible in the result). */
function fakeNetwork(calls: Call[]): NetworkHandle {
  return {
    entries: ['forward'],
    async run(_entry: string, inputs: Readonly<NetworkTensors>): Promise<NetworkTensors> {
      const { x, timesteps, context } = inputs;
      const batch = x.shape[0];
      calls.push({ x: Array.from(x.data), t: Array.from(timesteps.data), tShape: [...timesteps.shape], ctx: context ? Array.from(context.data) : null, batch });
      const per = x.data.length / batch;
      const out = new Float32Array(x.data.length);
      for (let i = 0; i < out.length; i++) {
        const b = Math.floor(i / per);
        out[i] = 0.1 * x.data[i] + (context ? context.data[b * (context.data.length / batch)] : 0);
      }
      return { out: { shape: x.shape, data: out } };
    },
    stats: () => ({ bufferAllocations: 0, bufferBytes: 0 }),
    dispose: async () => {},
  };
}

const THESIS = { numTrainTimesteps: 1000, schedule: 'scaled_linear_beta', betaStart: 0.0015, betaEnd: 0.0205, clipSample: false } as const;
const shape = [1, 2, 2, 2, 2];
const n = 16;
const noise0 = Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1));
const cond = { shape: [1, 1, 2], data: Float32Array.of(0.4, 1) };
const nul = nullContext({ convention: 'thesis', u: 0.8 }, [1, 1, 2]);

test('sampleLatent: w = 1 is one conditional pass per step; timesteps float32 [1]; onStep sees every step', async (t) => {
  const calls: Call[] = [];
  const steps: number[] = [];
  await sampleLatent({
    network: fakeNetwork(calls), scheduler: createScheduler({ type: 'ddim', ...THESIS }), steps: 3, shape, initialNoise: noise0,
    context: cond, guidanceScale: 1, nullContext: nul, onStep: ({ stepIndex, totalSteps }) => { steps.push(stepIndex); t.is(totalSteps, 3); },
  });
  t.deepEqual(steps, [0, 1, 2]);
  t.is(calls.length, 3);
  for (const c of calls) {
    t.is(c.batch, 1);
    t.deepEqual(c.tShape, [1]);
    t.deepEqual(c.ctx, Array.from(cond.data));
  }
  t.deepEqual(calls.map((c) => c.t[0]), [666, 333, 0]);
  t.deepEqual(calls[0].x, Array.from(noise0));
});

test('sampleLatent: w != 1 doubles the batch, [cond; uncond] by default, [uncond; cond] on request, same result', async (t) => {
  const run = async (order: 'cond-first' | 'uncond-first') => {
    const calls: Call[] = [];
    const out = await sampleLatent({
      network: fakeNetwork(calls), scheduler: createScheduler({ type: 'ddim', ...THESIS }), steps: 2, shape, initialNoise: noise0,
      context: cond, guidanceScale: 3, nullContext: nul, guidanceOrder: order,
    });
    return { calls, out };
  };
  const a = await run('cond-first');
  const b = await run('uncond-first');
  t.is(a.calls[0].batch, 2);
  t.deepEqual(a.calls[0].x.slice(0, n), a.calls[0].x.slice(n));
  t.deepEqual(a.calls[0].ctx, Array.from(Float32Array.of(0.4, 1, 0.8, 0)));
  t.deepEqual(b.calls[0].ctx, Array.from(Float32Array.of(0.8, 0, 0.4, 1)));
  t.deepEqual(Array.from(a.out.data), Array.from(b.out.data));
  // One hand-made step: eps = uncond + 3 (cond - uncond) with eps_k = 0.1 x + ctx_k[0].
  const s = createScheduler({ type: 'ddim', ...THESIS });
  s.setTimesteps(2);
  const t0 = s.timesteps[0];
  const epsC = noise0.map((v) => Math.fround(Math.fround(0.1 * v) + Math.fround(0.4)));
  const epsU = noise0.map((v) => Math.fround(Math.fround(0.1 * v) + Math.fround(0.8)));
  const eps = epsC.map((c, i) => Math.fround(epsU[i] + Math.fround(3 * Math.fround(c - epsU[i]))));
  const x1 = s.step(eps, t0, noise0).prevSample;
  t.deepEqual(a.calls[1].x.slice(0, n), Array.from(x1));
});

test('sampleLatent: DDPM asks for noise only where the scheduler draws it', async (t) => {
  const asked: Array<[number, number]> = [];
  await sampleLatent({
    network: fakeNetwork([]), scheduler: createScheduler({ type: 'ddpm', ...THESIS }), steps: 3, shape, initialNoise: noise0, context: cond,
    noiseForStep: (i, ts) => { asked.push([i, ts]); return new Float32Array(n); },
  });
  t.deepEqual(asked, [[0, 666], [1, 333]]);
});

test('sampleLatent: argument errors name the argument', async (t) => {
  const base = { network: fakeNetwork([]), steps: 2, shape, initialNoise: noise0, context: cond };
  const ddim = () => createScheduler({ type: 'ddim', ...THESIS });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddim(), guidanceScale: 0.5 }), { instanceOf: RangeError, message: /'guidanceScale'.*no unconditional path/ });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddim(), guidanceScale: 3 }), { instanceOf: RangeError, message: /'guidanceScale'/ });
  await t.throwsAsync(sampleLatent({ ...base, context: null, scheduler: ddim(), guidanceScale: 3, nullContext: nul }), { instanceOf: RangeError, message: /'guidanceScale'/ });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddim(), guidanceScale: -1, nullContext: nul }), { instanceOf: RangeError, message: /'guidanceScale'/ });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddim(), guidanceScale: Number.NaN, nullContext: nul }), { instanceOf: TypeError, message: /'guidanceScale'/ });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddim(), context: { shape: [1, 2], data: new Float32Array(2) } }), { instanceOf: RangeError, message: /'context'/ });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddim(), context: { shape: [3, 1, 2], data: new Float32Array(6) } }), { instanceOf: RangeError, message: /'context' has batch 3/ });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddim(), guidanceScale: 2, nullContext: nullContext({ convention: 'monai' }, [1, 1, 3]) }), { instanceOf: RangeError, message: /nullContext/ });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddim(), initialNoise: new Float32Array(n - 1) }), { instanceOf: RangeError, message: /'initialNoise'/ });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddim(), shape: [1, 2, 0] }), { instanceOf: RangeError, message: /'shape'/ });
  const ddpm = () => createScheduler({ type: 'ddpm', ...THESIS });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddpm() }), { instanceOf: TypeError, message: /'noiseForStep'/ });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddpm(), noiseForStep: () => undefined }), { instanceOf: TypeError, message: /'noiseForStep' returned undefined/ });
  await t.throwsAsync(sampleLatent({ ...base, scheduler: ddpm(), noiseForStep: () => new Float32Array(n + 1) }), { instanceOf: RangeError, message: /'noiseForStep' returned 17 elements/ });
});
