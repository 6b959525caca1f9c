/**
 * DDPM ancestral sampling (Ho et al. 2020, "Denoising Diffusion Probabilistic Models").
 *
 * Port of DDPMScheduler from generative/networks/schedulers/ddpm.py (Project-MONAI/GenerativeModels 0.2.3,
 * a9b17d4) and monai/networks/schedulers/ddpm.py (MONAI 1.6.1), float32 like both.
 *
 * Notation (variable -> paper): alphaBar_t = alphasCumprod[t]; alphaBarPrev = alphaBar_{t-1} (1 at t = 0);
 * predOriginalSample = x0 (eq. 15); mean = mu~_t(x_t, x0) (eq. 7); variance = sigma_t^2 (section 3.2).
 *
 * MONAI quirks reproduced:
 * - The previous timestep is always the training neighbour t - 1, even when fewer inference steps are set: with
 *   n < T steps each step still only removes one training step's worth of noise (the "skipped" steps are not
 *   bridged), exactly as MONAI does.
 * - set_timesteps: generative-0.2.3 uses reversed(arange(n) * (T // n)) (n = 50 -> 980, 960, ..., 0);
 *   monai-1.6 uses round(linspace(T - 1, 0, n)) with torch's float32 linspace and round-half-to-even.
 * - fixed_small clamps the variance at 1e-20 (float32); learned returns the model's variance as is;
 *   learned_range interpolates between the posterior variance and beta_t with frac = (v + 1) / 2 (MONAI
 *   interpolates the variances, not their logs as Nichol & Dhariwal do).
 * - 'learned'/'learned_range' without a predicted variance: monai-1.6 falls back to the unclamped posterior
 *   variance; generative-0.2.3 fails (here: a TypeError naming modelOutput).
 * - Noise is added for every t > 0 (drawn by MONAI with torch.randn; here passed in as `noise`).
 */
import {
  ConfigReader, DiffusionScheduler, checkFloat32, clampInPlace, predictOriginalSample, ratioTimesteps, roundHalfEven,
  type ClipSampleConfig, type CommonSchedulerConfig, type SchedulerStepOutput,
} from './scheduler.js';
import { torchLinspaceF32 } from './noise-schedule.js';

const f32 = Math.fround;

export const DDPM_VARIANCE_TYPES = ['fixed_small', 'fixed_large', 'learned', 'learned_range'] as const;
export type DdpmVarianceType = (typeof DDPM_VARIANCE_TYPES)[number];

export interface DdpmSchedulerConfig extends CommonSchedulerConfig, ClipSampleConfig {
  /** MONAI `variance_type`. Default 'fixed_small' (sigma_t^2 = beta~_t, DDPM section 3.2). */
  varianceType: DdpmVarianceType;
}

export type DdpmSchedulerOptions = Partial<DdpmSchedulerConfig>;

/**
 * Splits a network output of 2C channels ([B, 2C, ...spatial], flat) into the prediction (first C channels of
 * each batch item) and the predicted variance (last C), as MONAI's torch.split(model_output, C, dim=1).
 */
export function splitLearnedVariance(modelOutput: Float32Array, batchSize: number): { prediction: Float32Array; variance: Float32Array } {
  checkFloat32('splitLearnedVariance', 'modelOutput', modelOutput);
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`splitLearnedVariance: argument 'batchSize' must be a positive integer, got ${batchSize}`);
  if (modelOutput.length % (2 * batchSize) !== 0)
    throw new RangeError(`splitLearnedVariance: argument 'modelOutput' has ${modelOutput.length} elements, not 2 halves per batch item for ${batchSize} items`);
  const half = modelOutput.length / (2 * batchSize);
  const prediction = new Float32Array(half * batchSize);
  const variance = new Float32Array(half * batchSize);
  for (let b = 0; b < batchSize; b++) {
    prediction.set(modelOutput.subarray(2 * b * half, (2 * b + 1) * half), b * half);
    variance.set(modelOutput.subarray((2 * b + 1) * half, (2 * b + 2) * half), b * half);
  }
  return { prediction, variance };
}

export class DdpmScheduler extends DiffusionScheduler<DdpmSchedulerConfig> {
  protected get owner(): string {
    return 'DdpmScheduler';
  }

  constructor(options: DdpmSchedulerOptions = {}) {
    const r = new ConfigReader(options as Record<string, unknown>, 'DdpmScheduler');
    const common = r.common();
    const clip = r.clip();
    const varianceType = r.oneOf('varianceType', 'fixed_small' as DdpmVarianceType, DDPM_VARIANCE_TYPES);
    r.rejectUnknown(['type']);
    super({ ...common, ...clip, varianceType });
  }

  setTimesteps(numInferenceSteps: number): void {
    this.checkNumInferenceSteps(numInferenceSteps);
    const T = this.numTrainTimesteps;
    const n = numInferenceSteps;
    if (this.config.semantics === 'generative-0.2.3') {
      this.timesteps = ratioTimesteps(n, Math.floor(T / n));
    } else {
      const lin = torchLinspaceF32(T - 1, 0, n);
      this.timesteps = Int32Array.from(lin, roundHalfEven);
    }
    this.numInferenceSteps = n;
  }

