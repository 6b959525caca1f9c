/**
 * The brain-ldm model bundle: a directory holding `model.json` (what network, built how, trained how, imported
 * from where) and `weights.safetensors` (canonical generative-0.2.3 names; see key-schemes.ts).
 *
 *   {
 *     "format": "brain-ldm-bundle", "version": 1,
 *     "network": { "class": "DiffusionModelUNet", "args": { MONAI constructor kwargs, num_channels not channels },
 *                  "wrapper": null | {"type": "EmbeddingWrapper", "num_embeddings": 61, "embedding_dim": 64},
 *                  "attentionOutputProjection": false },
 *     "keyScheme": "generative", "scaleFactor": 1.0 | null, "conditioning": {...} | null, "labels": [...] | null,
 *     "grid": {"shape": [96, 128, 96], "spacingMm": [1.667, 1.75, 1.667]} | null, "scheduler": {...} | null,
 *     "provenance": { "source": "DiffusionModelUNet.pth", "sha256": "...", "importedWith": "brain-ldm 0.1.0",
 *                     "date": "2025-01-01T00:00:00.000Z" }
 *   }
 *
 * readBundle validates model.json field by field (errors name the file, the field path and what was expected);
 * writeBundle validates the same way and writes atomically (a temp directory beside the target, then renames).
 */
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { readSafetensors, writeAll, writeSafetensors, type HostTensor } from '../io/safetensors.js';
import type { EmbeddingWrapperSpec } from './key-schemes.js';
import { JsonChecker } from './json-checker.js';

export const BUNDLE_FORMAT = 'brain-ldm-bundle';
export const BUNDLE_VERSION = 1;
export const MODEL_JSON = 'model.json';
export const WEIGHTS_FILE = 'weights.safetensors';

/** Network classes a bundle may name (MONAI class names; the C++ graph builds these). */
export const NETWORK_CLASSES = ['AutoencoderKL', 'DiffusionModelUNet', 'SPADEAutoencoderKL', 'SPADEDiffusionModelUNet'] as const;
export type NetworkClass = (typeof NETWORK_CLASSES)[number];

export type { JsonObject, JsonValue } from './json-checker.js';
import type { JsonObject, JsonValue } from './json-checker.js';

export interface NetworkSpec {
  class: NetworkClass;
  /** MONAI constructor kwargs with generative's names (`num_channels`; `channels` is accepted and renamed). */
  args: JsonObject;
  wrapper: EmbeddingWrapperSpec | null;
  /** Whether spatial attention blocks apply `proj_attn` (false for every generative-0.2.3 checkpoint). */
  attentionOutputProjection: boolean;
  /**
   * Eps of SPADEAutoencoderKL's parameter-free GroupNorm: GenerativeModels 0.2.3 leaves torch's 1e-5,
   * MONAI core passes norm_eps. Absent means 1e-5 (ignored by other classes).
   */
  spadeNormEps?: number;
}

export interface BundleGrid {
  shape: number[];
  spacingMm: number[];
}

export type BundleLabel = number | { value: number; name?: string };

export interface BundleProvenance {
  source: string;
  sha256: string;
  importedWith: string;
  date: string;
}

export interface BundleConfig {
  format: typeof BUNDLE_FORMAT;
  version: typeof BUNDLE_VERSION;
  network: NetworkSpec;
  keyScheme: 'generative';
  scaleFactor: number | null;
  /** Conditioning spec (context layout, volume normalisation); its schema belongs to the conditioning code. */
  conditioning: JsonObject | null;
  labels: BundleLabel[] | null;
  grid: BundleGrid | null;
  /** The training scheduler's MONAI config. */
  scheduler: JsonObject | null;
  provenance: BundleProvenance;
}

export interface ModelBundle {
  config: BundleConfig;
  weights: ReadonlyMap<string, HostTensor>;
}

/** Renames MONAI core's `channels` to generative's `num_channels`; both given and different is an error. */
export function normaliseNetworkArgs(args: JsonObject, where = 'args'): JsonObject {
  const out: JsonObject = { ...args };
  if ('channels' in out) {
    if ('num_channels' in out && JSON.stringify(out.num_channels) !== JSON.stringify(out.channels))
      throw new RangeError(`${where}: 'channels' ${JSON.stringify(out.channels)} and 'num_channels' ${JSON.stringify(out.num_channels)} disagree (they are the same argument: monai core's and monai-generative's names)`);
    out.num_channels = out.channels;
    delete out.channels;
  }
  return out;
}

