/**
 * The latent denoising loop with classifier-free guidance, exactly as the thesis samples its mask LDM
 * (T:src/evaluation.py DiffusionModelEvaluator.get_synthetic_output on top of generative 0.2.3's
 * DiffusionInferer.sample; MONAI-COMPAT.md 1.3 and 2.6):
 *
 *   scheduler.setTimesteps(steps)
 *   x = initialNoise
 *   for (i, t) of scheduler.timesteps:
 *     w == 1: eps = unet(x, t, context)                                   one conditional pass
 *     else:   out = unet([x; x], t, guidedContext(context, nullContext))  doubled batch, [cond; uncond] by default
 *             eps = eps_uncond + w * (eps_cond - eps_uncond)
 *     x = scheduler.step(eps, t, x, needsNoise(t) ? noiseForStep(i, t) : undefined).prevSample
 *
 * The timestep goes to the network as MONAI's inferer passes it: torch.Tensor((t,)), float32 of shape [1] (the
 * UNet's time embedding broadcasts over the batch). Randomness belongs to the caller: the initial noise, the null
 * context's u and every step's noise (asked for only where the scheduler draws it, i.e. where MONAI would call
 * torch.randn) are inputs, so a run is reproducible and comparable with a recorded PyTorch run
 * (train/make_sampling_fixtures.py, test/pipeline/sample-latent.spec.ts).
 *
 * No scale factor here: the loop works in the diffusion model's (scaled) latent space, and the decode stage
 * divides by the scale factor before the autoencoder decodes (LatentDiffusionInferer.sample; MONAI-COMPAT 1.3
 * "Scale factor").
 */
import type { NetworkHandle, NetworkTensor, NetworkTensors } from '../backend/types.js';
import type { Scheduler } from '../schedulers/index.js';
import { checkContext, checkGuidanceScale, combineGuidance, guidedContext, GUIDANCE_ORDERS, type GuidanceOrder } from './guidance.js';

const OWNER = 'sampleLatent';

/** What `onStep` receives after every scheduler step. */
export interface SampleStepInfo {
  /** 0-based index into the scheduler's timesteps. */
  stepIndex: number;
  /** Number of steps in this run (the scheduler's timesteps; PNDM's may differ from `steps`). */
  totalSteps: number;
  /** The timestep just stepped from. */
  t: number;
  /** The latent after this step (a fresh array; the loop does not reuse it). */
  latent: Float32Array;
}

export interface SampleLatentOptions {
  /** The diffusion UNet; its entry `entry` (default 'forward') takes x, timesteps and (if given) context. */
  network: NetworkHandle;
  scheduler: Scheduler;
  /** Inference steps for scheduler.setTimesteps. */
  steps: number;
  /** Standard normal start latent, `shape`'s length (times the scheduler's initNoiseSigma, 1 for MONAI's). */
  initialNoise: Float32Array;
  /** Latent shape [B, C, ...spatial]. */
  shape: readonly number[];
  /** The condition [B or 1, S, D] for cross-attention (thesis: [B, 1, 2] = [volume, 1]); omit for an unconditioned UNet. */
  context?: NetworkTensor | null;
  /** Guidance scale w; 1 (default) is a single conditional pass. w != 1 needs `nullContext`. */
  guidanceScale?: number;
  /** The null condition [B or 1, S, D] (see nullContext() in guidance.ts), used when guidanceScale != 1. */
  nullContext?: NetworkTensor | null;
  /** Order of the doubled batch: 'cond-first' (thesis, default) or 'uncond-first' (MONAI core). */
  guidanceOrder?: GuidanceOrder;
  /** Standard normal noise, `shape`'s length, for step `stepIndex` at timestep t; called only when scheduler.needsNoise(t). */
  noiseForStep?: (stepIndex: number, t: number) => Float32Array | undefined | Promise<Float32Array | undefined>;
  /**
   * Further network inputs passed unchanged at every step, e.g. SPADE's `seg` ([B, labels, ...image spatial]).
   * Only with guidanceScale 1: under guidance the batch is doubled and these would need doubling too.
   */
  extraInputs?: NetworkTensors;
  /** Progress callback after every step (awaited). */
  onStep?: (info: SampleStepInfo) => void | Promise<void>;
  /** Network entry (default 'forward'). */
  entry?: string;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s;
}

