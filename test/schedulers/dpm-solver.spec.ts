/**
 * DPM-Solver++(2M) against diffusers' DPMSolverMultistepScheduler (fed the MONAI training schedules; cases in
 * test/fixtures/schedulers/index.json: 4 schedules x 3 prediction types x 3 timestep spacings, 1-61 steps,
 * solver order 1, final sigma zero/sigma_min, lower_order_final on/off), then by properties on a linear-Gaussian
 * toy problem whose probability-flow ODE has a closed form.
 */
import test from 'ava';
import { FREE_TOLERANCE, index, runCase, TOLERANCE } from './harness.js';
import {
  DdimScheduler, DpmSolverMultistepScheduler, TIMESTEP_SPACINGS, createScheduler, type TimestepSpacing, type Scheduler,
} from '../../ts/schedulers/index.js';

const cases = index.cases.filter((c) => c.kind === 'dpm');

test('diffusers fixtures are present (regenerate with diffusers importable, see train/make_scheduler_fixtures.py)', (t) => {
  t.true(cases.length >= 36, `${cases.length} DPM-Solver++ cases`);
});

for (const c of cases) {
  test(`${c.file}: every step matches ${c.reference}`, async (t) => {
    const r = await runCase(c, 'teacher');
    t.deepEqual(r.timesteps, r.expectedTimesteps, 'timesteps');
    t.true(r.maxPrevError <= TOLERANCE, `prev_sample: max rel error ${r.maxPrevError.toExponential(2)} at step ${r.worstStep}`);
    t.true(r.maxX0Error <= TOLERANCE, `x0 (model_outputs[-1]): max rel error ${r.maxX0Error.toExponential(2)}`);
    const free = await runCase(c, 'free');
    t.true(free.maxPrevError <= FREE_TOLERANCE && free.maxX0Error <= FREE_TOLERANCE,
      `free-running chain: prev ${free.maxPrevError.toExponential(2)}, x0 ${free.maxX0Error.toExponential(2)}`);
    t.log(`per step: prev ${r.maxPrevError.toExponential(2)}, x0 ${r.maxX0Error.toExponential(2)}; free-running: prev ${free.maxPrevError.toExponential(2)}, x0 ${free.maxX0Error.toExponential(2)}`);
  });
}

// ------------------------------------------------------------------------------------------------------------
// Linear-Gaussian toy: data x0 ~ N(mu, s^2) per element. Then x_t ~ N(sqrt(abar) mu, abar s^2 + 1 - abar), the
// optimal network outputs are linear in x_t, and the probability-flow ODE keeps z = (x_t - sqrt(abar) mu) /
// sqrt(abar s^2 + 1 - abar) constant: the exact ODE solution is x_t = sqrt(abar_t) mu + sqrt(abar_t s^2 + 1 -
// abar_t) z (float64 below). MONAI's samplers end with the x0 predicted at t = 0, so the reference sample is
// E[x0 | exact x_0] = mu + z s sqrt(abar_0) s / sqrt(abar_0 s^2 + 1 - abar_0).

const SCHEDULES = {
  thesis: { numTrainTimesteps: 1000, schedule: 'scaled_linear_beta', betaStart: 0.0015, betaEnd: 0.0205 },
  linear: { numTrainTimesteps: 1000, schedule: 'linear_beta' },
  sigmoid: { numTrainTimesteps: 1000, schedule: 'sigmoid_beta' },
  cosine: { numTrainTimesteps: 1000, schedule: 'cosine', semantics: 'monai-1.6' },
} as const;
const THESIS = SCHEDULES.thesis;

function gaussianNoise(n: number, seed: number): Float64Array {
  let a = seed >>> 0;
  const r = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
  return out;
}

interface Toy { mu: Float64Array; s: number }

/** The optimal network output at (x_t, t), as epsilon or as x0. */
function toyModel(toy: Toy, sched: Scheduler, x: Float32Array, t: number, kind: 'epsilon' | 'sample'): Float32Array {
  const abar = sched.alphasCumprod[Math.max(t, 0)];
  const sa = Math.sqrt(abar);
  const sb = Math.sqrt(1 - abar);
  const v = abar * toy.s * toy.s + 1 - abar;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = toy.mu[i] + (sa * toy.s * toy.s * (x[i] - sa * toy.mu[i])) / v;
    out[i] = kind === 'sample' ? x0 : (x[i] - sa * x0) / sb;
  }
  return out;
}

/** Runs the scheduler from xT with the toy's optimal model, stopping before timestep `until` if given. */
function sample(sched: Scheduler, n: number, xT: Float32Array, toy: Toy, kind: 'epsilon' | 'sample' = 'epsilon', until?: number):
  { x: Float32Array; trajectory: Array<{ t: number; x: Float32Array }> } {
  sched.setTimesteps(n);
  let x: Float32Array = xT.slice();
  const trajectory: Array<{ t: number; x: Float32Array }> = [];
  for (const t of sched.timesteps) {
    if (t === until) break;
    x = sched.step(toyModel(toy, sched, x, t, kind), t, x).prevSample;
    trajectory.push({ t, x });
  }
  return { x, trajectory };
}

/** The exact ODE solution at training timestep t (or at sigma = 0 for t = null) from x at timestep t0. */
function exactAt(sched: Scheduler, toy: Toy, x: Float32Array, t0: number, t: number | null): Float64Array {
  const a0 = sched.alphasCumprod[t0];
  const a = t === null ? 1 : sched.alphasCumprod[t];
  return Float64Array.from(x, (xi, i) => {
    const z = (xi - Math.sqrt(a0) * toy.mu[i]) / Math.sqrt(a0 * toy.s * toy.s + 1 - a0);
    return Math.sqrt(a) * toy.mu[i] + Math.sqrt(a * toy.s * toy.s + 1 - a) * z;
  });
}

