/**
 * The scheduler contract shared by DDPM, DDIM, PNDM and DPM-Solver++ (diffusers' shape, MONAI's formulas):
 *
 *   const s = createScheduler({ type: 'ddim', schedule: 'scaled_linear_beta', betaStart: 0.0015, betaEnd: 0.0205 });
 *   s.setTimesteps(50);                        // fills s.timesteps and resets the per-run state
 *   let x = initialNoise;                      // times s.initNoiseSigma (1 for all four)
 *   for (const t of s.timesteps) {
 *     const out = network.forward(s.scaleModelInput(x, t), t);
 *     x = s.step(out, t, x, s.needsNoise(t) ? drawNoise() : undefined).prevSample;
 *   }
 *
 * Latents are flat Float32Arrays (row-major [B, C, ...spatial]); the step arithmetic is float32 like MONAI's,
 * operation by operation (each torch op's result rounded with Math.fround, in torch's order), so a step matches
 * MONAI's to ~3e-7 relative (test/schedulers). Bits cannot match: torch's CPU float32 sqrt/cos/exp (MKL) are not
 * correctly rounded and differ between CPUs; over 1000 DDPM steps the drift stays below ~1e-5. The pipeline owns
 * randomness: a step that adds noise takes it as an argument (`noise`, standard normal, the sample's length)
 * instead of drawing it; `needsNoise(t)` says when, so noise is drawn exactly where MONAI draws it.
 *
 * Unlike MONAI (whose DDPM steps without set_timesteps, and whose DDIM/PNDM constructors preset T steps), every
 * scheduler here starts with no timesteps and step() before setTimesteps() is a SchedulerStateError.
 *
 * Shared pieces: config typing and validation (errors name the field), the x0 conversion of the three
 * prediction types, clip_sample, add_noise and get_velocity (MONAI Scheduler.add_noise / get_velocity).
 */
import {
  makeNoiseSchedule, SCHEDULES, SEMANTICS, type NoiseSchedule, type NoiseScheduleOptions, type ScheduleName, type Semantics,
} from './noise-schedule.js';

const f32 = Math.fround;

export const PREDICTION_TYPES = ['epsilon', 'sample', 'v_prediction'] as const;
/**
 * What the network predicts (MONAI DDPMPredictionType): the noise epsilon, the clean sample x0, or the velocity
 * v = sqrt(alphaBar_t) * epsilon - sqrt(1 - alphaBar_t) * x0 (Salimans & Ho 2022, "Progressive Distillation",
 * section 4 / Imagen Video section 2.4).
 */
export type PredictionType = (typeof PREDICTION_TYPES)[number];

export const SCHEDULER_TYPES = ['ddpm', 'ddim', 'pndm', 'dpm-solver++'] as const;
export type SchedulerType = (typeof SCHEDULER_TYPES)[number];

/** Fields every scheduler has: the training noise schedule and what the network predicts. */
export interface CommonSchedulerConfig extends NoiseScheduleOptions {
  /** MONAI `prediction_type`. Default 'epsilon'. */
  predictionType: PredictionType;
}

/** MONAI's clip_sample: clamp the predicted x0 to [clipSampleMin, clipSampleMax] (DDPM and DDIM). */
export interface ClipSampleConfig {
  /** MONAI `clip_sample`. Default true in MONAI (note: the thesis passes false). */
  clipSample: boolean;
  /** MONAI core `clip_sample_min` (generative 0.2.3 always uses -1). Default -1. */
  clipSampleMin: number;
  /** MONAI core `clip_sample_max` (generative 0.2.3 always uses 1). Default 1. */
  clipSampleMax: number;
}

export const COMMON_DEFAULTS: Readonly<CommonSchedulerConfig> = Object.freeze({
  numTrainTimesteps: 1000,
  schedule: 'linear_beta',
  betaStart: 1e-4,
  betaEnd: 2e-2,
  sigRange: 6,
  cosineS: 8e-3,
  predictionType: 'epsilon',
  semantics: 'generative-0.2.3',
});

export const CLIP_DEFAULTS: Readonly<ClipSampleConfig> = Object.freeze({ clipSample: true, clipSampleMin: -1, clipSampleMax: 1 });

/** What `step` returns: x_{t-1} and the x0 it was computed from (null where MONAI returns None: PNDM). */
export interface SchedulerStepOutput {
  prevSample: Float32Array;
  predOriginalSample: Float32Array | null;
}

/** Thrown when a method is called in the wrong state (e.g. `step` before `setTimesteps`); the message names the fix. */
export class SchedulerStateError extends Error {
  override name = 'SchedulerStateError';
}

// ------------------------------------------------------------------------------------------------------------
// Config validation. Every error names the field as `config.<name>`; TypeError for a wrong type, RangeError for
// a value out of range or unknown.

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s;
}

