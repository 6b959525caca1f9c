/**
 * PNDM: pseudo numerical methods for diffusion models (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion
 * Models on Manifolds"): F-PNDM = 3 pseudo Runge-Kutta (PRK) warm-up steps (4 model calls each, eq. 13) then
 * pseudo linear multi-step (PLMS, eq. 12); every step applies the transfer function phi of eq. (11)/(9).
 *
 * Port of PNDMScheduler from generative/networks/schedulers/pndm.py (Project-MONAI/GenerativeModels 0.2.3,
 * a9b17d4; identical arithmetic in monai/networks/schedulers/pndm.py of MONAI 1.6.1), float32 like both.
 *
 * Notation (variable -> paper): alphaProd -> alpha_t, alphaProdPrev -> alpha_(t-delta), ets -> the history of
 * model outputs e_i (newest last), sample -> x_t, prevSample -> x_(t-delta).
 *
 * Stateful (ets, counter, curModelOutput, curSample): setTimesteps resets it, so one instance runs one sample
 * at a time. MONAI quirks reproduced:
 * - setTimesteps sets numInferenceSteps to the length of `timesteps` (n + 9 with PRK), and step() derives its
 *   step size from that: PLMS steps go t -> t - T // (n + 9) although the timesteps are T // n apart, and PRK
 *   half-steps use T // (n + 9) // 2.
 * - PRK evaluates the transfer at prk_timesteps[4 * floor(counter / 4)], ignoring the timestep passed in (the
 *   passed one only sets the target).
 * - skipPrkSteps: PLMS from the start with a two-call first step (Heun-like, crowsonkb's PLMS): the second call
 *   re-does step 1 from the saved sample with the averaged output and returns a sample at timesteps[1] again;
 *   the third call (at timesteps[2]) then steps a sample that is still at timesteps[1]. (diffusers duplicates a
 *   timestep to avoid this; MONAI does not.)
 * - Without skipPrkSteps MONAI needs numInferenceSteps >= 4 (fewer fails in numpy); here a RangeError.
 * - Prediction types epsilon and v_prediction only (v is turned into epsilon inside the transfer).
 */
import {
  ConfigReader, DiffusionScheduler, SchedulerStateError, type CommonSchedulerConfig, type SchedulerStepOutput,
} from './scheduler.js';

const f32 = Math.fround;

export interface PndmSchedulerConfig extends CommonSchedulerConfig {
  /** MONAI `skip_prk_steps`: PLMS only (default false: 3 PRK warm-up steps first). */
  skipPrkSteps: boolean;
  /** MONAI `set_alpha_to_one`: previous alphaBar past t = 0 is 1, or alphaBar_0 (false, default for PNDM). */
  setAlphaToOne: boolean;
  /** MONAI `steps_offset`, added to every timestep. Default 0. */
  stepsOffset: number;
}

export type PndmSchedulerOptions = Partial<PndmSchedulerConfig>;

const ONE_SIXTH = f32(1 / 6);
const ONE_THIRD = f32(1 / 3);
const ONE_24TH = f32(1 / 24);

export class PndmScheduler extends DiffusionScheduler<PndmSchedulerConfig> {
  readonly finalAlphaCumprod: number;
  /** F-PNDM order (MONAI `pndm_order`): PRK warm-up over the last 4 base timesteps. */
  readonly pndmOrder = 4;
  /** The PRK part of `timesteps` (empty with skipPrkSteps). */
  prkTimesteps: Int32Array = new Int32Array(0);
  /** The PLMS part of `timesteps`. */
  plmsTimesteps: Int32Array = new Int32Array(0);

  // Run state, reset by setTimesteps (MONAI: ets, counter, cur_model_output, cur_sample).
  /** Past model outputs e_i (PLMS keeps the last 4), newest last. */
  private ets: Float32Array[] = [];
  /** Number of step() calls since setTimesteps. */
  counter = 0;
  /** PRK: the running weighted sum (1/6, 1/3, 1/3, 1/6) of the four outputs. */
  private curModelOutput: Float32Array | null = null;
  /** PRK: x_t at the start of the current RK step; skipPrk: x_t of the first step. */
  private curSample: Float32Array | null = null;

  protected get owner(): string {
    return 'PndmScheduler';
  }

  constructor(options: PndmSchedulerOptions = {}) {
    const r = new ConfigReader(options as Record<string, unknown>, 'PndmScheduler');
    const common = r.common(['epsilon', 'v_prediction']);
    const skipPrkSteps = r.boolean('skipPrkSteps', false);
    const setAlphaToOne = r.boolean('setAlphaToOne', false);
    const stepsOffset = r.integer('stepsOffset', 0, 0, common.numTrainTimesteps - 1);
    r.rejectUnknown(['type']);
    super({ ...common, skipPrkSteps, setAlphaToOne, stepsOffset });
    this.finalAlphaCumprod = setAlphaToOne ? 1 : this.alphasCumprod[0];
  }