/** Validates a parsed model.json (or a config about to be written); `file` names it in errors. Returns a normalised copy. */
export function validateBundleConfig(raw: unknown, file = MODEL_JSON): BundleConfig {
  const c = new JsonChecker(file);
  const o = c.object(raw, '(top level)');
  c.only(o, '', ['format', 'version', 'network', 'keyScheme', 'scaleFactor', 'conditioning', 'labels', 'grid', 'scheduler', 'provenance']);
  if (o.format !== BUNDLE_FORMAT) c.fail('format', `"${BUNDLE_FORMAT}"`, o.format);
  if (o.version !== BUNDLE_VERSION) c.fail('version', `${BUNDLE_VERSION} (this brain-ldm reads version ${BUNDLE_VERSION} bundles)`, o.version, RangeError);

  const n = c.object(o.network, 'network');
  c.only(n, 'network', ['class', 'args', 'wrapper', 'attentionOutputProjection'], ['spadeNormEps']);
  if (n.spadeNormEps !== undefined && !(typeof n.spadeNormEps === 'number' && Number.isFinite(n.spadeNormEps) && n.spadeNormEps > 0))
    c.fail('network.spadeNormEps', 'a positive number', n.spadeNormEps);
  if (!NETWORK_CLASSES.includes(n.class as NetworkClass)) c.fail('network.class', `one of ${NETWORK_CLASSES.join(', ')}`, n.class, RangeError);
  const args = normaliseNetworkArgs(c.json(c.object(n.args, 'network.args'), 'network.args') as JsonObject, `${file}: field 'network.args'`);
  let wrapper: EmbeddingWrapperSpec | null = null;
  if (n.wrapper !== null) {
    const w = c.object(n.wrapper, 'network.wrapper');
    c.only(w, 'network.wrapper', ['type', 'num_embeddings', 'embedding_dim']);
    if (w.type !== 'EmbeddingWrapper') c.fail('network.wrapper.type', '"EmbeddingWrapper"', w.type);
    for (const k of ['num_embeddings', 'embedding_dim'])
      if (!Number.isSafeInteger(w[k]) || (w[k] as number) < 1) c.fail(`network.wrapper.${k}`, 'a positive integer', w[k]);
    if (n.class !== 'AutoencoderKL') c.fail('network.wrapper', `null for ${String(n.class)} (the EmbeddingWrapper wraps an AutoencoderKL)`, n.wrapper, RangeError);
    if (args.in_channels !== undefined && args.in_channels !== w.embedding_dim)
      c.fail('network.args.in_channels', `the wrapper's embedding_dim ${String(w.embedding_dim)} (the embedding feeds the autoencoder)`, args.in_channels, RangeError);
    wrapper = { type: 'EmbeddingWrapper', num_embeddings: w.num_embeddings as number, embedding_dim: w.embedding_dim as number };
  }
  if (typeof n.attentionOutputProjection !== 'boolean') c.fail('network.attentionOutputProjection', 'true or false', n.attentionOutputProjection);

  if (o.keyScheme !== 'generative') c.fail('keyScheme', '"generative" (bundles always hold canonical names; importers convert monai-core)', o.keyScheme, RangeError);
  if (o.scaleFactor !== null && !(typeof o.scaleFactor === 'number' && Number.isFinite(o.scaleFactor) && o.scaleFactor > 0))
    c.fail('scaleFactor', 'a positive finite number or null', o.scaleFactor);

  let labels: BundleLabel[] | null = null;
  if (o.labels !== null) {
    if (!Array.isArray(o.labels)) c.fail('labels', 'an array or null', o.labels);
    labels = (o.labels as unknown[]).map((l, i) => {
      if (Number.isSafeInteger(l) && (l as number) >= 0) return l as number;
      const lo = c.object(l, `labels[${i}]`);
      if (!Number.isSafeInteger(lo.value) || (lo.value as number) < 0) c.fail(`labels[${i}].value`, 'a non-negative integer', lo.value);
      if (lo.name !== undefined && typeof lo.name !== 'string') c.fail(`labels[${i}].name`, 'a string', lo.name);
      for (const k of Object.keys(lo)) if (k !== 'value' && k !== 'name') throw new RangeError(`${file}: unknown field 'labels[${i}].${k}' (expected only value, name)`);
      return lo.name === undefined ? { value: lo.value as number } : { value: lo.value as number, name: lo.name as string };
    });
  }

  let grid: BundleGrid | null = null;
  if (o.grid !== null) {
    const g = c.object(o.grid, 'grid');
    c.only(g, 'grid', ['shape', 'spacingMm']);
    const shape = c.positiveInts(g.shape, 'grid.shape');
    const sp = g.spacingMm;
    if (!Array.isArray(sp) || sp.length !== shape.length || !sp.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0))
      c.fail('grid.spacingMm', `an array of ${shape.length} positive numbers (one per grid.shape dimension)`, sp);
    grid = { shape, spacingMm: (sp as number[]).slice() };
  }

  const p = c.object(o.provenance, 'provenance');
  c.only(p, 'provenance', ['source', 'sha256', 'importedWith', 'date']);
  if (typeof p.source !== 'string' || p.source.length === 0) c.fail('provenance.source', 'the source file name', p.source);
  if (typeof p.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(p.sha256)) c.fail('provenance.sha256', '64 lower-case hex digits', p.sha256);
  if (typeof p.importedWith !== 'string' || !/^brain-ldm \S+$/.test(p.importedWith)) c.fail('provenance.importedWith', '"brain-ldm <version>"', p.importedWith);
  if (typeof p.date !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(p.date) || Number.isNaN(Date.parse(p.date)))
    c.fail('provenance.date', 'an ISO 8601 date-time such as "2025-01-31T12:00:00.000Z"', p.date);

  return {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    network: {
      class: n.class as NetworkClass, args, wrapper, attentionOutputProjection: n.attentionOutputProjection as boolean,
      ...(n.spadeNormEps !== undefined ? { spadeNormEps: n.spadeNormEps as number } : {}),
    },
    keyScheme: 'generative',
    scaleFactor: o.scaleFactor as number | null,
    conditioning: c.jsonObjectOrNull(o.conditioning, 'conditioning'),
    labels,
    grid,
    scheduler: c.jsonObjectOrNull(o.scheduler, 'scheduler'),
    provenance: { source: p.source as string, sha256: p.sha256 as string, importedWith: p.importedWith as string, date: p.date as string },
  };
}

