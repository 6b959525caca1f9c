/**
 * DPM-Solver++ (2M): the multistep second-order solver of the diffusion ODE in data-prediction form (Lu et al.
 * 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models", Algorithm 2), for
 * 10-25 step sampling of models trained with a MONAI scheduler.
 *
 * Port of DPMSolverMultistepScheduler (huggingface/diffusers 0.42.1, src/diffusers/schedulers/
 * scheduling_dpmsolver_multistep.py) restricted to algorithm_type "dpmsolver++", solver_type "midpoint",
 * solver_order 1 or 2, no thresholding, no Karras/Lu/exponential/beta sigmas, lambda_min_clipped = -inf. It runs
 * on the MONAI training schedule (alphasCumprod of noise-schedule.ts, so all four MONAI schedules and both
 * semantics work) instead of diffusers' own beta schedules; the arithmetic is float32 as in diffusers.
 *
 * Notation (variable -> paper): sigma (the table) -> sigma_t / alpha_t of the VP SDE, i.e. sqrt((1 - alphaBar)
 * / alphaBar); alphaT, sigmaT -> alpha_t = sqrt(alphaBar_t), sigma_t = sqrt(1 - alphaBar_t) (recomputed from the
 * table as 1/sqrt(sigma^2 + 1) and sigma * alpha_t, as diffusers); lambda -> lambda_t = log(alpha_t / sigma_t),
 * the half log-SNR; h -> h_i = lambda_{t_i} - lambda_{t_{i-1}}; modelOutputs -> the data predictions x_theta
 * (D0 = the newest, D1 = the divided difference of eq. (8)).
 *
 * State (reset by setTimesteps): modelOutputs (the last solverOrder data predictions), lowerOrderNums (warm-up
 * count), stepIndex (set from the first timestep given to step, then +1 per step).
 *
 * Defaults and why:
 * - timestepSpacing 'trailing' (diffusers' default is 'linspace'; Lin et al. 2024, "Common Diffusion Noise
 *   Schedules and Sample Steps are Flawed", Table 2, rank trailing first). n = 10: trailing 999, 899, ..., 99;
 *   linspace 999, 899, 799, 699, 599, 500, 400, 300, 200, 100; leading 900, 810, ..., 90. Measured on the
 *   gaussian toy of test/schedulers/dpm-solver.spec.ts (error vs the exact ODE + MONAI's final x0 at t = 0, 10-25
 *   steps): trailing is within 2% of linspace or better on all four MONAI schedules; leading is 2-15% better on
 *   the beta schedules (its last step starts lower, t = 90 vs 99, and the last step dominates the error there)
 *   but up to 100x worse on cosine, because it starts at t = 900 where cosine's alphaBar is 0.024: the pure-noise
 *   input is then taken for a sample with 15% signal. Trailing starts at T - 1 for every schedule: the robust pick.
 * - finalSigmasType 'zero': the last step returns the data prediction at the last timestep, so the output is a
 *   clean sample like MONAI's DDPM/DDIM output (x0 predicted at t = 0); 'sigma_min' stops at t = 0's noise level.
 * - lowerOrderFinal true: "Improve numerical stability for small number of steps" (diffusers): the last step is
 *   first order below 15 steps; with finalSigmasType 'zero' it is first order anyway (lambda = +inf there, and
 *   the first-order update then returns the data prediction itself).
 */
import {
  ConfigReader, DiffusionScheduler, SchedulerStateError, predictOriginalSample, roundHalfEven,
  type CommonSchedulerConfig, type SchedulerStepOutput,
} from './scheduler.js';

const f32 = Math.fround;

export const TIMESTEP_SPACINGS = ['linspace', 'leading', 'trailing'] as const;
export type TimestepSpacing = (typeof TIMESTEP_SPACINGS)[number];