/** Reads fields of a user config object with defaults, validating each and naming it in errors. */
export class ConfigReader {
  private readonly seen = new Set<string>();

  constructor(private readonly input: Readonly<Record<string, unknown>>, private readonly owner: string) {
    if (input === null || typeof input !== 'object' || Array.isArray(input))
      throw new TypeError(`${owner}: argument 'config' must be an object, got ${show(input)}`);
  }

  private take(name: string): unknown {
    this.seen.add(name);
    return this.input[name];
  }

  private where(name: string): string {
    return `${this.owner}: config.${name}`;
  }

  number(name: string, dflt: number, check?: (v: number) => string | null): number {
    const v = this.take(name);
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${this.where(name)} must be a finite number, got ${show(v)}`);
    const problem = check?.(v);
    if (problem) throw new RangeError(`${this.where(name)} ${problem}, got ${show(v)}`);
    return v;
  }

  integer(name: string, dflt: number, min: number, max: number): number {
    const v = this.take(name);
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new TypeError(`${this.where(name)} must be an integer, got ${show(v)}`);
    if (v < min || v > max) throw new RangeError(`${this.where(name)} must be in [${min}, ${max}], got ${v}`);
    return v;
  }

  boolean(name: string, dflt: boolean): boolean {
    const v = this.take(name);
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw new TypeError(`${this.where(name)} must be true or false, got ${show(v)}`);
    return v;
  }

  oneOf<T extends string | number>(name: string, dflt: T, allowed: readonly T[]): T {
    const v = this.take(name);
    if (v === undefined) return dflt;
    if (!allowed.includes(v as T)) {
      const wrongType = typeof v !== typeof allowed[0];
      throw new (wrongType ? TypeError : RangeError)(`${this.where(name)} must be one of ${allowed.map((a) => show(a)).join(', ')}, got ${show(v)}`);
    }
    return v as T;
  }

  /** Throws for any field not read so far (a typo must not silently fall back to a default). */
  rejectUnknown(extraAllowed: readonly string[] = []): void {
    for (const key of Object.keys(this.input)) {
      if (this.seen.has(key) || extraAllowed.includes(key)) continue;
      throw new RangeError(`${this.where(key)} is not a ${this.owner} option (known: ${[...this.seen].sort().join(', ')})`);
    }
  }

  /** The common fields, validated. `predictionTypes` narrows the allowed prediction types (PNDM). */
  common(predictionTypes: readonly PredictionType[] = PREDICTION_TYPES): CommonSchedulerConfig {
    const numTrainTimesteps = this.integer('numTrainTimesteps', COMMON_DEFAULTS.numTrainTimesteps, 1, 1_000_000);
    const schedule = this.oneOf('schedule', COMMON_DEFAULTS.schedule, SCHEDULES);
    const betaStart = this.number('betaStart', COMMON_DEFAULTS.betaStart, (v) => (v >= 0 && v < 1 ? null : 'must be in [0, 1)'));
    const betaEnd = this.number('betaEnd', COMMON_DEFAULTS.betaEnd, (v) => (v >= 0 && v < 1 ? null : 'must be in [0, 1)'));
    const sigRange = this.number('sigRange', COMMON_DEFAULTS.sigRange, (v) => (v > 0 ? null : 'must be > 0'));
    const cosineS = this.number('cosineS', COMMON_DEFAULTS.cosineS, (v) => (v >= 0 ? null : 'must be >= 0'));
    const predictionType = this.oneOf('predictionType', COMMON_DEFAULTS.predictionType, predictionTypes);
    const semantics = this.oneOf('semantics', COMMON_DEFAULTS.semantics, SEMANTICS);
    return { numTrainTimesteps, schedule, betaStart, betaEnd, sigRange, cosineS, predictionType, semantics };
  }

  clip(): ClipSampleConfig {
    const clipSample = this.boolean('clipSample', CLIP_DEFAULTS.clipSample);
    const clipSampleMin = this.number('clipSampleMin', CLIP_DEFAULTS.clipSampleMin);
    const clipSampleMax = this.number('clipSampleMax', CLIP_DEFAULTS.clipSampleMax);
    if (clipSampleMin > clipSampleMax)
      throw new RangeError(`${this.owner}: config.clipSampleMin (${clipSampleMin}) must not exceed config.clipSampleMax (${clipSampleMax})`);
    return { clipSample, clipSampleMin, clipSampleMax };
  }
}

// ------------------------------------------------------------------------------------------------------------
// Shared float32 helpers (each mirrors one line of MONAI's step code; comments there cite the paper).

/** torch.round / numpy.round on a value: round half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Reversed arange(n) * ratio + offset: the timesteps of generative-0.2.3 DDPM/DDIM and of PNDM's base grid. */
export function ratioTimesteps(n: number, ratio: number, offset = 0): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = (n - 1 - i) * ratio + offset;
  return out;
}

/**
 * The predicted x0 (DDPM eq. 15 for epsilon; DDIM eq. 12's "predicted x0"), float32 like MONAI:
 *   epsilon:      x0 = (x_t - sqrt(1 - alphaBar_t) * eps) / sqrt(alphaBar_t)
 *   sample:       x0 = model output
 *   v_prediction: x0 = sqrt(alphaBar_t) * x_t - sqrt(1 - alphaBar_t) * v
 * `sqrtAlphaProd` = float32 sqrt(alphaBar_t), `sqrtBetaProd` = float32 sqrt(1 - alphaBar_t). Always a new array.
 */
export function predictOriginalSample(predictionType: PredictionType, modelOutput: Float32Array, sample: Float32Array,
  sqrtAlphaProd: number, sqrtBetaProd: number): Float32Array {
  const n = sample.length;
  const x0 = new Float32Array(n);
  if (predictionType === 'epsilon') {
    for (let i = 0; i < n; i++) x0[i] = f32(sample[i] - f32(sqrtBetaProd * modelOutput[i])) / sqrtAlphaProd;
  } else if (predictionType === 'sample') {
    x0.set(modelOutput.subarray(0, n));
  } else {
    for (let i = 0; i < n; i++) x0[i] = f32(sqrtAlphaProd * sample[i]) - f32(sqrtBetaProd * modelOutput[i]);
  }
  return x0;
}

/** torch.clamp(x, min, max) in place, with MONAI's python-float bounds cast to float32. */
export function clampInPlace(x: Float32Array, min: number, max: number): void {
  const lo = f32(min);
  const hi = f32(max);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    x[i] = v < lo ? lo : v > hi ? hi : v; // NaN stays NaN, as in torch.clamp
  }
}

export function checkFloat32(owner: string, name: string, value: unknown, length?: number): asserts value is Float32Array {
  if (!(value instanceof Float32Array))
    throw new TypeError(`${owner}: argument '${name}' must be a Float32Array, got ${(value as object)?.constructor?.name ?? typeof value}`);
  if (length !== undefined && value.length !== length)
    throw new RangeError(`${owner}: argument '${name}' has ${value.length} elements, expected ${length} (the sample's length)`);
}

// ------------------------------------------------------------------------------------------------------------

/**
 * Base of the four schedulers: the training schedule (betas, alphas, alphasCumprod, built as MONAI's Scheduler
 * constructor does), the inference timesteps (empty until `setTimesteps`), add_noise and get_velocity.
 */
export abstract class DiffusionScheduler<C extends CommonSchedulerConfig = CommonSchedulerConfig> {
  /** The resolved configuration (every field, defaults filled in); frozen, so it round-trips through JSON. */
  readonly config: Readonly<C>;
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  readonly alphasCumprod: Float32Array;
  readonly numTrainTimesteps: number;
  /** Standard deviation of the initial noise (MONAI/diffusers `init_noise_sigma`): 1 for all four schedulers. */
  readonly initNoiseSigma: number = 1;
  /** diffusers' `order`: model calls per returned step, as the loop sees it (1: every step is one call). */
  readonly order: number = 1;
  /** The timesteps to loop over, set by `setTimesteps` (empty before). */
  timesteps: Int32Array = new Int32Array(0);
  /** The `n` given to the last `setTimesteps` (PNDM: the length of its timesteps, as MONAI), or null. */
  numInferenceSteps: number | null = null;

  protected constructor(config: C) {
    this.config = Object.freeze({ ...config });
    const sched: NoiseSchedule = makeNoiseSchedule(config);
    this.betas = sched.betas;
    this.alphas = sched.alphas;
    this.alphasCumprod = sched.alphasCumprod;
    this.numTrainTimesteps = config.numTrainTimesteps;
  }

  /** The class name used in error messages. */
  protected abstract get owner(): string;

  /** Fills `timesteps` for `numInferenceSteps` steps and resets the per-run state. */
  abstract setTimesteps(numInferenceSteps: number): void;

  /** One reverse step from x_t to the previous sample. */
  abstract step(modelOutput: Float32Array, t: number, sample: Float32Array, noise?: Float32Array): SchedulerStepOutput;

  /** Whether `step(…, t, …)` uses a `noise` argument (so the pipeline draws noise only then, as MONAI does). */
  needsNoise(_t: number): boolean {
    return false;
  }

  /** diffusers' scale_model_input: the identity for all four schedulers (kept so the loop never branches). */
  scaleModelInput(sample: Float32Array, _t?: number): Float32Array {
    return sample;
  }

  protected checkNumInferenceSteps(n: unknown): asserts n is number {
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new TypeError(`${this.owner}.setTimesteps: argument 'numInferenceSteps' must be an integer, got ${show(n)}`);
    if (n < 1 || n > this.numTrainTimesteps)
      throw new RangeError(`${this.owner}.setTimesteps: argument 'numInferenceSteps' is ${n}, must be in [1, ${this.numTrainTimesteps}] (numTrainTimesteps; MONAI refuses more inference steps than training steps)`);
  }

  protected requireTimesteps(method: string): number {
    if (this.numInferenceSteps === null)
      throw new SchedulerStateError(`${this.owner}.${method}: no timesteps yet; call setTimesteps(numInferenceSteps) first`);
    return this.numInferenceSteps;
  }

  protected checkTimestep(method: string, t: unknown, name = 't'): asserts t is number {
    if (typeof t !== 'number' || !Number.isSafeInteger(t)) throw new TypeError(`${this.owner}.${method}: argument '${name}' must be an integer timestep, got ${show(t)}`);
    if (t < 0 || t >= this.numTrainTimesteps)
      throw new RangeError(`${this.owner}.${method}: argument '${name}' is ${t}, must be in [0, ${this.numTrainTimesteps - 1}]`);
  }

  protected checkStepArrays(method: string, modelOutput: unknown, sample: unknown, modelOutputFactors: readonly number[] = [1]): asserts modelOutput is Float32Array {
    checkFloat32(`${this.owner}.${method}`, 'sample', sample);
    checkFloat32(`${this.owner}.${method}`, 'modelOutput', modelOutput);
    if (!modelOutputFactors.some((k) => modelOutput.length === k * sample.length))
      throw new RangeError(`${this.owner}.${method}: argument 'modelOutput' has ${modelOutput.length} elements, expected ${modelOutputFactors.map((k) => k * sample.length).join(' or ')} (the sample has ${sample.length})`);
  }

  /** Per-element float32 sqrt(alphaBar_t) and sqrt(1 - alphaBar_t) for a timestep or one timestep per batch item. */
  private coefficients(method: string, length: number, t: number | ArrayLike<number>): { batch: number; sa: Float32Array; sb: Float32Array } {
    const ts = typeof t === 'number' ? [t] : Array.from(t as ArrayLike<number>);
    if (ts.length === 0 || length % ts.length !== 0)
      throw new RangeError(`${this.owner}.${method}: argument 't' has ${ts.length} timesteps, which does not divide the ${length} elements into batch items`);
    const sa = new Float32Array(ts.length);
    const sb = new Float32Array(ts.length);
    ts.forEach((ti, b) => {
      this.checkTimestep(method, ti);
      const a = this.alphasCumprod[ti];
      sa[b] = Math.sqrt(a);
      sb[b] = Math.sqrt(f32(1 - a));
    });
    return { batch: ts.length, sa, sb };
  }

  /**
   * Forward diffusion q(x_t | x_0) (DDPM eq. 4): sqrt(alphaBar_t) * x0 + sqrt(1 - alphaBar_t) * noise. `t` is one
   * timestep, or one per batch item (the array length divides the sample into that many equal items), as MONAI.
   */
  addNoise(originalSamples: Float32Array, noise: Float32Array, t: number | ArrayLike<number>): Float32Array {
    checkFloat32(`${this.owner}.addNoise`, 'originalSamples', originalSamples);
    checkFloat32(`${this.owner}.addNoise`, 'noise', noise, originalSamples.length);
    const { batch, sa, sb } = this.coefficients('addNoise', originalSamples.length, t);
    const per = originalSamples.length / batch;
    const out = new Float32Array(originalSamples.length);
    for (let i = 0; i < out.length; i++) {
      const b = Math.floor(i / per);
      out[i] = f32(sa[b] * originalSamples[i]) + f32(sb[b] * noise[i]);
    }
    return out;
  }

  /** The v-prediction target (Salimans & Ho 2022, section 4): sqrt(alphaBar_t) * noise - sqrt(1 - alphaBar_t) * x0. */
  getVelocity(sample: Float32Array, noise: Float32Array, t: number | ArrayLike<number>): Float32Array {
    checkFloat32(`${this.owner}.getVelocity`, 'sample', sample);
    checkFloat32(`${this.owner}.getVelocity`, 'noise', noise, sample.length);
    const { batch, sa, sb } = this.coefficients('getVelocity', sample.length, t);
    const per = sample.length / batch;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      const b = Math.floor(i / per);
      out[i] = f32(sa[b] * noise[i]) - f32(sb[b] * sample[i]);
    }
    return out;
  }
}

/** The interface the sampling loop sees (all four classes implement it through DiffusionScheduler). */
export type Scheduler = DiffusionScheduler<CommonSchedulerConfig>;