  override needsNoise(t: number): boolean {
    return t > 0;
  }

  /**
   * One ancestral step x_t -> x_{t-1} (Ho et al. 2020, Algorithm 2). For the learned variance types pass the
   * network's 2C-channel output of one batch item as `modelOutput` (split in halves), or the prediction and
   * `predictedVariance` separately (see splitLearnedVariance for batches).
   * @param noise standard normal, the sample's length; required for t > 0.
   */
  step(modelOutput: Float32Array, t: number, sample: Float32Array, noise?: Float32Array, predictedVariance?: Float32Array): SchedulerStepOutput {
    const learned = this.config.varianceType === 'learned' || this.config.varianceType === 'learned_range';
    this.requireTimesteps('step');
    this.checkTimestep('step', t);
    this.checkStepArrays('step', modelOutput, sample, learned && predictedVariance === undefined ? [1, 2] : [1]);
    let prediction = modelOutput;
    let pv: Float32Array | null = null;
    if (predictedVariance !== undefined) {
      if (!learned) throw new RangeError(`DdpmScheduler.step: argument 'predictedVariance' is only used with varianceType 'learned' or 'learned_range' (config.varianceType is '${this.config.varianceType}')`);
      checkFloat32('DdpmScheduler.step', 'predictedVariance', predictedVariance, sample.length);
      pv = predictedVariance;
    } else if (learned && modelOutput.length === 2 * sample.length) {
      // MONAI: model_output.shape[1] == 2 * sample.shape[1] -> torch.split along channels (one batch item here).
      prediction = modelOutput.subarray(0, sample.length);
      pv = modelOutput.subarray(sample.length);
    }
    if (learned && pv === null && this.config.semantics === 'generative-0.2.3')
      throw new TypeError(`DdpmScheduler.step: varianceType '${this.config.varianceType}' needs the predicted variance: pass a 2C-channel 'modelOutput' or 'predictedVariance' (monai-generative 0.2.3 fails here too)`);
    if (t > 0) checkFloat32('DdpmScheduler.step', 'noise', noise, sample.length);

    // 1. compute alphas, betas
    const alphaProd = this.alphasCumprod[t];
    const alphaProdPrev = t > 0 ? this.alphasCumprod[t - 1] : 1;
    const betaProd = f32(1 - alphaProd);
    const betaProdPrev = f32(1 - alphaProdPrev);

    // 2. predicted x0, "predicted x_0" of eq. (15)
    const x0 = predictOriginalSample(this.config.predictionType, prediction, sample, f32(Math.sqrt(alphaProd)), f32(Math.sqrt(betaProd)));

    // 3. clip "predicted x_0"
    if (this.config.clipSample) clampInPlace(x0, this.config.clipSampleMin, this.config.clipSampleMax);

    // 4. coefficients of x0 and x_t in the posterior mean mu~_t, eq. (7)
    const beta = this.betas[t];
    const x0Coeff = f32(f32(f32(Math.sqrt(alphaProdPrev)) * beta) / betaProd);
    const xtCoeff = f32(f32(f32(Math.sqrt(this.alphas[t])) * betaProdPrev) / betaProd);

    // 5. predicted previous sample mu~_t
    const n = sample.length;
    const prev = new Float32Array(n);
    for (let i = 0; i < n; i++) prev[i] = f32(x0Coeff * x0[i]) + f32(xtCoeff * sample[i]);

    // 6. add noise sigma_t * z for t > 0
    if (t > 0) {
      const z = noise as Float32Array;
      // posterior variance beta~_t = (1 - alphaBar_{t-1}) / (1 - alphaBar_t) * beta_t, eq. (7)
      const posterior = f32(f32(betaProdPrev / betaProd) * beta);
      const vt = this.config.varianceType;
      if (pv !== null && vt === 'learned') {
        for (let i = 0; i < n; i++) prev[i] = prev[i] + f32(f32(Math.sqrt(pv[i])) * z[i]);
      } else if (pv !== null && vt === 'learned_range') {
        const minLog = posterior;
        const maxLog = beta;
        for (let i = 0; i < n; i++) {
          const frac = f32(f32(pv[i] + 1) / 2);
          const variance = f32(f32(frac * maxLog) + f32(f32(1 - frac) * minLog));
          prev[i] = prev[i] + f32(f32(Math.sqrt(variance)) * z[i]);
        }
      } else {
        // fixed_small: clamp at 1e-20 ("hacks - were probably added for training stability", MONAI); fixed_large:
        // beta_t (DDPM section 3.2's other choice); learned types without a predicted variance (monai-1.6): the
        // unclamped posterior variance.
        const variance = vt === 'fixed_small' ? Math.max(posterior, f32(1e-20)) : vt === 'fixed_large' ? beta : posterior;
        const std = f32(Math.sqrt(variance));
        for (let i = 0; i < n; i++) prev[i] = prev[i] + f32(std * z[i]);
      }
    }
    return { prevSample: prev, predOriginalSample: x0 };
  }
}
