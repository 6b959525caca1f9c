/**
 * One labeled pair from a generator (ARCHITECTURE.md, "The job, as data flows"):
 *
 *   mask stage : noise [1, 3, d, h, w] -> solver steps of the mask UNet, context [condition, 1] under CFG
 *                -> / scaleFactor -> mask decoder -> logits [1, L, D, H, W] (+ the generator's label offsets, if any)
 *                -> argmax -> label values (a label the mask holds too few voxels of grown where it belongs, when the
 *                generator has label presence statistics: label-presence.ts)
 *   image stage: one-hot(labels) -> solver steps of the SPADE UNet (seg = one-hot) -> / scaleFactor
 *                -> SPADE decoder(z, seg) -> image, clipped to [0, 1]
 *
 * Randomness is a function of (seed, sample index) only, so any sample regenerates alone and identically on every
 * backend: Philox streams 2i (mask stage) and 2i + 1 (image stage) of the seed, draw 0 the initial latent and draw
 * k >= 1 the noise of stochastic step k; the thesis' null-context scalar u is seededRandom(seed, 'null-context', i).
 */
import type { Backend, NetworkHandle, NetworkTensor } from '../backend/types.js';
import { nullContextSpec, type Generator } from '../bundle/generator-bundle.js';
import type { ModelBundle } from '../bundle/model-bundle.js';
import { createNetwork } from '../nets/network.js';
import { gaussianNoise } from '../random/noise.js';
import { seededRandom } from '../random/seeded-random.js';
import { createScheduler, schedulerConfigFromMonai, type SchedulerType } from '../schedulers/index.js';
import { nullContext } from './guidance.js';
import { ensureLabelPresence, type LabelRepair } from './label-presence.js';
import { sampleLatent } from './sample-latent.js';

export type PairStage = 'mask' | 'image';

export interface PairStepEvent {
  stage: PairStage;
  stepIndex: number;
  totalSteps: number;
}

export interface SamplingSettings {
  solver: SchedulerType;
  steps: number;
}

export interface MaskRequest extends SamplingSettings {
  seed: number;
  sampleIndex: number;
  /** The model's condition (normalised ventricle/ICV ratio). */
  condition: number;
  guidanceScale: number;
  /** Grow labels the mask holds too few voxels of (default: true where the generator has labelPresence). */
  repairLabels?: boolean;
  onStep?: (e: PairStepEvent) => void | Promise<void>;
}

/** A generated mask and the labels grown in it: label values, those of them the decoder left out entirely, voxels
 * relabelled (null: no repair ran). */
export interface GeneratedMask {
  labels: Uint8Array;
  repair: { labels: number[]; missing: number[]; voxels: number } | null;
}

export interface ImageRequest extends SamplingSettings {
  seed: number;
  sampleIndex: number;
  /** Label values on the generator's grid (one per voxel). */
  labels: Uint8Array;
  onStep?: (e: PairStepEvent) => void | Promise<void>;
}

const f32 = Math.fround;

/** Standard normal noise copied to the host (the loop's latent lives in TypeScript between forwards). */
async function hostNoise(backend: Backend, shape: readonly number[], seed: number, stream: number, step: number): Promise<Float32Array> {
  const t = await gaussianNoise(backend, shape, { seed, sampleIndex: stream, step });
  try {
    return t.read() as Float32Array;
  } finally {
    t.dispose();
  }
}

/** z / scaleFactor in float32, as LatentDiffusionInferer divides before decoding. */
function unscale(latent: Float32Array, scaleFactor: number): Float32Array {
  const out = new Float32Array(latent.length);
  const s = f32(scaleFactor);
  for (let i = 0; i < latent.length; i++) out[i] = latent[i] / s;
  return out;
}

/**
 * Channel argmax of logits [1, L, N] (first maximum wins, as torch.argmax) mapped to label values. With `offsets`
 * (one per channel) the argmax is of logit + offset, summed as label-offsets.ts sums them when fitting.
 */
export function argmaxLabels(logits: Float32Array, labels: readonly number[], voxels: number, offsets?: readonly number[] | null): Uint8Array {
  return channelsToLabels(argmaxChannels(logits, labels.length, voxels, offsets), labels);
}

function channelsToLabels(index: Uint8Array, labels: readonly number[]): Uint8Array {
  const out = new Uint8Array(index.length);
  for (let v = 0; v < index.length; v++) out[v] = labels[index[v]];
  return out;
}