export interface DpmSolverMultistepSchedulerConfig extends CommonSchedulerConfig {
  /** diffusers `solver_order`: 2 (default; DPM-Solver++(2M)) or 1 (equivalent to DDIM). */
  solverOrder: 1 | 2;
  /** diffusers `lower_order_final`: first-order last step below 15 steps. Default true. */
  lowerOrderFinal: boolean;
  /**
   * diffusers `timestep_spacing` (Lin et al. 2024, Table 2): 'linspace' = round(linspace(0, T-1, n+1))[::-1][:-1];
   * 'leading' = arange(n+1) * (T // (n+1)) reversed without the last, + stepsOffset; 'trailing' (default) =
   * round(arange(T, 0, -T/n)) - 1.
   */
  timestepSpacing: TimestepSpacing;
  /** diffusers `steps_offset` (used by 'leading' only). Default 0. */
  stepsOffset: number;
  /** diffusers `final_sigmas_type`: 'zero' (default; end at sigma = 0, i.e. x0) or 'sigma_min' (end at t = 0's sigma). */
  finalSigmasType: 'zero' | 'sigma_min';
}

export type DpmSolverMultistepSchedulerOptions = Partial<DpmSolverMultistepSchedulerConfig>;

/** alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t, float32 (diffusers _sigma_to_alpha_sigma_t). */
function alphaSigma(sigma: number): [number, number] {
  const alphaT = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  return [alphaT, f32(sigma * alphaT)];
}

/** lambda_t = log(alpha_t) - log(sigma_t), float32 (+inf at sigma_t = 0). */
function lambdaOf(alphaT: number, sigmaT: number): number {
  return f32(f32(Math.log(alphaT)) - f32(Math.log(sigmaT)));
}

/** numpy.arange(start, stop, step) for float step: length ceil((stop - start) / step), values start + i * delta with delta = (start + step) - start. */
function numpyArange(start: number, stop: number, step: number): number[] {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  if (len === 0) return [];
  const out = [start];
  if (len === 1) return out;
  const next = start + step;
  out.push(next);
  const delta = next - start;
  for (let i = 2; i < len; i++) out.push(start + i * delta);
  return out;
}

export class DpmSolverMultistepScheduler extends DiffusionScheduler<DpmSolverMultistepSchedulerConfig> {
  /** The sigmas of the current run: one per timestep, then the final sigma (0 or sigma_min). */
  sigmas: Float32Array = new Float32Array(0);

  // Run state (diffusers: model_outputs, lower_order_nums, _step_index), reset by setTimesteps.
  /** The last solverOrder data predictions x_theta, oldest first (null until filled). */
  private modelOutputs: Array<Float32Array | null> = [];
  /** Steps taken so far, capped at solverOrder: the warm-up uses lower orders until there is enough history. */
  lowerOrderNums = 0;
  /** Index into timesteps of the next step; null until the first step sets it from its timestep. */
  stepIndex: number | null = null;

  protected get owner(): string {
    return 'DpmSolverMultistepScheduler';
  }

  constructor(options: DpmSolverMultistepSchedulerOptions = {}) {
    const r = new ConfigReader(options as Record<string, unknown>, 'DpmSolverMultistepScheduler');
    const common = r.common();
    const solverOrder = r.oneOf('solverOrder', 2 as 1 | 2, [1, 2] as const);
    const lowerOrderFinal = r.boolean('lowerOrderFinal', true);
    const timestepSpacing = r.oneOf('timestepSpacing', 'trailing' as TimestepSpacing, TIMESTEP_SPACINGS);
    const stepsOffset = r.integer('stepsOffset', 0, 0, common.numTrainTimesteps - 1);
    const finalSigmasType = r.oneOf('finalSigmasType', 'zero' as 'zero' | 'sigma_min', ['zero', 'sigma_min'] as const);
    if ((options as Record<string, unknown>).clipSample === true)
      throw new RangeError(`DpmSolverMultistepScheduler: config.clipSample is not supported (diffusers' DPM-Solver has no clip_sample; leave it out or false)`);
    r.rejectUnknown(['type', 'clipSample']);
    super({ ...common, solverOrder, lowerOrderFinal, timestepSpacing, stepsOffset, finalSigmasType });
  }