/** Reads and validates a bundle directory. */
export async function readBundle(dir: string): Promise<ModelBundle> {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError(`readBundle: argument 'dir' must be a non-empty string`);
  const info = await stat(dir).catch(() => null);
  if (!info) throw new RangeError(`bundle ${dir}: no such directory`);
  if (!info.isDirectory()) throw new TypeError(`bundle ${dir}: not a directory (a bundle is a directory with ${MODEL_JSON} and ${WEIGHTS_FILE})`);
  const jsonPath = join(dir, MODEL_JSON);
  const text = await readFile(jsonPath, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new RangeError(`bundle ${dir}: ${MODEL_JSON} is missing`);
    throw e;
  });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new TypeError(`${jsonPath}: not valid JSON: ${(e as Error).message}`);
  }
  const config = validateBundleConfig(raw, jsonPath);
  const weightsPath = join(dir, WEIGHTS_FILE);
  if (!(await stat(weightsPath).catch(() => null))) throw new RangeError(`bundle ${dir}: weights file ${WEIGHTS_FILE} is missing (${MODEL_JSON} is there)`);
  const { tensors } = await readSafetensors(weightsPath);
  return { config, weights: tensors };
}

/**
 * Writes a bundle atomically: everything goes into a temp directory beside `dir`, which is then renamed to `dir`.
 * An existing `dir` is replaced only with `overwrite` and only if it is a bundle (holds model.json) or empty; it is
 * moved aside first and removed after the rename, so at every moment `dir` is absent, the old bundle or the new one.
 */
export async function writeBundle(dir: string, bundle: ModelBundle, options: { overwrite?: boolean } = {}): Promise<void> {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError(`writeBundle: argument 'dir' must be a non-empty string`);
  if (!bundle || typeof bundle !== 'object' || !(bundle.weights instanceof Map)) throw new TypeError(`writeBundle: argument 'bundle' must be { config, weights: Map }`);
  const config = validateBundleConfig(bundle.config, `writeBundle: argument 'bundle.config'`);
  const target = resolve(dir);
  const existing = await stat(target).catch(() => null);
  if (existing) {
    if (!options.overwrite) throw new RangeError(`writeBundle: ${dir} already exists (pass overwrite to replace it)`);
    if (!existing.isDirectory()) throw new TypeError(`writeBundle: ${dir} exists and is not a directory`);
    const hasModel = await stat(join(target, MODEL_JSON)).catch(() => null);
    if (!hasModel && (await readdir(target)).length > 0)
      throw new RangeError(`writeBundle: ${dir} exists and is not a bundle (no ${MODEL_JSON}); refusing to replace it`);
  }
  await mkdir(dirname(target), { recursive: true });
  const tag = `${process.pid}-${Date.now().toString(36)}`;
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${tag}`);
  await mkdir(tmp);
  try {
    await writeSafetensors(join(tmp, WEIGHTS_FILE), bundle.weights);
    const fh = await open(join(tmp, MODEL_JSON), 'w');
    try {
      await writeAll(fh, Buffer.from(`${JSON.stringify(config, null, 2)}\n`, 'utf8'));
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (existing) {
      const old = join(dirname(target), `.${basename(target)}.old-${tag}`);
      await rename(target, old);
      try {
        await rename(tmp, target);
      } catch (e) {
        await rename(old, target).catch(() => undefined);
        throw e;
      }
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, target);
    }
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}
