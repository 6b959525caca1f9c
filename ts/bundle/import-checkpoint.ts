/**
 * MONAI checkpoint (.pt/.pth) -> brain-ldm bundle: read the file (restricted unpickler, nothing executed), find the
 * state_dict, rewrite its names into the canonical scheme, convert float64 to float32 (float16/bfloat16 stay as
 * stored), let the caller's `validate` check the weights against the network graph, then write the bundle
 * atomically.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { readFileFully, type DType, type HostTensor } from '../io/safetensors.js';
import { extractStateDict, parseTorchCheckpoint } from '../io/torch-checkpoint.js';
import { convertKeys, type EmbeddingWrapperSpec, type KeyScheme } from './key-schemes.js';
import {
  NETWORK_CLASSES, normaliseNetworkArgs, validateBundleConfig, writeBundle,
  type BundleConfig, type BundleGrid, type BundleLabel, type JsonObject, type NetworkClass, type NetworkSpec,
} from './model-bundle.js';

/**
 * Checks converted weights against the network that `network` describes; throws an Error naming the missing or
 * extra key and both shapes. Implemented from the C++ network graph; importCheckpoint propagates its error unchanged.
 */
export type ValidateWeights = (network: NetworkSpec, weights: ReadonlyMap<string, HostTensor>) => void | Promise<void>;

export interface ImportCheckpointOptions {
  /** The .pt/.pth written by torch.save. */
  file: string;
  /** MONAI class name, e.g. 'DiffusionModelUNet'. */
  network: string;
  /** MONAI constructor kwargs (either package's names; `channels` becomes `num_channels`). */
  args: Record<string, unknown>;
  /** Bundle directory to write. */
  out: string;
  /** The thesis EmbeddingWrapper; detected from the keys when omitted, checked against them when given. */
  wrapper?: { num_embeddings: number; embedding_dim: number } | null;
  validate?: ValidateWeights;
  /** Top-level key holding the state_dict when the checkpoint is a dict of several things. */
  stateDictKey?: string;
  /** Key scheme of the file; detected from the keys by default. */
  scheme?: KeyScheme | 'auto';
  overwrite?: boolean;
  scaleFactor?: number | null;
  conditioning?: JsonObject | null;
  labels?: BundleLabel[] | null;
  grid?: BundleGrid | null;
  scheduler?: JsonObject | null;
  /** For tests: the provenance date (default now). */
  date?: Date;
}

export interface ImportReport {
  out: string;
  source: string;
  sha256: string;
  container: string;
  containerDescription: string;
  scheme: KeyScheme;
  schemeEvidence: string;
  attentionOutputProjection: boolean;
  wrapper: EmbeddingWrapperSpec | null;
  wrapperDetected: boolean;
  renamed: number;
  dropped: string[];
  synthesized: string[];
  convertedFromFloat64: string[];
  tensors: number;
  parameters: number;
  dtypes: Partial<Record<DType, number>>;
  config: BundleConfig;
}

/** brain-ldm's version, from package.json (ts/bundle and dist/bundle are both two levels below it). */
export function brainLdmVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

function checkPositiveInt(v: unknown, name: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw new TypeError(`importCheckpoint: argument '${name}' must be a positive integer, got ${String(v)}`);
  return v as number;
}

