/**
 * Noise schedules (betas, alphas, alphas_cumprod) exactly as MONAI computes them, in float32.
 *
 * Port of generative/networks/schedulers/scheduler.py (Project-MONAI/GenerativeModels, tag 0.2.3 = a9b17d4) and
 * monai/networks/schedulers/scheduler.py (Project-MONAI/MONAI 1.6.1). Both build the schedules as float32 torch
 * tensors, so every value here is rounded to float32 after each torch operation (Math.fround), and the results
 * agree with MONAI's to the last bit except where torch's transcendental kernels (cos, exp inside sigmoid) are
 * themselves not correctly rounded (at most 1 ulp, in a few entries).
 *
 * Notation: T = numTrainTimesteps, beta_t = betas[t], alpha_t = 1 - beta_t, alphaBar_t = alphasCumprod[t]
 * = prod_{s<=t} alpha_s (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", eq. 4).
 *
 * - linear_beta:        beta = linspace(beta0, beta1, T)                       (Ho et al. 2020, section 4)
 * - scaled_linear_beta: beta = linspace(sqrt(beta0), sqrt(beta1), T)^2         (Rombach et al. 2022, LDM)
 * - sigmoid_beta:       beta = sigmoid(linspace(-r, r, T)) * (beta1 - beta0) + beta0      (r = sigRange = 6)
 * - cosine:             alphaBar(x) = cos^2(((x/T) + s)/(1 + s) * pi/2) / alphaBar(0), x = 0..T, s = 8e-3
 *                       (Nichol & Dhariwal 2021, "Improved DDPM", eq. 17); the two MONAI versions differ:
 *     generative-0.2.3: alpha = clip(alphaBar[1:]/alphaBar[:-1], 1e-4, 0.9999), beta = 1 - alpha and
 *                       alphasCumprod = alphaBar[:-1] (NOT cumprod(alpha); alphasCumprod[0] is exactly 1, so
 *                       1 - alphaBar_0 = 0 and DDPM/PNDM steps at t = 0 divide by zero: MONAI gives NaN there, and
 *                       so do we);
 *     monai-1.6:        beta = clip(1 - alphaBar[1:]/alphaBar[:-1], 0, 0.999), alpha = 1 - beta,
 *                       alphasCumprod = cumprod(alpha).
 * For the three beta schedules alpha = 1 - beta and alphasCumprod = cumprod(alpha) in both versions.
 */

const f32 = Math.fround;

export const SCHEDULES = ['linear_beta', 'scaled_linear_beta', 'sigmoid_beta', 'cosine'] as const;
export type ScheduleName = (typeof SCHEDULES)[number];

/**
 * Which MONAI release's scheduler code to reproduce. They differ in the cosine schedule (above), in
 * set_timesteps of DDPM and DDIM (generative: arange(n) * (T // n) reversed; MONAI core: round(linspace(T-1, 0, n)))
 * and in DDIM.reversed_step past the last training step (see ddim-scheduler.ts).
 */
export const SEMANTICS = ['generative-0.2.3', 'monai-1.6'] as const;
export type Semantics = (typeof SEMANTICS)[number];

export interface NoiseScheduleOptions {
  /** T, diffusion steps used in training (MONAI `num_train_timesteps`). Default 1000. */
  numTrainTimesteps: number;
  /** MONAI `schedule`: 'linear_beta' (default), 'scaled_linear_beta', 'sigmoid_beta' or 'cosine'. */
  schedule: ScheduleName;
  /** MONAI `beta_start` of the beta schedules. Default 1e-4 (the thesis and the brain LDM bundle: 0.0015). Unused by cosine. */
  betaStart: number;
  /** MONAI `beta_end` of the beta schedules. Default 2e-2 (the thesis and the brain LDM bundle: 0.0205). Unused by cosine. */
  betaEnd: number;
  /** sigmoid_beta's input range [-sigRange, sigRange] (MONAI `sig_range`). Default 6. */
  sigRange: number;
  /** cosine's offset s (MONAI `s`; Nichol & Dhariwal 2021, section 3.2). Default 8e-3. */
  cosineS: number;
  /**
   * Whose scheduler code to reproduce: 'generative-0.2.3' (monai-generative 0.2.3, what the thesis trained and
   * sampled with; default) or 'monai-1.6' (monai.networks.schedulers of MONAI core 1.6).
   */
  semantics: Semantics;
}

/** The schedule tensors, each of length T, float32 like MONAI's. */
export interface NoiseSchedule {
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  readonly alphasCumprod: Float32Array;
}

/**
 * torch.linspace(start, end, steps, dtype=float32) on CPU, value for value. start and end are rounded to float32
 * first, step = float32((end - start) / (steps - 1)); the first half counts up from start, the second half down
 * from end (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp). The AVX2/AVX512 builds of torch evaluate
 * start + step * i with one rounding (a fused multiply-add); that is what is reproduced (checked bit for bit
 * against torch 2.13 for every length up to 2000 on MONAI's ranges). torch's scalar (no-SIMD) build rounds twice
 * and can differ by 1 ulp.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  if (!Number.isSafeInteger(steps) || steps < 0) throw new RangeError(`torchLinspaceF32: argument 'steps' must be a non-negative integer, got ${steps}`);
  const out = new Float32Array(steps);
  if (steps === 0) return out;
  const s = f32(start);
  const e = f32(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  // step * i is exact in float64 (24-bit step times i < 2^29), so one f32() rounding models the fused multiply-add.
  for (let i = 0; i < steps; i++) out[i] = i < half ? f32(s + step * i) : f32(e - step * (steps - i - 1));
  return out;
}

/**
 * torch.cumprod of a float32 tensor on CPU: the running product is kept in float64 (at::acc_type<float, false>)
 * and each output is rounded to float32 (aten/src/ATen/native/cpu/ReduceOpsKernel.cpp, cumprod_cpu_kernel).
 * A float32 running product would drift by ~1e-5 relative over 1000 steps.
 */