/** MONAI's endpoint: the exact flow from t = T - 1 to t = 0, then the x0 predicted there. */
function reference(sched: Scheduler, toy: Toy, xT: Float32Array): Float64Array {
  const at0 = exactAt(sched, toy, xT, sched.numTrainTimesteps - 1, 0);
  const a0 = sched.alphasCumprod[0];
  const v0 = a0 * toy.s * toy.s + 1 - a0;
  return Float64Array.from(at0, (x, i) => toy.mu[i] + (Math.sqrt(a0) * toy.s * toy.s * (x - Math.sqrt(a0) * toy.mu[i])) / v0);
}

function rms(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s / a.length);
}

const N = 4096;
const xT = Float32Array.from(gaussianNoise(N, 7));
const muPoint: Toy = { mu: gaussianNoise(N, 11).map((v) => 0.5 * v), s: 0 };
const toy: Toy = { mu: muPoint.mu, s: 0.5 };

test('toy with a point mass (x0 prediction constant): DPM-Solver++ is exact at every step, for any step count and spacing', (t) => {
  for (const spacing of TIMESTEP_SPACINGS) {
    for (const n of [1, 2, 5, 10, 25]) {
      for (const kind of ['epsilon', 'sample'] as const) {
        const sched = new DpmSolverMultistepScheduler({ ...THESIS, timestepSpacing: spacing, predictionType: kind });
        const { x, trajectory } = sample(sched, n, xT, muPoint, kind);
        const ts = sched.timesteps;
        let worst = 0;
        trajectory.forEach((step, i) => {
          worst = Math.max(worst, rms(step.x, exactAt(sched, muPoint, xT, ts[0], i + 1 < ts.length ? ts[i + 1] : null)));
        });
        // float32 only: the epsilon -> x0 conversion divides by sqrt(abar) ~ 0.01 at the first step
        t.true(worst < 1e-5, `${spacing} n=${n} ${kind}: rms error ${worst.toExponential(2)}`);
        t.true(rms(x, muPoint.mu) < 1e-5, `${spacing} n=${n} ${kind}: ends at mu`);
      }
    }
  }
});

test('toy with a gaussian: DPM-Solver++(2M) is second order (error at t = 499 falls ~4x per doubling; order 1 ~2x)', (t) => {
  const rows: string[] = [];
  for (const solverOrder of [1, 2] as const) {
    const errs: number[] = [];
    const steps = [10, 20, 40, 80, 160];
    for (const n of steps) {
      const sched = new DpmSolverMultistepScheduler({ ...THESIS, solverOrder });
      const { x } = sample(sched, n, xT, toy, 'epsilon', 499);
      errs.push(rms(x, exactAt(sched, toy, xT, 999, 499)) / toy.s);
    }
    rows.push(`order ${solverOrder}, n = ${steps.join(', ')}: ${errs.map((e) => e.toExponential(2)).join(', ')}`);
    for (let i = 1; i < errs.length; i++) {
      const ratio = errs[i - 1] / errs[i];
      t.true(solverOrder === 2 ? ratio > 3.2 : ratio > 1.8 && ratio < 2.4, `order ${solverOrder} n=${steps[i]}: error ratio ${ratio.toFixed(2)}`);
    }
  }
  t.log(rows.join('\n'));
});

test('toy with a gaussian: DPM-Solver++ converges to the DDIM-1000 result as steps grow', (t) => {
  const ddim = new DdimScheduler({ ...THESIS, clipSample: false, semantics: 'monai-1.6' });
  const ref = sample(ddim, 1000, xT, toy).x;
  const errs: number[] = [];
  const steps = [10, 20, 50, 100, 250];
  for (const n of steps) {
    const sched = new DpmSolverMultistepScheduler({ ...THESIS });
    errs.push(rms(sample(sched, n, xT, toy).x, ref) / toy.s);
  }
  t.log(`relative rms distance to DDIM-1000, n = ${steps.join(', ')}: ${errs.map((e) => e.toExponential(2)).join(', ')}`);
  for (let i = 1; i < errs.length; i++) t.true(errs[i] < errs[i - 1], `n=${steps[i]}`);
  t.true(errs[errs.length - 1] < 5e-3, `n=250: ${errs[errs.length - 1]}`);
  // DDIM-1000 (timesteps 999..0, then x0 at t = 0) is itself close to MONAI's exact endpoint
  t.true(rms(ref, reference(ddim, toy, xT)) / toy.s < 5e-3);
});

test('toy with a gaussian: trailing spacing is as good as linspace and far better than leading on cosine (the default)', (t) => {
  const rows: string[] = [];
  for (const [name, sched] of Object.entries(SCHEDULES)) {
    for (const n of [10, 15, 20, 25]) {
      const err: Record<TimestepSpacing, number> = { linspace: 0, leading: 0, trailing: 0 };
      for (const spacing of TIMESTEP_SPACINGS) {
        const s = new DpmSolverMultistepScheduler({ ...sched, timestepSpacing: spacing });
        err[spacing] = rms(sample(s, n, xT, toy).x, reference(s, toy, xT)) / toy.s;
      }
      rows.push(`${name} n=${n}: linspace ${err.linspace.toExponential(2)}, leading ${err.leading.toExponential(2)}, trailing ${err.trailing.toExponential(2)}`);
      t.true(err.trailing <= err.linspace * 1.02 || err.trailing < 1e-3, rows[rows.length - 1]);
      if (name === 'cosine') t.true(err.trailing < err.leading, rows[rows.length - 1]);
    }
  }
  t.log(rows.join('\n'));
  t.is((createScheduler({ type: 'dpm-solver++' }).config as unknown as { timestepSpacing: string }).timestepSpacing, 'trailing');
});