/** Runs the denoising loop and returns the final latent ({ shape, data }, shape = options.shape). */
export async function sampleLatent(options: SampleLatentOptions): Promise<NetworkTensor> {
  if (options === null || typeof options !== 'object') throw new TypeError(`${OWNER}: argument 'options' must be an object`);
  const { network, scheduler, steps, initialNoise, noiseForStep, onStep } = options;
  const entry = options.entry ?? 'forward';
  const order = options.guidanceOrder ?? 'cond-first';
  const w = options.guidanceScale ?? 1;
  const context = options.context ?? null;
  const nullCtx = options.nullContext ?? null;

  if (network === null || typeof network !== 'object' || typeof network.run !== 'function')
    throw new TypeError(`${OWNER}: argument 'network' must be a NetworkHandle`);
  if (scheduler === null || typeof scheduler !== 'object' || typeof scheduler.step !== 'function' || typeof scheduler.setTimesteps !== 'function')
    throw new TypeError(`${OWNER}: argument 'scheduler' must be a Scheduler (createScheduler)`);
  if (!Array.isArray(options.shape) || options.shape.length < 2 || !options.shape.every((d) => Number.isSafeInteger(d) && d >= 1))
    throw new RangeError(`${OWNER}: argument 'shape' must be [B, C, ...spatial] of positive integers, got ${show(options.shape)}`);
  const shape = [...options.shape];
  const batch = shape[0];
  const size = shape.reduce((a, b) => a * b, 1);
  if (!(initialNoise instanceof Float32Array))
    throw new TypeError(`${OWNER}: argument 'initialNoise' must be a Float32Array, got ${(initialNoise as object)?.constructor?.name ?? typeof initialNoise}`);
  if (initialNoise.length !== size)
    throw new RangeError(`${OWNER}: argument 'initialNoise' has ${initialNoise.length} elements, expected ${size} (shape [${shape.join(', ')}])`);
  if (!GUIDANCE_ORDERS.includes(order)) throw new RangeError(`${OWNER}: argument 'guidanceOrder' must be 'cond-first' or 'uncond-first', got ${show(order)}`);
  if (noiseForStep !== undefined && typeof noiseForStep !== 'function') throw new TypeError(`${OWNER}: argument 'noiseForStep' must be a function`);
  if (onStep !== undefined && typeof onStep !== 'function') throw new TypeError(`${OWNER}: argument 'onStep' must be a function`);
  checkGuidanceScale(OWNER, w, context !== null && nullCtx !== null);
  const extraInputs = options.extraInputs ?? {};
  if (extraInputs === null || typeof extraInputs !== 'object') throw new TypeError(`${OWNER}: argument 'extraInputs' must be an object of named tensors`);
  for (const name of Object.keys(extraInputs)) {
    if (['x', 'timesteps', 'context'].includes(name))
      throw new RangeError(`${OWNER}: argument 'extraInputs' must not hold '${name}' (the loop supplies it)`);
    if (w !== 1) throw new RangeError(`${OWNER}: argument 'extraInputs' ('${name}') works only with guidanceScale 1, got ${w}`);
  }

  // The condition, repeated to the batch when given for one item.
  let cond: NetworkTensor | null = null;
  if (context !== null) {
    const [b, s, d] = checkContext(OWNER, 'context', context);
    if (b !== batch && b !== 1) throw new RangeError(`${OWNER}: argument 'context' has batch ${b}, expected ${batch} (shape[0]) or 1`);
    if (b === batch) cond = { shape: [b, s, d], data: context.data };
    else {
      const data = new Float32Array(batch * s * d);
      for (let i = 0; i < batch; i++) data.set(context.data, i * s * d);
      cond = { shape: [batch, s, d], data };
    }
  }
  const guided = w !== 1;
  const netContext: NetworkTensor | null = cond === null ? null : guided ? guidedContext(cond, nullCtx!, order) : cond;
  const netShape = guided ? [2 * batch, ...shape.slice(1)] : shape;

  scheduler.setTimesteps(steps);
  const timesteps = Array.from(scheduler.timesteps);
  let latent: Float32Array = new Float32Array(initialNoise);
  const sigma = scheduler.initNoiseSigma;
  if (sigma !== 1) for (let i = 0; i < size; i++) latent[i] = Math.fround(latent[i] * sigma);

  for (let i = 0; i < timesteps.length; i++) {
    const t = timesteps[i];
    const modelIn = scheduler.scaleModelInput(latent, t);
    let x: Float32Array;
    if (guided) {
      x = new Float32Array(2 * size);
      x.set(modelIn, 0);
      x.set(modelIn, size);
    } else x = modelIn;
    const inputs: NetworkTensors = {
      x: { shape: netShape, data: x },
      timesteps: { shape: [1], data: Float32Array.of(t) },
    };
    if (netContext !== null) inputs.context = netContext;
    Object.assign(inputs, extraInputs);
    const outputs = await network.run(entry, inputs);
    const out = outputs.out;
    if (!out || !(out.data instanceof Float32Array))
      throw new TypeError(`${OWNER}: network entry '${entry}' returned no 'out' tensor`);
    if (out.shape[0] !== netShape[0])
      throw new RangeError(`${OWNER}: network output has batch ${out.shape[0]}, expected ${netShape[0]}`);
    const eps = guided ? combineGuidance(out.data, w, order) : out.data;

    let noise: Float32Array | undefined;
    if (scheduler.needsNoise(t)) {
      if (noiseForStep === undefined)
        throw new TypeError(`${OWNER}: the scheduler adds noise at step ${i} (t = ${t}); pass 'noiseForStep' (standard normal, ${size} elements)`);
      noise = await noiseForStep(i, t);
      if (!(noise instanceof Float32Array))
        throw new TypeError(`${OWNER}: 'noiseForStep' returned ${noise === undefined ? 'undefined' : (noise as object)?.constructor?.name ?? typeof noise} at step ${i} (t = ${t}), where the scheduler needs noise; expected a Float32Array of ${size} elements`);
      if (noise.length !== size)
        throw new RangeError(`${OWNER}: 'noiseForStep' returned ${noise.length} elements at step ${i} (t = ${t}), expected ${size} (shape [${shape.join(', ')}])`);
    }
    latent = scheduler.step(eps, t, latent, noise).prevSample;
    if (onStep) await onStep({ stepIndex: i, totalSteps: timesteps.length, t, latent });
  }
  return { shape, data: latent };
}