  /** sqrt((1 - alphaBar_t) / alphaBar_t) of training timestep t, float32 (diffusers' `sigmas` table). */
  trainSigma(t: number): number {
    const a = this.alphasCumprod[t];
    return f32(Math.sqrt(f32(f32(1 - a) / a)));
  }

  setTimesteps(numInferenceSteps: number): void {
    this.checkNumInferenceSteps(numInferenceSteps);
    const T = this.numTrainTimesteps;
    const n = numInferenceSteps;
    const last = T; // lambda_min_clipped = -inf clips nothing
    let ts: number[];
    if (this.config.timestepSpacing === 'linspace') {
      // np.linspace(0, last - 1, n + 1): i * ((last - 1) / n), the end point exact
      const step = (last - 1) / n;
      const lin = Array.from({ length: n + 1 }, (_, i) => (i === n ? last - 1 : i * step));
      ts = lin.map(roundHalfEven).reverse().slice(0, -1);
    } else if (this.config.timestepSpacing === 'leading') {
      const ratio = Math.floor(last / (n + 1));
      ts = Array.from({ length: n + 1 }, (_, i) => i * ratio).reverse().slice(0, -1).map((v) => v + this.config.stepsOffset);
    } else {
      // np.arange(last, 0, -T / n).round() - 1. For some n float rounding makes this n + 1 long, ending at -1
      // (diffusers does the same); the sigma of t = -1 is then that of t = 0 (np.interp clamps).
      ts = numpyArange(last, 0, -(T / n)).map((v) => roundHalfEven(v) - 1);
    }
    const sigmas = new Float32Array(ts.length + 1);
    ts.forEach((t, i) => {
      sigmas[i] = this.trainSigma(Math.min(Math.max(t, 0), T - 1));
    });
    if (this.config.finalSigmasType === 'sigma_min') {
      sigmas[ts.length] = this.trainSigma(0);
    } else {
      sigmas[ts.length] = 0;
    }
    this.timesteps = Int32Array.from(ts);
    this.sigmas = sigmas;
    this.numInferenceSteps = ts.length;
    this.modelOutputs = new Array<Float32Array | null>(this.config.solverOrder).fill(null);
    this.lowerOrderNums = 0;
    this.stepIndex = null;
  }

  /**
   * The data prediction x_theta(x_t, t) the solver integrates (diffusers convert_model_output, dpmsolver++ branch),
   * with alpha_t, sigma_t taken from the sigma table as diffusers does.
   */
  convertModelOutput(modelOutput: Float32Array, sample: Float32Array, sigma: number): Float32Array {
    // epsilon: (x_t - sigma_t * eps) / alpha_t; sample: the output; v: alpha_t * x_t - sigma_t * v
    const [alphaT, sigmaT] = alphaSigma(sigma);
    return predictOriginalSample(this.config.predictionType, modelOutput, sample, alphaT, sigmaT);
  }