  /** Number of model outputs held in the PLMS history (for tests of the state reset). */
  get historyLength(): number {
    return this.ets.length;
  }

  setTimesteps(numInferenceSteps: number): void {
    this.checkNumInferenceSteps(numInferenceSteps);
    const T = this.numTrainTimesteps;
    const n = numInferenceSteps;
    if (!this.config.skipPrkSteps && n < this.pndmOrder)
      throw new RangeError(`PndmScheduler.setTimesteps: argument 'numInferenceSteps' is ${n}; the PRK warm-up needs at least ${this.pndmOrder} (or set config.skipPrkSteps)`);
    const ratio = Math.floor(T / n);
    const base = Array.from({ length: n }, (_, i) => i * ratio + this.config.stepsOffset);
    let prk: number[];
    let plms: number[];
    if (this.config.skipPrkSteps) {
      prk = [];
      plms = base.slice().reverse();
    } else {
      // numpy: (_timesteps[-4:].repeat(2) + tile([0, T // n // 2], 4))[:-1].repeat(2)[1:-1][::-1]
      const half = Math.floor(Math.floor(T / n) / 2);
      const last = base.slice(-this.pndmOrder);
      const pairs = last.flatMap((v) => [v, v + half]);
      const rep = pairs.slice(0, -1).flatMap((v) => [v, v]);
      prk = rep.slice(1, -1).reverse();
      plms = base.slice(0, -3).reverse();
    }
    this.prkTimesteps = Int32Array.from(prk);
    this.plmsTimesteps = Int32Array.from(plms);
    this.timesteps = Int32Array.from([...prk, ...plms]);
    // MONAI: "update num_inference_steps - necessary if we use prk steps"; step() divides by this length.
    this.numInferenceSteps = this.timesteps.length;
    this.ets = [];
    this.counter = 0;
    this.curModelOutput = null;
    this.curSample = null;
  }

  /** One PNDM call: PRK while counter < prkTimesteps.length (and not skipPrkSteps), PLMS after. x0 is not computed (null, as MONAI's None). */
  step(modelOutput: Float32Array, t: number, sample: Float32Array, _noise?: Float32Array): SchedulerStepOutput {
    this.requireTimesteps('step');
    this.checkTimestep('step', t);
    this.checkStepArrays('step', modelOutput, sample);
    const prevSample = this.counter < this.prkTimesteps.length && !this.config.skipPrkSteps
      ? this.stepPrk(modelOutput, t, sample)
      : this.stepPlms(modelOutput, t, sample);
    return { prevSample, predOriginalSample: null };
  }

