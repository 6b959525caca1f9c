/**
 * DDIM sampling (Song et al. 2021, "Denoising Diffusion Implicit Models"), deterministic for eta = 0.
 *
 * Port of DDIMScheduler from generative/networks/schedulers/ddim.py (Project-MONAI/GenerativeModels 0.2.3,
 * a9b17d4) and monai/networks/schedulers/ddim.py (MONAI 1.6.1), float32 like both.
 *
 * Notation (variable -> paper): modelOutput -> eps_theta(x_t, t); predOriginalSample -> f_theta(x_t, t) = x0
 * ("predicted x0" of eq. 12); stdDev -> sigma_t(eta) (eq. 16); direction -> "direction pointing to x_t" (eq. 12);
 * alphaBar_t = alphasCumprod[t] (the paper's alpha_t).
 *
 * MONAI quirks reproduced:
 * - The previous timestep is t - T // n whatever the timesteps are. generative-0.2.3's timesteps are
 *   reversed(arange(n) * (T // n)) + stepsOffset, so n = 50 gives 980, 960, ..., 0 (it does not start at 999);
 *   monai-1.6's are round(linspace(T - 1 - stepsOffset, 0, n)) + stepsOffset (999, 979, 958, ... for 50), while
 *   the previous timestep is still t - T // n (so the steps do not land on the next listed timestep).
 * - setAlphaToOne (default true): past t = 0 the previous alphaBar is 1 (else alphaBar_0).
 * - eta > 0 adds sigma_t * z with z passed in as `noise` (MONAI draws torch.randn).
 * - reversedStep (DDIM inversion, x_t -> x_{t+T//n}): past the last training step generative-0.2.3 uses 0 (with
 *   setAlphaToOne) or alphaBar_{T-1}; MONAI core 1.6 indexes alphas_cumprod out of range and raises IndexError,
 *   which here is a RangeError naming t.
 */
import {
  ConfigReader, DiffusionScheduler, checkFloat32, clampInPlace, predictOriginalSample, ratioTimesteps, roundHalfEven,
  type ClipSampleConfig, type CommonSchedulerConfig, type SchedulerStepOutput,
} from './scheduler.js';
import { torchLinspaceF32 } from './noise-schedule.js';

const f32 = Math.fround;

export interface DdimSchedulerConfig extends CommonSchedulerConfig, ClipSampleConfig {
  /** MONAI `set_alpha_to_one`: previous alphaBar past t = 0 is 1 (true, default) or alphaBar_0. */
  setAlphaToOne: boolean;
  /** MONAI `steps_offset`, added to every timestep; in [0, T). Default 0 (Stable Diffusion uses 1). */
  stepsOffset: number;
  /**
   * eta of eq. (16): 0 (default) is deterministic DDIM, 1 is DDPM-like ancestral sampling. MONAI passes it to
   * each step(); it is a config field here because the loop calls every scheduler the same way.
   */
  eta: number;
}

export type DdimSchedulerOptions = Partial<DdimSchedulerConfig>;

export class DdimScheduler extends DiffusionScheduler<DdimSchedulerConfig> {
  /** alphaBar used past t = 0 (MONAI `final_alpha_cumprod`). */
  readonly finalAlphaCumprod: number;
  /** alphaBar used past t = T - 1 by reversedStep with generative-0.2.3 (its `first_alpha_cumprod`). */
  readonly firstAlphaCumprod: number;

  protected get owner(): string {
    return 'DdimScheduler';
  }

  constructor(options: DdimSchedulerOptions = {}) {
    const r = new ConfigReader(options as Record<string, unknown>, 'DdimScheduler');
    const common = r.common();
    const clip = r.clip();
    const setAlphaToOne = r.boolean('setAlphaToOne', true);
    const stepsOffset = r.integer('stepsOffset', 0, 0, common.numTrainTimesteps - 1);
    const eta = r.number('eta', 0, (v) => (v >= 0 ? null : 'must be >= 0'));
    r.rejectUnknown(['type']);
    super({ ...common, ...clip, setAlphaToOne, stepsOffset, eta });
    this.finalAlphaCumprod = setAlphaToOne ? 1 : this.alphasCumprod[0];
    this.firstAlphaCumprod = setAlphaToOne ? 0 : this.alphasCumprod[this.numTrainTimesteps - 1];
  }

  setTimesteps(numInferenceSteps: number): void {
    this.checkNumInferenceSteps(numInferenceSteps);
    const T = this.numTrainTimesteps;
    const n = numInferenceSteps;
    const offset = this.config.stepsOffset;
    if (this.config.semantics === 'generative-0.2.3') {
      this.timesteps = ratioTimesteps(n, Math.floor(T / n), offset);
    } else {
      const lin = torchLinspaceF32(T - 1 - offset, 0, n);
      this.timesteps = Int32Array.from(lin, (v) => roundHalfEven(v) + offset);
    }
    this.numInferenceSteps = n;
  }

  override needsNoise(_t: number): boolean {
    return this.config.eta > 0;
  }