  /** First-order update (= DDIM), DPM-Solver++ eq. (5) with k = 1: x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) D0. */
  private firstOrderUpdate(x0: Float32Array, sample: Float32Array, i: number): Float32Array {
    const [alphaT, sigmaT] = alphaSigma(this.sigmas[i + 1]);
    const [alphaS, sigmaS] = alphaSigma(this.sigmas[i]);
    const h = f32(lambdaOf(alphaT, sigmaT) - lambdaOf(alphaS, sigmaS));
    const cx = f32(sigmaT / sigmaS);
    const cd = f32(alphaT * f32(f32(Math.exp(-h)) - 1));
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) out[k] = f32(cx * sample[k]) - f32(cd * x0[k]);
    return out;
  }

  /**
   * Second-order multistep update, midpoint form (DPM-Solver++(2M), Algorithm 2 of Lu et al. 2022):
   *   r0 = h_0 / h, D0 = m0, D1 = (m0 - m1) / r0,
   *   x_t = (sigma_t / sigma_s0) x - alpha_t (e^{-h} - 1) D0 - 0.5 alpha_t (e^{-h} - 1) D1.
   */
  private secondOrderUpdate(m0: Float32Array, m1: Float32Array, sample: Float32Array, i: number): Float32Array {
    const [alphaT, sigmaT] = alphaSigma(this.sigmas[i + 1]);
    const [alphaS0, sigmaS0] = alphaSigma(this.sigmas[i]);
    const [alphaS1, sigmaS1] = alphaSigma(this.sigmas[i - 1]);
    const lambdaT = lambdaOf(alphaT, sigmaT);
    const lambdaS0 = lambdaOf(alphaS0, sigmaS0);
    const lambdaS1 = lambdaOf(alphaS1, sigmaS1);
    const h = f32(lambdaT - lambdaS0);
    const h0 = f32(lambdaS0 - lambdaS1);
    const r0 = f32(h0 / h);
    const invR0 = f32(1 / r0);
    const cx = f32(sigmaT / sigmaS0);
    const cd = f32(alphaT * f32(f32(Math.exp(-h)) - 1));
    const cd1 = f32(0.5 * cd);
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      const d1 = f32(invR0 * f32(m0[k] - m1[k]));
      out[k] = f32(f32(cx * sample[k]) - f32(cd * m0[k])) - f32(cd1 * d1);
    }
    return out;
  }

  /**
   * One solver step from timesteps[stepIndex] to the next (or to the final sigma). The first call may start at
   * any listed timestep (diffusers' _init_step_index); later calls must follow the list.
   */
  step(modelOutput: Float32Array, t: number, sample: Float32Array, _noise?: Float32Array): SchedulerStepOutput {
    this.requireTimesteps('step');
    this.checkStepArrays('step', modelOutput, sample);
    if (typeof t !== 'number' || !Number.isSafeInteger(t)) throw new TypeError(`DpmSolverMultistepScheduler.step: argument 't' must be an integer timestep, got ${JSON.stringify(t)}`);
    const len = this.timesteps.length;
    if (this.stepIndex === null) {
      // diffusers index_for_timestep: the first match, or the second when t is listed twice
      const hits: number[] = [];
      this.timesteps.forEach((v, i) => {
        if (v === t) hits.push(i);
      });
      if (hits.length === 0)
        throw new RangeError(`DpmSolverMultistepScheduler.step: argument 't' is ${t}, which is not one of the timesteps set by setTimesteps (${Array.from(this.timesteps).join(', ')})`);
      this.stepIndex = hits.length > 1 ? hits[1] : hits[0];
    } else if (this.stepIndex >= len) {
      throw new SchedulerStateError(`DpmSolverMultistepScheduler.step: all ${len} steps are done; call setTimesteps(numInferenceSteps) to sample again`);
    } else if (this.timesteps[this.stepIndex] !== t) {
      throw new RangeError(`DpmSolverMultistepScheduler.step: argument 't' is ${t}, expected timesteps[${this.stepIndex}] = ${this.timesteps[this.stepIndex]} (steps must follow the timesteps in order)`);
    }
    const i = this.stepIndex;

    // Improve numerical stability for small number of steps (diffusers): first order at the very end below
    // 15 steps, and always when the final sigma is 0.
    const lowerOrderFinal = i === len - 1 && ((this.config.lowerOrderFinal && len < 15) || this.config.finalSigmasType === 'zero');

    const x0 = this.convertModelOutput(modelOutput, sample, this.sigmas[i]);
    const order = this.config.solverOrder;
    for (let k = 0; k < order - 1; k++) this.modelOutputs[k] = this.modelOutputs[k + 1];
    this.modelOutputs[order - 1] = x0;

    let prev: Float32Array;
    if (order === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) prev = this.firstOrderUpdate(x0, sample, i);
    else prev = this.secondOrderUpdate(x0, this.modelOutputs[order - 2] as Float32Array, sample, i);

    if (this.lowerOrderNums < order) this.lowerOrderNums += 1;
    this.stepIndex = i + 1;
    return { prevSample: prev, predOriginalSample: x0 };
  }
}