  /** Pseudo Runge-Kutta (eq. 13): four calls per step at t, t - delta/2, t - delta/2, t - delta. */
  private stepPrk(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array {
    const n = this.numInferenceSteps as number;
    const diffToPrev = this.counter % 2 ? 0 : Math.floor(Math.floor(this.numTrainTimesteps / n) / 2);
    const prevT = t - diffToPrev;
    const timestep = this.prkTimesteps[Math.floor(this.counter / 4) * 4];
    const len = sample.length;
    let out = modelOutput;
    const phase = this.counter % 4;
    if (phase === 0) {
      const cur = new Float32Array(len);
      for (let i = 0; i < len; i++) cur[i] = ONE_SIXTH * modelOutput[i];
      this.curModelOutput = cur;
      this.ets.push(modelOutput.slice());
      this.curSample = sample.slice();
    } else if (phase === 1 || phase === 2) {
      const cur = this.curModelOutput as Float32Array;
      for (let i = 0; i < len; i++) cur[i] = cur[i] + f32(ONE_THIRD * modelOutput[i]);
    } else {
      const cur = this.curModelOutput as Float32Array;
      out = new Float32Array(len);
      for (let i = 0; i < len; i++) out[i] = cur[i] + f32(ONE_SIXTH * modelOutput[i]);
      this.curModelOutput = null;
    }
    const curSample = this.curSample ?? sample;
    const prev = this.getPrevSample(curSample, timestep, prevT, out);
    this.counter += 1;
    return prev;
  }

  /** Pseudo linear multi-step (eq. 12): Adams-Bashforth combinations of the last 1-4 model outputs. */
  private stepPlms(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array {
    if (!this.config.skipPrkSteps && this.ets.length < 3)
      throw new SchedulerStateError(`PndmScheduler.step: PLMS needs the 3 PRK warm-up steps (12 calls) first; call setTimesteps(numInferenceSteps) and step through timesteps in order`);
    const n = this.numInferenceSteps as number;
    const ratio = Math.floor(this.numTrainTimesteps / n);
    let timestep = t;
    let prevT = t - ratio;
    if (this.counter !== 1) {
      this.ets = this.ets.slice(-3);
      this.ets.push(modelOutput.slice());
    } else {
      prevT = t;
      timestep = t + ratio;
    }
    const e = this.ets;
    const k = e.length;
    const len = sample.length;
    let x = sample;
    let out: Float32Array;
    if (k === 1 && this.counter === 0) {
      out = modelOutput;
      this.curSample = sample.slice();
    } else if (k === 1 && this.counter === 1) {
      // second call of the skipPrk start: average with the first output, restart from the saved sample
      const e1 = e[k - 1];
      out = new Float32Array(len);
      for (let i = 0; i < len; i++) out[i] = f32(modelOutput[i] + e1[i]) / 2;
      x = this.curSample as Float32Array;
      this.curSample = null;
    } else if (k === 2) {
      const [e2, e1] = [e[0], e[1]];
      out = new Float32Array(len);
      for (let i = 0; i < len; i++) out[i] = f32(f32(3 * e1[i]) - e2[i]) / 2;
    } else if (k === 3) {
      const [e3, e2, e1] = [e[0], e[1], e[2]];
      out = new Float32Array(len);
      for (let i = 0; i < len; i++) out[i] = f32(f32(f32(23 * e1[i]) - f32(16 * e2[i])) + f32(5 * e3[i])) / 12;
    } else {
      const [e4, e3, e2, e1] = [e[k - 4], e[k - 3], e[k - 2], e[k - 1]];
      out = new Float32Array(len);
      for (let i = 0; i < len; i++)
        out[i] = ONE_24TH * f32(f32(f32(f32(55 * e1[i]) - f32(59 * e2[i])) + f32(37 * e3[i])) - f32(9 * e4[i]));
    }
    const prev = this.getPrevSample(x, timestep, prevT, out);
    this.counter += 1;
    return prev;
  }

  /**
   * The transfer phi(x_t, e_t, t, t - delta) of eq. (11), written as eq. (9) with x_t added on both sides:
   *   x_(t-delta) = sqrt(alpha_(t-delta) / alpha_t) * x_t
   *                 - (alpha_(t-delta) - alpha_t) * e_t / (alpha_t * sqrt(1 - alpha_(t-delta)) + sqrt(alpha_t (1 - alpha_t) alpha_(t-delta)))
   */
  private getPrevSample(sample: Float32Array, timestep: number, prevTimestep: number, modelOutput: Float32Array): Float32Array {
    if (timestep < 0 || timestep >= this.numTrainTimesteps)
      throw new RangeError(`PndmScheduler.step: the transfer needs alphaBar at timestep ${timestep}, outside [0, ${this.numTrainTimesteps - 1}] (were the timesteps stepped in order?)`);
    const alphaProd = this.alphasCumprod[timestep];
    const alphaProdPrev = prevTimestep >= 0 ? this.alphasCumprod[prevTimestep] : this.finalAlphaCumprod;
    const betaProd = f32(1 - alphaProd);
    const betaProdPrev = f32(1 - alphaProdPrev);
    const len = sample.length;
    let eps = modelOutput;
    if (this.config.predictionType === 'v_prediction') {
      const sa = f32(Math.sqrt(alphaProd));
      const sb = f32(Math.sqrt(betaProd));
      eps = new Float32Array(len);
      for (let i = 0; i < len; i++) eps[i] = f32(sa * modelOutput[i]) + f32(sb * sample[i]);
    }
    // (alpha_(t-delta) - alpha_t) / (sqrt(alpha_t) * (sqrt(alpha_(t-delta)) + sqrt(alpha_t))) + 1 = sqrt(alpha_(t-delta) / alpha_t)
    const sampleCoeff = f32(Math.sqrt(f32(alphaProdPrev / alphaProd)));
    // denominator of e_t in eq. (9)
    const denom = f32(f32(alphaProd * f32(Math.sqrt(betaProdPrev))) + f32(Math.sqrt(f32(f32(alphaProd * betaProd) * alphaProdPrev))));
    const diff = f32(alphaProdPrev - alphaProd);
    const prev = new Float32Array(len);
    for (let i = 0; i < len; i++) prev[i] = f32(sampleCoeff * sample[i]) - f32(f32(diff * eps[i]) / denom);
    return prev;
  }
}