export function cumprodF32(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  let acc = 1;
  for (let i = 0; i < values.length; i++) {
    acc *= values[i];
    out[i] = acc;
  }
  return out;
}

/** MONAI `_linear_beta`: torch.linspace(beta_start, beta_end, T, dtype=float32). */
export function linearBeta(numTrainTimesteps: number, betaStart = 1e-4, betaEnd = 2e-2): Float32Array {
  return torchLinspaceF32(betaStart, betaEnd, numTrainTimesteps);
}

/** MONAI `_scaled_linear_beta`: torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=float32) ** 2. */
export function scaledLinearBeta(numTrainTimesteps: number, betaStart = 1e-4, betaEnd = 2e-2): Float32Array {
  const r = torchLinspaceF32(Math.sqrt(betaStart), Math.sqrt(betaEnd), numTrainTimesteps);
  for (let i = 0; i < r.length; i++) r[i] = f32(r[i] * r[i]);
  return r;
}

/**
 * MONAI `_sigmoid_beta`: sigmoid(linspace(-r, r, T)) * (beta_end - beta_start) + beta_start. torch's sigmoid is
 * 1 / (1 + exp(-x)) in float32; its exp is not correctly rounded, so a few entries may differ from MONAI by 1 ulp.
 */
export function sigmoidBeta(numTrainTimesteps: number, betaStart = 1e-4, betaEnd = 2e-2, sigRange = 6): Float32Array {
  const x = torchLinspaceF32(-sigRange, sigRange, numTrainTimesteps);
  const scale = f32(betaEnd - betaStart); // python float scalars are cast to the tensor's float32
  const shift = f32(betaStart);
  for (let i = 0; i < x.length; i++) {
    const sig = f32(1 / f32(1 + f32(Math.exp(-x[i]))));
    x[i] = f32(f32(sig * scale) + shift);
  }
  return x;
}

/** MONAI `_cosine_beta` of the chosen release (see the file comment). Returns all three tensors. */
export function cosineSchedule(numTrainTimesteps: number, s = 8e-3, semantics: Semantics = 'generative-0.2.3'): NoiseSchedule {
  const T = numTrainTimesteps;
  const x = torchLinspaceF32(0, T, T + 1);
  const fT = f32(T);
  const fS = f32(s);
  const onePlusS = f32(1 + s);
  const pi = f32(Math.PI);
  const bar = new Float32Array(T + 1);
  for (let i = 0; i <= T; i++) {
    const arg = f32(f32(f32(f32(f32(x[i] / fT) + fS) / onePlusS) * pi) * 0.5);
    const c = f32(Math.cos(arg));
    bar[i] = f32(c * c);
  }
  const bar0 = bar[0];
  for (let i = 0; i <= T; i++) bar[i] = f32(bar[i] / bar0);
  const betas = new Float32Array(T);
  const alphas = new Float32Array(T);
  if (semantics === 'generative-0.2.3') {
    const lo = f32(1e-4);
    const hi = f32(0.9999);
    for (let i = 0; i < T; i++) {
      const a = Math.min(Math.max(f32(bar[i + 1] / bar[i]), lo), hi);
      alphas[i] = a;
      betas[i] = f32(1 - a);
    }
    return { betas, alphas, alphasCumprod: bar.slice(0, T) };
  }
  const hi = f32(0.999);
  for (let i = 0; i < T; i++) {
    const b = Math.min(Math.max(f32(1 - f32(bar[i + 1] / bar[i])), 0), hi);
    betas[i] = b;
    alphas[i] = f32(1 - b);
  }
  return { betas, alphas, alphasCumprod: cumprodF32(alphas) };
}

/** The schedule of a MONAI scheduler constructed with these options (Scheduler.__init__ of either release). */
export function makeNoiseSchedule(options: NoiseScheduleOptions): NoiseSchedule {
  const { numTrainTimesteps: T, schedule, betaStart, betaEnd } = options;
  if (schedule === 'cosine') return cosineSchedule(T, options.cosineS, options.semantics);
  let betas: Float32Array;
  if (schedule === 'linear_beta') betas = linearBeta(T, betaStart, betaEnd);
  else if (schedule === 'scaled_linear_beta') betas = scaledLinearBeta(T, betaStart, betaEnd);
  else if (schedule === 'sigmoid_beta') betas = sigmoidBeta(T, betaStart, betaEnd, options.sigRange);
  else throw new RangeError(`makeNoiseSchedule: argument 'schedule' is ${JSON.stringify(schedule)}, expected one of ${SCHEDULES.join(', ')}`);
  const alphas = new Float32Array(T);
  for (let i = 0; i < T; i++) alphas[i] = f32(1 - betas[i]);
  return { betas, alphas, alphasCumprod: cumprodF32(alphas) };
}
