/**
 * The scheduler contract: config validation (errors name the field), config round trip, misuse errors naming
 * the call to make first, argument checks, state reset (PNDM, DPM-Solver++), add_noise / get_velocity against
 * MONAI, and schedulerConfigFromMonai.
 */
import test from 'ava';
import { f32, fakeModel, index, loadInputs, loadTensors, relError, TOLERANCE } from './harness.js';
import {
  createScheduler, schedulerConfigFromMonai, DdimScheduler, DdpmScheduler, DpmSolverMultistepScheduler, PndmScheduler,
  SchedulerStateError, SCHEDULER_TYPES, type SchedulerConfigInput, type Scheduler,
} from '../../ts/schedulers/index.js';

const bad = (v: unknown) => v as never;

test('createScheduler validates type and every field, naming it', (t) => {
  t.throws(() => createScheduler(bad(null)), { instanceOf: TypeError, message: /argument 'config'/ });
  t.throws(() => createScheduler(bad({})), { instanceOf: TypeError, message: /config\.type must be one of 'ddpm', 'ddim', 'pndm', 'dpm-solver\+\+'/ });
  t.throws(() => createScheduler(bad({ type: 'euler' })), { instanceOf: RangeError, message: /config\.type .* got "euler"/ });
  t.throws(() => createScheduler(bad({ type: 'ddim', betaStrat: 0.001 })), { instanceOf: RangeError, message: /config\.betaStrat is not a DdimScheduler option/ });
  t.throws(() => createScheduler(bad({ type: 'ddpm', betaStart: '0.001' })), { instanceOf: TypeError, message: /config\.betaStart must be a finite number/ });
  t.throws(() => createScheduler(bad({ type: 'ddpm', betaEnd: 1.5 })), { instanceOf: RangeError, message: /config\.betaEnd must be in \[0, 1\)/ });
  t.throws(() => createScheduler(bad({ type: 'ddpm', numTrainTimesteps: 10.5 })), { instanceOf: TypeError, message: /config\.numTrainTimesteps must be an integer/ });
  t.throws(() => createScheduler(bad({ type: 'ddpm', numTrainTimesteps: 0 })), { instanceOf: RangeError, message: /config\.numTrainTimesteps/ });
  t.throws(() => createScheduler(bad({ type: 'ddpm', schedule: 'quadratic' })), { instanceOf: RangeError, message: /config\.schedule must be one of "linear_beta", "scaled_linear_beta", "sigmoid_beta", "cosine"/ });
  t.throws(() => createScheduler(bad({ type: 'ddpm', predictionType: 'x0' })), { instanceOf: RangeError, message: /config\.predictionType/ });
  t.throws(() => createScheduler(bad({ type: 'pndm', predictionType: 'sample' })), { instanceOf: RangeError, message: /config\.predictionType must be one of "epsilon", "v_prediction"/ });
  t.throws(() => createScheduler(bad({ type: 'ddpm', varianceType: 'fixed' })), { instanceOf: RangeError, message: /config\.varianceType/ });
  t.throws(() => createScheduler(bad({ type: 'ddpm', clipSample: 1 })), { instanceOf: TypeError, message: /config\.clipSample must be true or false/ });
  t.throws(() => createScheduler(bad({ type: 'ddim', clipSampleMin: 2 })), { instanceOf: RangeError, message: /config\.clipSampleMin \(2\) must not exceed config\.clipSampleMax/ });
  t.throws(() => createScheduler(bad({ type: 'ddim', stepsOffset: 1000 })), { instanceOf: RangeError, message: /config\.stepsOffset must be in \[0, 999\]/ });
  t.throws(() => createScheduler(bad({ type: 'ddim', eta: -0.5 })), { instanceOf: RangeError, message: /config\.eta must be >= 0/ });
  t.throws(() => createScheduler(bad({ type: 'ddim', semantics: 'monai-1.5' })), { instanceOf: RangeError, message: /config\.semantics must be one of "generative-0\.2\.3", "monai-1\.6"/ });
  t.throws(() => createScheduler(bad({ type: 'ddpm', eta: 0.5 })), { instanceOf: RangeError, message: /config\.eta is not a DdpmScheduler option/ });
  t.throws(() => createScheduler(bad({ type: 'dpm-solver++', solverOrder: 3 })), { instanceOf: RangeError, message: /config\.solverOrder must be one of 1, 2/ });
  t.throws(() => createScheduler(bad({ type: 'dpm-solver++', timestepSpacing: 'karras' })), { instanceOf: RangeError, message: /config\.timestepSpacing/ });
  t.throws(() => createScheduler(bad({ type: 'dpm-solver++', clipSample: true })), { instanceOf: RangeError, message: /config\.clipSample is not supported/ });
  t.notThrows(() => createScheduler({ type: 'dpm-solver++', clipSample: false } as SchedulerConfigInput));
});

