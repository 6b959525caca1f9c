/**
 * The shared scheduler test harness: loads the MONAI/diffusers fixtures made by train/make_scheduler_fixtures.py,
 * replays each case's loop with the TypeScript schedulers (same fake network, same noise) and measures every
 * step against the reference.
 */
import { readFileSync } from 'node:fs';
import { readSafetensors, type HostTensor } from '../../ts/io/safetensors.js';
import {
  createScheduler, splitLearnedVariance, DdimScheduler, DdpmScheduler, type SchedulerConfigInput, type Scheduler,
} from '../../ts/schedulers/index.js';

export const FIXTURES = new URL('../fixtures/schedulers/', import.meta.url);

/** The acceptance bound: max |ours - MONAI| / max |MONAI| per step tensor. */
export const TOLERANCE = 1e-6;
/** Bound for a free-running chain (see monai-parity.spec.ts); the largest seen is logged per case. */
export const FREE_TOLERANCE = 2e-5;

export interface FixtureCase {
  name: string;
  file: string;
  kind: 'ddpm' | 'ddim' | 'ddim-reversed' | 'pndm' | 'dpm';
  semantics: string;
  config: SchedulerConfigInput;
  monaiKwargs: Record<string, unknown>;
  numInferenceSteps: number;
  inputs: string;
  model: 'plain' | 'learned' | 'learned_range' | 'learned_range-concat';
  steps: number;
  nonFinite: boolean;
  reference: string;
  eta?: number;
  generative?: { identical: boolean; note: string; maxAbsDiffPrev?: number | null };
}

export interface FixtureIndex {
  versions: Record<string, string | null>;
  noiseBank: number;
  shapes: Record<string, number[]>;
  schedules: Array<{ key: string; semantics: string; config: Record<string, unknown>; generativeIdentical: boolean | null }>;
  timesteps: Array<{ key: string; config: SchedulerConfigInput; n: number[] }>;
  noising: Array<{ key: string; config: SchedulerConfigInput; t: number[] }>;
  cases: FixtureCase[];
}

export const index: FixtureIndex = JSON.parse(readFileSync(new URL('index.json', FIXTURES), 'utf8'));

export async function loadTensors(file: string): Promise<Map<string, HostTensor>> {
  return (await readSafetensors(new URL(file, FIXTURES).pathname)).tensors;
}

export function f32(t: HostTensor | undefined, name = '?'): Float32Array {
  if (!t || !(t.data instanceof Float32Array)) throw new Error(`fixture tensor ${name} missing or not F32`);
  return t.data;
}

/** Row k of a [S, ...] tensor. */
export function row(t: HostTensor, k: number): Float32Array {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return (t.data as Float32Array).subarray(k * per, (k + 1) * per);
}

export interface Inputs {
  shape: number[];
  sample: Float32Array;
  base: Float32Array;
  noise: Float32Array[];
  varLearned: Float32Array;
  varRange: Float32Array;
}

let inputsCache: Map<string, HostTensor> | null = null;

export async function loadInputs(name: string): Promise<Inputs> {
  inputsCache ??= await loadTensors('inputs.safetensors');
  const get = (k: string) => inputsCache!.get(`${name}.${k}`)!;
  const noiseT = get('noise');
  return {
    shape: index.shapes[name],
    sample: f32(get('sample')),
    base: f32(get('base')),
    noise: Array.from({ length: noiseT.shape[0] }, (_, k) => row(noiseT, k)),
    varLearned: f32(get('var_learned')),
    varRange: f32(get('var_range')),
  };
}

/** The fixture's fake network: x * float32(0.1 * (t + 1) / (t + 2)) + base, float32 like torch. */
export function fakeModel(x: Float32Array, t: number, base: Float32Array): Float32Array {
  const c = Math.fround((0.1 * (t + 1)) / (t + 2));
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.fround(x[i] * c) + base[i];
  return out;
}

/** torch.cat([a, b], dim=1) for flat [B, C, ...] tensors of equal shape. */
export function catChannels(a: Float32Array, b: Float32Array, batch: number): Float32Array {
  const per = a.length / batch;
  const out = new Float32Array(2 * a.length);
  for (let i = 0; i < batch; i++) {
    out.set(a.subarray(i * per, (i + 1) * per), 2 * i * per);
    out.set(b.subarray(i * per, (i + 1) * per), (2 * i + 1) * per);
  }
  return out;
}

/**
 * Relative error max|got - want| / max|want| over the finite reference values; NaN/Inf must sit at the same
 * places with the same value (MONAI's generative cosine schedule divides by zero at t = 0, and so do we).
 */
export function relError(got: Float32Array, want: Float32Array): number {
  if (got.length !== want.length) return Infinity;
  let maxErr = 0;
  let maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    const w = want[i];
    const g = got[i];
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (!Object.is(w, g) && !(Number.isNaN(w) && Number.isNaN(g))) return Infinity;
      continue;
    }
    maxErr = Math.max(maxErr, Math.abs(g - w));
    maxRef = Math.max(maxRef, Math.abs(w));
  }
  return maxRef === 0 ? maxErr : maxErr / maxRef;
}