/** The channel index argmaxLabels picks per voxel. */
export function argmaxChannels(logits: Float32Array, L: number, voxels: number, offsets?: readonly number[] | null): Uint8Array {
  if (logits.length !== L * voxels) throw new RangeError(`argmaxLabels: logits have ${logits.length} elements, expected ${L} x ${voxels}`);
  if (offsets && offsets.length !== L) throw new RangeError(`argmaxLabels: expected ${L} offsets (one per label), got ${offsets.length}`);
  const index = new Uint8Array(voxels);
  if (offsets) {
    const o = Float32Array.from(offsets);
    const best = new Float64Array(voxels);
    for (let v = 0; v < voxels; v++) best[v] = logits[v] + o[0];
    for (let c = 1; c < L; c++) {
      const plane = logits.subarray(c * voxels, (c + 1) * voxels);
      for (let v = 0; v < voxels; v++) {
        const s = plane[v] + o[c];
        if (s > best[v]) { best[v] = s; index[v] = c; }
      }
    }
  } else {
    const best = new Float32Array(logits.subarray(0, voxels));
    for (let c = 1; c < L; c++) {
      const plane = logits.subarray(c * voxels, (c + 1) * voxels);
      for (let v = 0; v < voxels; v++) if (plane[v] > best[v]) { best[v] = plane[v]; index[v] = c; }
    }
  }
  return index;
}

/** One-hot [1, L, N] float32 of label values in the generator's channel order (unknown values are an error). */
export function oneHot(values: Uint8Array, labels: readonly number[]): Float32Array {
  const channel = new Int16Array(256).fill(-1);
  labels.forEach((l, c) => { channel[l] = c; });
  const n = values.length;
  const out = new Float32Array(labels.length * n);
  for (let v = 0; v < n; v++) {
    const c = channel[values[v]];
    if (c < 0) throw new RangeError(`oneHot: voxel ${v} has label ${values[v]}, which is not one of the generator's labels`);
    out[c * n + v] = 1;
  }
  return out;
}

export class LabeledPairGenerator {
  private constructor(
    readonly backend: Backend,
    readonly generator: Generator,
    private readonly nets: Record<'maskAutoencoder' | 'maskUnet' | 'imageAutoencoder' | 'imageUnet', NetworkHandle>,
  ) {}

  /** Builds the four networks on `backend` (the caller keeps owning the backend). */
  static async create(backend: Backend, generator: Generator): Promise<LabeledPairGenerator> {
    const built: NetworkHandle[] = [];
    const build = async (b: ModelBundle) => {
      const n = await createNetwork(backend, b.config.network, b.weights);
      built.push(n);
      return n;
    };
    try {
      return new LabeledPairGenerator(backend, generator, {
        maskAutoencoder: await build(generator.maskAutoencoder), maskUnet: await build(generator.maskUnet),
        imageAutoencoder: await build(generator.imageAutoencoder), imageUnet: await build(generator.imageUnet),
      });
    } catch (e) {
      await Promise.all(built.map((n) => n.dispose()));
      throw e;
    }
  }

  get voxels(): number {
    const [d, h, w] = this.generator.config.grid.shape;
    return d * h * w;
  }

  private scheduler(bundle: ModelBundle, solver: SchedulerType) {
    return createScheduler(schedulerConfigFromMonai(bundle.config.scheduler!, { type: solver }));
  }

  /** Mask stage: a label map (values) on the generator's grid. */
  async generateMask(req: MaskRequest): Promise<Uint8Array> {
    return (await this.generateMaskWithRepair(req)).labels;
  }

  /** Mask stage, with what the label presence repair changed. */
  async generateMaskWithRepair(req: MaskRequest): Promise<GeneratedMask> {
    const { config } = this.generator;
    const logits = await this.generateMaskLogits(req);
    const offsets = config.labelOffsets?.offsets;
    const index = argmaxChannels(logits, config.labels.length, this.voxels, offsets);
    let repair: GeneratedMask['repair'] = null;
    if (config.labelPresence && req.repairLabels !== false) {
      const r: LabelRepair = ensureLabelPresence(logits, index, config.grid.shape, config.grid.spacingMm, config.labelPresence, offsets);
      repair = {
        labels: r.labels.map((l) => config.labels[l.channel]),
        missing: r.labels.filter((l) => l.before === 0).map((l) => config.labels[l.channel]),
        voxels: r.voxels,
      };
    }
    return { labels: channelsToLabels(index, config.labels), repair };
  }