test('defaults are MONAI\'s (diffusers\' for the DPM-Solver fields) and the config round-trips through JSON', (t) => {
  const ddpm = createScheduler({ type: 'ddpm' }).config as unknown as Record<string, unknown>;
  t.like(ddpm, { numTrainTimesteps: 1000, schedule: 'linear_beta', betaStart: 1e-4, betaEnd: 2e-2, predictionType: 'epsilon', clipSample: true, varianceType: 'fixed_small', semantics: 'generative-0.2.3' });
  t.like(createScheduler({ type: 'ddim' }).config as object, { setAlphaToOne: true, stepsOffset: 0, eta: 0, clipSample: true });
  t.like(createScheduler({ type: 'pndm' }).config as object, { setAlphaToOne: false, skipPrkSteps: false, stepsOffset: 0 });
  t.like(createScheduler({ type: 'dpm-solver++' }).config as object, { solverOrder: 2, lowerOrderFinal: true, timestepSpacing: 'trailing', finalSigmasType: 'zero' });
  for (const type of SCHEDULER_TYPES) {
    const a = createScheduler({ type, schedule: 'scaled_linear_beta', betaStart: 0.0015, betaEnd: 0.0205, predictionType: 'v_prediction' } as SchedulerConfigInput);
    const b = createScheduler({ ...JSON.parse(JSON.stringify(a.config)), type });
    t.deepEqual(b.config, a.config, type);
    t.true(Object.isFrozen(a.config));
    t.is(a.order, 1);
    t.is(a.initNoiseSigma, 1);
  }
});

const x = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i));
const out = Float32Array.from({ length: 24 }, (_, i) => Math.cos(i) * 0.3);
const z = Float32Array.from({ length: 24 }, (_, i) => Math.sin(3 * i));

test('step before setTimesteps throws a SchedulerStateError naming setTimesteps', (t) => {
  for (const type of SCHEDULER_TYPES) {
    const s = createScheduler({ type } as SchedulerConfigInput);
    t.is(s.timesteps.length, 0);
    t.throws(() => s.step(out, 999, x, z), { instanceOf: SchedulerStateError, message: /call setTimesteps\(numInferenceSteps\) first/ }, type);
  }
  t.throws(() => new DdimScheduler().reversedStep(out, 0, x), { instanceOf: SchedulerStateError, message: /setTimesteps/ });
});

test('setTimesteps and step reject bad arguments by name', (t) => {
  const s = createScheduler({ type: 'ddim', eta: 0.5 });
  t.throws(() => s.setTimesteps(0), { instanceOf: RangeError, message: /argument 'numInferenceSteps' is 0, must be in \[1, 1000\]/ });
  t.throws(() => s.setTimesteps(1001), { instanceOf: RangeError, message: /argument 'numInferenceSteps'/ });
  t.throws(() => s.setTimesteps(2.5), { instanceOf: TypeError, message: /argument 'numInferenceSteps' must be an integer/ });
  t.throws(() => createScheduler({ type: 'pndm' }).setTimesteps(3), { instanceOf: RangeError, message: /PRK warm-up needs at least 4.*skipPrkSteps/ });
  t.notThrows(() => createScheduler({ type: 'pndm', skipPrkSteps: true }).setTimesteps(3));
  s.setTimesteps(10);
  t.throws(() => s.step(out, 1000, x, z), { instanceOf: RangeError, message: /argument 't' is 1000, must be in \[0, 999\]/ });
  t.throws(() => s.step(out, 5.5, x, z), { instanceOf: TypeError, message: /argument 't' must be an integer/ });
  t.throws(() => s.step(out.subarray(1), 900, x, z), { instanceOf: RangeError, message: /argument 'modelOutput' has 23 elements, expected 24/ });
  t.throws(() => s.step(Array.from(out) as never, 900, x, z), { instanceOf: TypeError, message: /argument 'modelOutput' must be a Float32Array/ });
  t.throws(() => s.step(out, 900, x), { instanceOf: TypeError, message: /argument 'noise' must be a Float32Array/ });
  t.throws(() => s.step(out, 900, x, z.subarray(2)), { instanceOf: RangeError, message: /argument 'noise' has 22 elements/ });
  // DDPM needs noise for t > 0 only; DDIM with eta = 0 never
  const d = createScheduler({ type: 'ddpm' });
  d.setTimesteps(10);
  t.true(d.needsNoise(1) && !d.needsNoise(0));
  t.throws(() => d.step(out, 5, x), { instanceOf: TypeError, message: /argument 'noise'/ });
  t.notThrows(() => d.step(out, 0, x));
  const e = createScheduler({ type: 'ddim' });
  e.setTimesteps(10);
  t.false(e.needsNoise(900));
  t.notThrows(() => e.step(out, 900, x));
  t.is(e.scaleModelInput(x, 900), x);
});

