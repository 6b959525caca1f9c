/**
 * A tiny generator with seeded random weights (16^3 grid, 8-16 channels) for end-to-end tests of the pipeline:
 * real networks of every class the recipe uses, built from the core's own weight layout, small enough that a
 * labeled pair takes well under a second.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadBackend } from '../../ts/backend/select.js';
import type { Backend } from '../../ts/backend/types.js';
import { generatorFingerprint, writeGeneratorConfig, type GeneratorConfig } from '../../ts/bundle/generator-bundle.js';
import { writeBundle, type BundleConfig, type NetworkSpec } from '../../ts/bundle/model-bundle.js';
import { SYNTHSEG_LABELS, VENTRICLE_LABELS } from '../../ts/labels/synthseg-labels.js';
import { randomNetworkWeights } from '../../ts/nets/random-weights.js';
import { captureCli } from './capture-cli.js';

const DDPM = { _target_: 'monai.networks.schedulers.DDPMScheduler', num_train_timesteps: 1000, schedule: 'scaled_linear_beta', beta_start: 0.0015, beta_end: 0.0205, clip_sample: false };

export const TINY_NETWORKS: Record<'mask-autoencoder' | 'mask-unet' | 'image-autoencoder' | 'image-unet', NetworkSpec> = {
  'mask-autoencoder': {
    class: 'AutoencoderKL',
    args: { spatial_dims: 3, in_channels: 8, out_channels: 33, latent_channels: 3, num_channels: [8, 8], num_res_blocks: 1, norm_num_groups: 4, attention_levels: [false, false], with_encoder_nonlocal_attn: false, with_decoder_nonlocal_attn: false },
    wrapper: { type: 'EmbeddingWrapper', num_embeddings: 61, embedding_dim: 8 },
    attentionOutputProjection: false,
  },
  'mask-unet': {
    class: 'DiffusionModelUNet',
    args: { spatial_dims: 3, in_channels: 3, out_channels: 3, num_res_blocks: 1, num_channels: [8, 16], attention_levels: [false, true], num_head_channels: [0, 16], norm_num_groups: 4, upcast_attention: true, resblock_updown: true, with_conditioning: true, cross_attention_dim: 2 },
    wrapper: null,
    attentionOutputProjection: false,
  },
  'image-autoencoder': {
    class: 'SPADEAutoencoderKL',
    args: { spatial_dims: 3, label_nc: 33, in_channels: 1, out_channels: 1, latent_channels: 2, num_channels: [8, 8], num_res_blocks: 1, norm_num_groups: 4, attention_levels: [false, false], with_encoder_nonlocal_attn: false, with_decoder_nonlocal_attn: false, spade_intermediate_channels: 8 },
    wrapper: null,
    attentionOutputProjection: false,
  },
  'image-unet': {
    class: 'SPADEDiffusionModelUNet',
    args: { spatial_dims: 3, in_channels: 2, out_channels: 2, label_nc: 33, num_res_blocks: 1, num_channels: [8, 16], attention_levels: [false, true], num_head_channels: [0, 16], norm_num_groups: 4, upcast_attention: true, resblock_updown: true, with_conditioning: false, spade_intermediate_channels: 8 },
    wrapper: null,
    attentionOutputProjection: false,
  },
};

export function tinyGeneratorConfig(): GeneratorConfig {
  return {
    format: 'brain-ldm-generator',
    version: 1,
    grid: { orientation: 'IPL', shape: [16, 16, 16], spacingMm: [3, 3.5, 3] },
    labels: [...SYNTHSEG_LABELS],
    mask: { autoencoder: 'mask-autoencoder', unet: 'mask-unet', latentShape: [3, 8, 8, 8] },
    image: { autoencoder: 'image-autoencoder', unet: 'image-unet', latentShape: [2, 8, 8, 8] },
    conditioning: {
      quantity: 'ventricle-icv-ratio', ventricleLabels: [...VENTRICLE_LABELS], ratioMin: 0.01, ratioMax: 0.1,
      referenceIcvMl: 1400, trainingVentricleMl: [14, 140], nullContext: { convention: 'thesis' }, guidanceOrder: 'cond-first',
    },
    defaults: { guidanceScale: 3, solver: 'dpm-solver++', steps: 4 },
    calibration: null,
    labelOffsets: null,
    labelPresence: null,
  };
}

/** Writes a tiny random generator into `dir` (which must not exist or be empty). */
export async function writeTinyGenerator(backend: Backend, dir: string, seed = 1): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, network] of Object.entries(TINY_NETWORKS)) {
    const weights = await randomNetworkWeights(backend, network, seed);
    const hash = createHash('sha256').update(name).update(String(seed)).digest('hex');
    const isUnet = network.class.endsWith('UNet');
    const config: BundleConfig = {
      format: 'brain-ldm-bundle', version: 1, network, keyScheme: 'generative',
      scaleFactor: isUnet ? null : 1.25, conditioning: null, labels: null, grid: null, scheduler: isUnet ? DDPM : null,
      provenance: { source: `random-${name}`, sha256: hash, importedWith: 'brain-ldm 0.1.0', date: '2026-01-01T00:00:00.000Z' },
    };
    await writeBundle(join(dir, name), { config, weights });
  }
  await writeGeneratorConfig(dir, tinyGeneratorConfig());
}

/**
 * Reference label maps of the generator's own kind: `brain-ldm generate gen --out work/name-samples ...generateArgs` on
 * the native backend, its label maps copied into work/name (returned). Calibration tests fit to them: a random
 * decoder pushed toward another model's label volumes loses its ventricles.
 */
export async function tinyReferenceMaps(gen: string, work: string, name: string, generateArgs: string[]): Promise<string> {
  const samples = join(work, `${name}-samples`);
  const made = await captureCli(['generate', gen, '--out', samples, ...generateArgs, '--quiet', '--backend', 'native']);
  if (made.code !== 0) throw new Error(`tinyReferenceMaps: generate failed: ${made.err}`);
  const dir = join(work, name);
  await mkdir(dir);
  for (const f of (await readdir(samples)).filter((f) => f.endsWith('_labels.nii.gz'))) await copyFile(join(samples, f), join(dir, f));
  return dir;
}

/**
 * A tiny generator in work/generator on a native backend (the caller disposes it) and reference label maps of its own
 * kind in work/reference (tinyReferenceMaps with `referenceArgs`): the setup of the label calibration specs.
 */
export async function tinyGeneratorWithReference(work: string, referenceArgs: string[]):
  Promise<{ gen: string; backend: Backend; config: GeneratorConfig; refDir: string }> {
  const gen = join(work, 'generator');
  const backend = await loadBackend({ backend: 'native' });
  await writeTinyGenerator(backend, gen);
  const refDir = await tinyReferenceMaps(gen, work, 'reference', referenceArgs);
  return { gen, backend, config: tinyGeneratorConfig(), refDir };
}

/** The fingerprint of a generator config with placeholder bundles: what a config field adds to it, alone. */
export function configFingerprint(config: object): string {
  const bundle = { config: { provenance: { sha256: 'x' }, network: {} } };
  return generatorFingerprint({ config, maskAutoencoder: bundle, maskUnet: bundle, imageAutoencoder: bundle, imageUnet: bundle } as never);
}