export interface CaseResult {
  timesteps: number[];
  expectedTimesteps: number[];
  maxPrevError: number;
  maxX0Error: number;
  worstStep: number;
  steps: number;
}

let schedulesCache: Map<string, HostTensor> | null = null;

/**
 * Puts MONAI's own cosine schedule into the scheduler (the strict check tests the step formulas, not the
 * schedule): torch's float32 cos is not correctly rounded, so ~5% of our cos values differ by 1 ulp, and MONAI's
 * beta = 1 - alphaBar_t / alphaBar_(t-1) turns that into up to 6e-4 relative in the small betas near t = 0.
 * noise-schedule.spec.ts bounds those differences; the free-running check uses our own schedule.
 */
export async function useReferenceSchedule(sched: Scheduler, c: FixtureCase): Promise<boolean> {
  const cfg = c.config as { schedule?: string; numTrainTimesteps?: number; cosineS?: number };
  if (cfg.schedule !== 'cosine' || (cfg.numTrainTimesteps ?? 1000) !== 1000 || (cfg.cosineS ?? 8e-3) !== 8e-3) return false;
  schedulesCache ??= await loadTensors('schedules.safetensors');
  const key = `cosine.${c.semantics}`;
  sched.betas.set(f32(schedulesCache.get(`${key}.betas`)));
  sched.alphas.set(f32(schedulesCache.get(`${key}.alphas`)));
  sched.alphasCumprod.set(f32(schedulesCache.get(`${key}.alphas_cumprod`)));
  return true;
}

/**
 * Replays a fixture case with our scheduler. 'teacher' (the strict check): every step starts from the
 * reference's previous sample, so each step's formula is compared on identical inputs; the scheduler's own
 * state (PNDM's history, DPM-Solver's previous x0) is still ours. 'free': our own chain, as a pipeline runs it;
 * ulp-level differences then compound over the steps (see the spec for the bound).
 */
export async function runCase(c: FixtureCase, mode: 'teacher' | 'free' = 'teacher'): Promise<CaseResult> {
  const ref = await loadTensors(c.file);
  const inp = await loadInputs(c.inputs);
  const batch = inp.shape[0];
  const sched: Scheduler = createScheduler(c.config);
  if (mode === 'teacher') await useReferenceSchedule(sched, c);
  sched.setTimesteps(c.numInferenceSteps);
  let timesteps = Array.from(sched.timesteps);
  if (c.kind === 'ddim-reversed') {
    const ratio = Math.floor(sched.numTrainTimesteps / c.numInferenceSteps);
    timesteps = timesteps.reverse().filter((t) => c.semantics === 'generative-0.2.3' || t + ratio < sched.numTrainTimesteps);
  }
  const expectedTimesteps = Array.from(ref.get('timesteps')!.data as Int32Array);
  const prevT = ref.get('prev_sample')!;
  const x0T = ref.get('pred_original_sample');
  let x: Float32Array = inp.sample.slice();
  let maxPrevError = 0;
  let maxX0Error = 0;
  let worstStep = -1;
  const n = Math.min(timesteps.length, expectedTimesteps.length);
  for (let k = 0; k < n; k++) {
    const t = timesteps[k];
    const out = fakeModel(x, t, inp.base);
    const noise = sched.needsNoise(t) ? inp.noise[k % inp.noise.length] : undefined;
    let res;
    if (c.kind === 'ddim-reversed') {
      res = (sched as unknown as DdimScheduler).reversedStep(out, t, x);
    } else if (c.model === 'learned' || c.model === 'learned_range') {
      const full = catChannels(out, c.model === 'learned' ? inp.varLearned : inp.varRange, batch);
      const { prediction, variance } = splitLearnedVariance(full, batch);
      res = (sched as unknown as DdpmScheduler).step(prediction, t, x, noise, variance);
    } else if (c.model === 'learned_range-concat') {
      res = sched.step(catChannels(out, inp.varRange, batch), t, x, noise);
    } else {
      res = sched.step(out, t, x, noise);
    }
    const ePrev = relError(res.prevSample, row(prevT, k));
    if (ePrev > maxPrevError) {
      maxPrevError = ePrev;
      worstStep = k;
    }
    if (x0T) {
      if (!res.predOriginalSample) return { timesteps, expectedTimesteps, maxPrevError, maxX0Error: Infinity, worstStep: k, steps: n };
      maxX0Error = Math.max(maxX0Error, relError(res.predOriginalSample, row(x0T, k)));
    } else if (res.predOriginalSample !== null) {
      maxX0Error = Infinity;
    }
    x = mode === 'free' ? res.prevSample : row(prevT, k).slice();
  }
  return { timesteps, expectedTimesteps, maxPrevError, maxX0Error, worstStep, steps: n };
}