test('DDPM learned variance: a 2C output is split, a batch uses splitLearnedVariance, generative semantics require it', (t) => {
  const g = new DdpmScheduler({ varianceType: 'learned_range', semantics: 'generative-0.2.3', clipSample: false });
  g.setTimesteps(10);
  t.throws(() => g.step(out, 900, x, z), { instanceOf: TypeError, message: /needs the predicted variance/ });
  const both = new Float32Array(48);
  both.set(out, 0);
  both.set(z.map((v) => v * 0.5), 24);
  const a = g.step(both, 900, x, z);
  const b = g.step(out, 900, x, z, both.subarray(24));
  t.deepEqual(a, b);
  const small = new DdpmScheduler({ clipSample: false });
  small.setTimesteps(10);
  t.throws(() => small.step(both, 900, x, z), { instanceOf: RangeError, message: /argument 'modelOutput' has 48 elements, expected 24/ });
  const fixed = new DdpmScheduler();
  fixed.setTimesteps(10);
  t.throws(() => fixed.step(out, 900, x, z, z), { instanceOf: RangeError, message: /'predictedVariance' is only used with varianceType/ });
  const m = new DdpmScheduler({ varianceType: 'learned', semantics: 'monai-1.6' });
  m.setTimesteps(10);
  t.notThrows(() => m.step(out, 900, x, z)); // MONAI core falls back to the unclamped posterior variance
});

test('DDIM reversedStep past the last training step: generative uses first_alpha_cumprod, MONAI core refuses', (t) => {
  const g = new DdimScheduler({ semantics: 'generative-0.2.3', clipSample: false });
  g.setTimesteps(10);
  t.notThrows(() => g.reversedStep(out, 900, x));
  const m = new DdimScheduler({ semantics: 'monai-1.6', clipSample: false });
  m.setTimesteps(10);
  t.throws(() => m.reversedStep(out, 999, x), { instanceOf: RangeError, message: /argument 't' is 999: t \+ T \/\/ n = 1099 .*IndexError/ });
});

async function loop(s: Scheduler, n: number, stopAfter = Infinity): Promise<Float32Array[]> {
  const inp = await loadInputs('small');
  s.setTimesteps(n);
  let xs: Float32Array = inp.sample.slice();
  const outs: Float32Array[] = [];
  let k = 0;
  for (const t of s.timesteps) {
    if (k++ >= stopAfter) break;
    xs = s.step(fakeModel(xs, t, inp.base), t, xs, s.needsNoise(t) ? inp.noise[k % 8] : undefined).prevSample;
    outs.push(xs);
  }
  return outs;
}

test('PNDM state (ets, counter, cur_sample) is reset by setTimesteps: a rerun equals a fresh scheduler', async (t) => {
  for (const skipPrkSteps of [false, true]) {
    const fresh = await loop(new PndmScheduler({ skipPrkSteps }), 10);
    const s = new PndmScheduler({ skipPrkSteps });
    await loop(s, 10, 7); // abandoned half-way through
    t.true(s.historyLength > 0 && s.counter === 7);
    s.setTimesteps(10);
    t.is(s.historyLength, 0);
    t.is(s.counter, 0);
    t.deepEqual(await loop(s, 10), fresh, `skipPrkSteps ${skipPrkSteps}`);
    t.deepEqual(await loop(s, 10), fresh, 'and again');
  }
  // PLMS without the PRK warm-up is refused
  const p = new PndmScheduler();
  p.setTimesteps(10);
  p.counter = 12;
  t.throws(() => p.step(out, 900, x), { instanceOf: SchedulerStateError, message: /PRK warm-up/ });
});