  /** Mask stage up to the decoder: its logits [L, D, H, W] (channel-major) before the argmax. */
  async generateMaskLogits(req: MaskRequest): Promise<Float32Array> {
    const { config, maskUnet, maskAutoencoder } = this.generator;
    const shape = [1, ...config.mask.latentShape];
    const stream = 2 * req.sampleIndex;
    const initialNoise = await hostNoise(this.backend, shape, req.seed, stream, 0);
    const context: NetworkTensor = { shape: [1, 1, 2], data: Float32Array.of(req.condition, 1) };
    const u = seededRandom(req.seed, 'null-context', req.sampleIndex).next();
    const k = config.conditioning;
    const latent = await sampleLatent({
      network: this.nets.maskUnet,
      scheduler: this.scheduler(maskUnet, req.solver),
      steps: req.steps,
      initialNoise,
      shape,
      context,
      guidanceScale: req.guidanceScale,
      nullContext: req.guidanceScale !== 1 && k.nullContext !== null ? nullContext(nullContextSpec(k.nullContext, u), [1, 1, 2]) : null,
      guidanceOrder: k.guidanceOrder,
      noiseForStep: (i) => hostNoise(this.backend, shape, req.seed, stream, i + 1),
      onStep: req.onStep ? (s) => req.onStep!({ stage: 'mask', stepIndex: s.stepIndex, totalSteps: s.totalSteps }) : undefined,
    });
    const z = unscale(latent.data, maskAutoencoder.config.scaleFactor!);
    const { out } = await this.nets.maskAutoencoder.run('decode', { z: { shape, data: z } });
    return out.data;
  }

  /**
   * The mask autoencoder's reconstruction of a label map (tensor order, the generator's grid): encode to z_mu,
   * decode, argmax. Its overlap with the input is the autoencoder's Dice (how much anatomy the latent space keeps).
   */
  async reconstructLabels(labels: Uint8Array): Promise<Uint8Array> {
    const { config } = this.generator;
    if (!(labels instanceof Uint8Array) || labels.length !== this.voxels)
      throw new RangeError(`reconstructLabels: 'labels' must be a Uint8Array of ${this.voxels} voxels (grid ${config.grid.shape.join('x')})`);
    const x: NetworkTensor = { shape: [1, 1, ...config.grid.shape], data: Float32Array.from(labels) };
    const { z_mu } = await this.nets.maskAutoencoder.run('encode', { x });
    const { out } = await this.nets.maskAutoencoder.run('decode', { z: z_mu });
    return argmaxLabels(out.data, config.labels, this.voxels);
  }

  /** Image stage: an image in [0, 1] for a label map on the generator's grid. */
  async generateImage(req: ImageRequest): Promise<Float32Array> {
    const { config, imageUnet, imageAutoencoder } = this.generator;
    if (!(req.labels instanceof Uint8Array) || req.labels.length !== this.voxels)
      throw new RangeError(`generateImage: 'labels' must be a Uint8Array of ${this.voxels} voxels (grid ${config.grid.shape.join('x')})`);
    const shape = [1, ...config.image.latentShape];
    const seg: NetworkTensor = { shape: [1, config.labels.length, ...config.grid.shape], data: oneHot(req.labels, config.labels) };
    const stream = 2 * req.sampleIndex + 1;
    const latent = await sampleLatent({
      network: this.nets.imageUnet,
      scheduler: this.scheduler(imageUnet, req.solver),
      steps: req.steps,
      initialNoise: await hostNoise(this.backend, shape, req.seed, stream, 0),
      shape,
      extraInputs: { seg },
      noiseForStep: (i) => hostNoise(this.backend, shape, req.seed, stream, i + 1),
      onStep: req.onStep ? (s) => req.onStep!({ stage: 'image', stepIndex: s.stepIndex, totalSteps: s.totalSteps }) : undefined,
    });
    const z = unscale(latent.data, imageAutoencoder.config.scaleFactor!);
    const { out } = await this.nets.imageAutoencoder.run('decode', { z: { shape, data: z }, seg });
    const image = new Float32Array(out.data.length);
    for (let i = 0; i < image.length; i++) image[i] = Math.min(1, Math.max(0, out.data[i]));
    return image;
  }

  async dispose(): Promise<void> {
    await Promise.all(Object.values(this.nets).map((n) => n.dispose()));
  }
}