  /** x0 and eps-hat from the model output (step 3 of MONAI's step), x0 clipped (step 4). */
  private predict(modelOutput: Float32Array, sample: Float32Array, alphaProd: number): { x0: Float32Array; eps: Float32Array } {
    const sa = f32(Math.sqrt(alphaProd));
    const sb = f32(Math.sqrt(f32(1 - alphaProd)));
    const n = sample.length;
    const x0 = predictOriginalSample(this.config.predictionType, modelOutput, sample, sa, sb);
    let eps: Float32Array;
    if (this.config.predictionType === 'epsilon') {
      eps = modelOutput;
    } else if (this.config.predictionType === 'sample') {
      // eps = (x_t - sqrt(alphaBar_t) * x0) / sqrt(1 - alphaBar_t), with the unclipped x0 (MONAI's order)
      eps = new Float32Array(n);
      for (let i = 0; i < n; i++) eps[i] = f32(sample[i] - f32(sa * modelOutput[i])) / sb;
    } else {
      // eps = sqrt(alphaBar_t) * v + sqrt(1 - alphaBar_t) * x_t
      eps = new Float32Array(n);
      for (let i = 0; i < n; i++) eps[i] = f32(sa * modelOutput[i]) + f32(sb * sample[i]);
    }
    if (this.config.clipSample) clampInPlace(x0, this.config.clipSampleMin, this.config.clipSampleMax);
    return { x0, eps };
  }

  /**
   * One DDIM step x_t -> x_{t - T//n} (eq. 12).
   * @param noise standard normal, the sample's length; required when config.eta > 0.
   */
  step(modelOutput: Float32Array, t: number, sample: Float32Array, noise?: Float32Array): SchedulerStepOutput {
    const n = this.requireTimesteps('step');
    this.checkTimestep('step', t);
    this.checkStepArrays('step', modelOutput, sample);
    const eta = this.config.eta;
    if (eta > 0) checkFloat32('DdimScheduler.step', 'noise', noise, sample.length);

    // 1. previous step value (= t - T // n)
    const prevT = t - Math.floor(this.numTrainTimesteps / n);

    // 2. alphas, betas
    const alphaProd = this.alphasCumprod[t];
    const alphaProdPrev = prevT >= 0 ? this.alphasCumprod[prevT] : this.finalAlphaCumprod;

    // 3. predicted x0 and eps ("predicted x0" of eq. 12); 4. clip x0
    const { x0, eps } = this.predict(modelOutput, sample, alphaProd);

    // 5. sigma_t(eta) = eta * sqrt((1 - alphaBar_prev) / (1 - alphaBar_t)) * sqrt(1 - alphaBar_t / alphaBar_prev), eq. (16)
    const betaProd = f32(1 - alphaProd);
    const betaProdPrev = f32(1 - alphaProdPrev);
    const variance = f32(f32(betaProdPrev / betaProd) * f32(1 - f32(alphaProd / alphaProdPrev)));
    const stdDev = f32(f32(eta) * f32(Math.sqrt(variance)));

    // 6. "direction pointing to x_t" of eq. (12): sqrt(1 - alphaBar_prev - sigma_t^2) * eps
    const dirCoeff = f32(Math.sqrt(f32(f32(1 - alphaProdPrev) - f32(stdDev * stdDev))));
    // 7. x_{t-1} without noise, eq. (12)
    const sqrtPrev = f32(Math.sqrt(alphaProdPrev));
    const len = sample.length;
    const prev = new Float32Array(len);
    for (let i = 0; i < len; i++) prev[i] = f32(sqrtPrev * x0[i]) + f32(dirCoeff * eps[i]);

    // 8. + sigma_t * z
    if (eta > 0) {
      const z = noise as Float32Array;
      const noiseCoeff = f32(f32(Math.sqrt(variance)) * f32(eta));
      for (let i = 0; i < len; i++) prev[i] = prev[i] + f32(noiseCoeff * z[i]);
    }
    return { prevSample: prev, predOriginalSample: x0 };
  }

  /**
   * DDIM inversion x_t -> x_{t + T//n} (Dhariwal & Nichol 2021, appendix F; Mokady et al. 2022, eq. 6):
   * sqrt(alphaBar_next) * x0 + sqrt(1 - alphaBar_next) * eps. Deterministic (no eta).
   */
  reversedStep(modelOutput: Float32Array, t: number, sample: Float32Array): SchedulerStepOutput {
    const n = this.requireTimesteps('reversedStep');
    this.checkTimestep('reversedStep', t);
    this.checkStepArrays('reversedStep', modelOutput, sample);
    const T = this.numTrainTimesteps;

    // 1. next step value (= t + T // n)
    const nextT = t + Math.floor(T / n);

    // 2. alphas at t and at the next step
    let alphaProdNext: number;
    if (nextT < T) alphaProdNext = this.alphasCumprod[nextT];
    else if (this.config.semantics === 'generative-0.2.3') alphaProdNext = this.firstAlphaCumprod;
    else throw new RangeError(`DdimScheduler.reversedStep: argument 't' is ${t}: t + T // n = ${nextT} is past the last training step ${T - 1} (MONAI core 1.6 raises IndexError here; semantics 'generative-0.2.3' uses first_alpha_cumprod instead)`);
    const alphaProd = this.alphasCumprod[t];

    // 3. predicted x0 and eps; 4. clip x0
    const { x0, eps } = this.predict(modelOutput, sample, alphaProd);

    // 5. direction pointing to x_t, 6. x_{t+1}
    const dirCoeff = f32(Math.sqrt(f32(1 - alphaProdNext)));
    const sqrtNext = f32(Math.sqrt(alphaProdNext));
    const len = sample.length;
    const next = new Float32Array(len);
    for (let i = 0; i < len; i++) next[i] = f32(sqrtNext * x0[i]) + f32(dirCoeff * eps[i]);
    return { prevSample: next, predOriginalSample: x0 };
  }
}