test('DPM-Solver++ state is reset by setTimesteps; steps must follow the timesteps', async (t) => {
  const fresh = await loop(new DpmSolverMultistepScheduler(), 10);
  const s = new DpmSolverMultistepScheduler();
  await loop(s, 10, 4);
  t.is(s.stepIndex, 4);
  s.setTimesteps(10);
  t.is(s.stepIndex, null);
  t.is(s.lowerOrderNums, 0);
  t.deepEqual(await loop(s, 10), fresh);
  t.throws(() => s.step(out, 99, x), { instanceOf: SchedulerStateError, message: /all 10 steps are done; call setTimesteps/ });
  s.setTimesteps(10);
  t.throws(() => s.step(out, 500, x), { instanceOf: RangeError, message: /not one of the timesteps/ });
  s.step(out, 999, x);
  t.throws(() => s.step(out, 799, x), { instanceOf: RangeError, message: /expected timesteps\[1\] = 899/ });
  // starting part-way (img2img style) is allowed, as in diffusers
  s.setTimesteps(10);
  t.notThrows(() => s.step(out, 499, x));
  t.is(s.stepIndex, 6);
});

test('addNoise and getVelocity match MONAI (one timestep per batch item)', async (t) => {
  const nt = await loadTensors('noising.safetensors');
  const inp = await loadInputs('small');
  for (const e of index.noising) {
    const s = createScheduler(e.config);
    const a = s.addNoise(inp.sample, inp.noise[1], e.t);
    const v = s.getVelocity(inp.sample, inp.noise[2], e.t);
    t.true(relError(a, f32(nt.get(`${e.key}.add_noise`))) <= TOLERANCE, e.key);
    t.true(relError(v, f32(nt.get(`${e.key}.velocity`))) <= TOLERANCE, e.key);
  }
  const s = createScheduler({ type: 'ddpm' });
  t.deepEqual(s.addNoise(inp.sample, inp.noise[1], 10), s.addNoise(inp.sample, inp.noise[1], [10, 10]));
  t.throws(() => s.addNoise(inp.sample, inp.noise[1], [1, 2, 3, 4, 5]), { instanceOf: RangeError, message: /argument 't' has 5 timesteps/ });
  t.throws(() => s.addNoise(inp.sample, inp.noise[1].subarray(1), 3), { instanceOf: RangeError, message: /argument 'noise'/ });
  t.throws(() => s.getVelocity(inp.sample, inp.noise[1], 1000), { instanceOf: RangeError, message: /argument 't' is 1000/ });
});

test('schedulerConfigFromMonai maps MONAI constructor arguments, _target_ picks type and semantics', (t) => {
  const thesis = { _target_: 'generative.networks.schedulers.DDPMScheduler', num_train_timesteps: 1000, schedule: 'scaled_linear_beta', beta_start: 0.0015, beta_end: 0.0205, clip_sample: false };
  t.deepEqual(schedulerConfigFromMonai(thesis), { type: 'ddpm', semantics: 'generative-0.2.3', numTrainTimesteps: 1000, schedule: 'scaled_linear_beta', betaStart: 0.0015, betaEnd: 0.0205, clipSample: false });
  t.like(schedulerConfigFromMonai({ ...thesis, _target_: 'monai.networks.schedulers.DDIMScheduler' }), { type: 'ddim', semantics: 'monai-1.6' });
  // sampling a DDPM-trained model with DPM-Solver++: the DDPM-only fields are dropped
  t.deepEqual(schedulerConfigFromMonai(thesis, { type: 'dpm-solver++' }), { type: 'dpm-solver++', semantics: 'generative-0.2.3', numTrainTimesteps: 1000, schedule: 'scaled_linear_beta', betaStart: 0.0015, betaEnd: 0.0205 });
  t.throws(() => schedulerConfigFromMonai({ num_train_timesteps: 1000 }), { instanceOf: TypeError, message: /no scheduler type/ });
  t.throws(() => schedulerConfigFromMonai({ ...thesis, schedule_beta: 'linear' }), { instanceOf: RangeError, message: /args\.schedule_beta is not a MONAI scheduler argument/ });
  t.throws(() => schedulerConfigFromMonai({ ...thesis, _target_: 'generative.networks.schedulers.EulerScheduler' }), { instanceOf: RangeError, message: /_target_/ });
  t.throws(() => schedulerConfigFromMonai({ ...thesis, beta_end: 2 }), { instanceOf: RangeError, message: /config\.betaEnd/ });
});