export async function importCheckpoint(options: ImportCheckpointOptions): Promise<ImportReport> {
  if (options === null || typeof options !== 'object') throw new TypeError(`importCheckpoint: argument 'options' must be an object`);
  const { file, network, out } = options;
  if (typeof file !== 'string' || file.length === 0) throw new TypeError(`importCheckpoint: argument 'file' must be a path to a .pt/.pth file`);
  if (typeof out !== 'string' || out.length === 0) throw new TypeError(`importCheckpoint: argument 'out' must be a bundle directory path`);
  if (!NETWORK_CLASSES.includes(network as NetworkClass))
    throw new RangeError(`importCheckpoint: argument 'network' must be one of ${NETWORK_CLASSES.join(', ')}, got ${JSON.stringify(network)}`);
  if (options.args === null || typeof options.args !== 'object' || Array.isArray(options.args))
    throw new TypeError(`importCheckpoint: argument 'args' must be an object of MONAI constructor arguments`);
  if (options.validate !== undefined && typeof options.validate !== 'function') throw new TypeError(`importCheckpoint: argument 'validate' must be a function`);
  const args = normaliseNetworkArgs(JSON.parse(JSON.stringify(options.args)) as JsonObject, `importCheckpoint: argument 'args'`);

  const bytes = readFileFully(file);
  const hash = createHash('sha256');
  for (let o = 0; o < bytes.byteLength; o += 1 << 30) hash.update(bytes.subarray(o, o + (1 << 30))); // update() takes < 2 GiB
  const sha256 = hash.digest('hex');
  const root = parseTorchCheckpoint(bytes, file);
  const found = extractStateDict(root, { key: options.stateDictKey, source: file });
  const converted = convertKeys(found.stateDict, { scheme: options.scheme ?? 'auto' });

  let wrapper = converted.wrapper;
  const wrapperDetected = wrapper !== null;
  if (options.wrapper) {
    const want = { num_embeddings: checkPositiveInt(options.wrapper.num_embeddings, 'wrapper.num_embeddings'), embedding_dim: checkPositiveInt(options.wrapper.embedding_dim, 'wrapper.embedding_dim') };
    if (!wrapper)
      throw new RangeError(`${file}: an EmbeddingWrapper ${want.num_embeddings}x${want.embedding_dim} was given but the checkpoint has no 'embedding.weight' beside 'autoencoder.*' keys`);
    if (wrapper.num_embeddings !== want.num_embeddings || wrapper.embedding_dim !== want.embedding_dim)
      throw new RangeError(`${file}: 'embedding.weight' has shape [${wrapper.num_embeddings}, ${wrapper.embedding_dim}] but the EmbeddingWrapper given is ${want.num_embeddings}x${want.embedding_dim}`);
    wrapper = { type: 'EmbeddingWrapper', ...want };
  } else if (options.wrapper === null && wrapper) {
    throw new RangeError(`${file}: the keys are an EmbeddingWrapper's ('embedding.weight' + 'autoencoder.*') but no wrapper was allowed`);
  }

  const weights = new Map<string, HostTensor>();
  const convertedFromFloat64: string[] = [];
  for (const [name, t] of converted.weights) {
    if (t.dtype === 'F64') {
      weights.set(name, { dtype: 'F32', shape: t.shape.slice(), data: Float32Array.from(t.data as Float64Array) });
      convertedFromFloat64.push(name);
    } else {
      weights.set(name, { dtype: t.dtype, shape: t.shape.slice(), data: t.data });
    }
  }

  const spec: NetworkSpec = { class: network as NetworkClass, args, wrapper, attentionOutputProjection: converted.attentionOutputProjection };
  // MONAI core's SPADE autoencoder passes norm_eps to its parameter-free GroupNorm; GenerativeModels keeps 1e-5.
  if (network === 'SPADEAutoencoderKL' && converted.scheme === 'monai-core') spec.spadeNormEps = typeof args.norm_eps === 'number' ? args.norm_eps : 1e-6;
  if (options.validate) await options.validate(spec, weights);

  const config = validateBundleConfig({
    format: 'brain-ldm-bundle',
    version: 1,
    network: spec,
    keyScheme: 'generative',
    scaleFactor: options.scaleFactor ?? null,
    conditioning: options.conditioning ?? null,
    labels: options.labels ?? null,
    grid: options.grid ?? null,
    scheduler: options.scheduler ?? null,
    provenance: { source: basename(file), sha256, importedWith: `brain-ldm ${brainLdmVersion()}`, date: (options.date ?? new Date()).toISOString() },
  }, `importCheckpoint: bundle config for ${out}`);
  await writeBundle(out, { config, weights }, { overwrite: options.overwrite });

  const dtypes: Partial<Record<DType, number>> = {};
  let parameters = 0;
  for (const t of weights.values()) {
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    parameters += t.data.length;
  }
  return {
    out, source: file, sha256, container: found.container, containerDescription: found.description,
    scheme: converted.scheme, schemeEvidence: converted.evidence, attentionOutputProjection: converted.attentionOutputProjection,
    wrapper, wrapperDetected, renamed: converted.renamed.length, dropped: converted.dropped, synthesized: converted.synthesized,
    convertedFromFloat64, tensors: weights.size, parameters, dtypes, config,
  };
}
