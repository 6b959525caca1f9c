/**
 * Weight names. The canonical scheme is MONAI GenerativeModels 0.2.3's module tree (the thesis checkpoints use it);
 * MONAI core (monai >= 1.4, where the networks moved) is rewritten into it at load by the table below, the mirror of
 * `load_old_state_dict` in Project-MONAI/MONAI monai/networks/nets/{autoencoderkl,diffusion_model_unet}.py (d388d1c),
 * which maps the other way. Verified on monai 1.6.1 / monai-generative 0.2.3 state_dicts of AutoencoderKL,
 * DiffusionModelUNet (AttentionBlock and SpatialTransformer), SPADEAutoencoderKL and SPADEDiffusionModelUNet, with
 * include_fc and use_combined_linear on and off (test/fixtures/pth/*-monai-core*.pth, made by
 * train/make_pth_test_files.py, which also checks that the converted weights give generative's forward).
 *
 * Output projections: generative's AttentionBlock declares `proj_attn` but never applies it; monai core's
 * SpatialAttentionBlock applies `attn.out_proj` when include_fc=True (its default). A converted checkpoint therefore
 * says whether its spatial attention blocks apply `proj_attn` (attentionOutputProjection). Where monai core has no
 * projection (include_fc=False) the canonical tree still needs the tensor: an identity is synthesised, which is exact
 * both for the dead `proj_attn` and for a transformer's `attn1.to_out.0` (applied by generative).
 */
import type { DType, HostTensor, TensorData } from '../io/safetensors.js';
import { DTYPES, elementCount } from '../io/safetensors.js';

export type KeyScheme = 'generative' | 'monai-core';

/** A rename between the two schemes. Patterns match whole keys; slots: {block} any prefix, {attn} attn1|attn2, {p} weight|bias. */
export interface KeyRule {
  canonical: string;
  foreign: string;
  why: string;
}

/** monai-core -> canonical (generative 0.2.3) renames, first match wins. */
export const MONAI_CORE_RULES: readonly KeyRule[] = [
  // M:monai/networks/blocks/spatialattention.py: SpatialAttentionBlock keeps `norm` and wraps an SABlock as `attn`.
  { canonical: '{block}.to_q.{p}', foreign: '{block}.attn.to_q.{p}', why: 'AttentionBlock -> SpatialAttentionBlock(attn=SABlock)' },
  { canonical: '{block}.to_k.{p}', foreign: '{block}.attn.to_k.{p}', why: 'AttentionBlock -> SpatialAttentionBlock(attn=SABlock)' },
  { canonical: '{block}.to_v.{p}', foreign: '{block}.attn.to_v.{p}', why: 'AttentionBlock -> SpatialAttentionBlock(attn=SABlock)' },
  { canonical: '{block}.proj_attn.{p}', foreign: '{block}.attn.out_proj.{p}', why: 'applied by monai core (include_fc=True), never by generative' },
  // M:monai/networks/blocks/transformerblock.py / crossattention.py: CrossAttention's to_out Sequential -> out_proj.
  { canonical: '{block}.{attn}.to_out.0.{p}', foreign: '{block}.{attn}.out_proj.{p}', why: 'CrossAttention.to_out[0] -> SABlock/CrossAttentionBlock.out_proj' },
  // M:monai/networks/blocks/upsample.py: UpSample(mode=nontrainable) names its convolution `postconv`.
  { canonical: '{block}.conv.conv.{p}', foreign: '{block}.postconv.conv.{p}', why: 'Upsample conv -> UpSample postconv' },
  // M:monai/networks/blocks/spade_norm.py builds the parameter-free norm directly instead of an ADN with child N.
  { canonical: '{block}.param_free_norm.N.{p}', foreign: '{block}.param_free_norm.{p}', why: 'SPADE ADN(N) -> norm layer' },
];

/** monai-core fused q/k/v (use_combined_linear=True): one Linear whose output rows are [q; k; v], split along dim 0. */
export const MONAI_CORE_SPLITS: readonly { canonical: readonly [string, string, string]; foreign: string; why: string }[] = [
  { canonical: ['{block}.to_q.{p}', '{block}.to_k.{p}', '{block}.to_v.{p}'], foreign: '{block}.attn.qkv.{p}', why: 'SABlock(use_combined_linear=True) in a SpatialAttentionBlock' },
  { canonical: ['{block}.{attn}.to_q.{p}', '{block}.{attn}.to_k.{p}', '{block}.{attn}.to_v.{p}'], foreign: '{block}.{attn}.qkv.{p}', why: 'SABlock(use_combined_linear=True) as a transformer self-attention' },
];

/** Tensors no network needs, dropped at import (so any other leftover is a real mismatch). */
export const UNUSED_TENSORS: readonly RegExp[] = [
  /(^|\.)num_batches_tracked$/, // BatchNorm step counter (int64), training only
];

/** Keys that exist only in one scheme; a checkpoint with both kinds is refused. */
const MONAI_CORE_MARKERS = /\.attn\.(to_[qkv]|qkv|out_proj)\.(weight|bias)$|\.attn[12]\.(out_proj|qkv)\.(weight|bias)$|\.postconv\.conv\.(weight|bias)$|\.param_free_norm\.(weight|bias)$/;
const GENERATIVE_MARKERS = /\.proj_attn\.(weight|bias)$|\.to_out\.0\.(weight|bias)$|\.param_free_norm\.N\.(weight|bias)$/;

export interface EmbeddingWrapperSpec {
  type: 'EmbeddingWrapper';
  num_embeddings: number;
  embedding_dim: number;
}

export interface ConvertedWeights {
  /** Canonical name -> tensor, in the checkpoint's order (split and synthesised tensors where their source was). */
  weights: Map<string, HostTensor>;
  scheme: KeyScheme;
  /** Whether the spatial attention blocks apply `proj_attn` (monai core with include_fc=True); generative: never. */
  attentionOutputProjection: boolean;
  /** Foreign keys left out (UNUSED_TENSORS). */
  dropped: string[];
  /** Foreign -> canonical renames made (splits appear once per part). */
  renamed: Array<{ from: string; to: string; why: string }>;
  /** Canonical keys made here (identity projections for monai-core blocks without one). */
  synthesized: string[];
  /** The thesis EmbeddingWrapper (`embedding.weight` + `autoencoder.*`), detected from the keys; names kept as they are. */
  wrapper: EmbeddingWrapperSpec | null;
  /** A prefix stripped from every key (`module.` from DataParallel), or ''. */
  strippedPrefix: string;
  /** Why the scheme was chosen: the first key that marks it. */
  evidence: string;
}

interface CompiledPattern { re: RegExp; template: string }

function compile(pattern: string): RegExp {
  const slots: Record<string, string> = { block: '(?<block>.+)', attn: '(?<attn>attn[12])', p: '(?<p>weight|bias)' };
  const src = pattern.split(/(\{\w+\})/).map((part) => {
    const slot = /^\{(\w+)\}$/.exec(part);
    if (slot) {
      if (!slots[slot[1]]) throw new Error(`key-schemes: unknown slot {${slot[1]}} in '${pattern}'`);
      return slots[slot[1]];
    }
    return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }).join('');
  return new RegExp(`^${src}$`);
}

function fill(template: string, groups: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => groups[name]);
}

const RULES: Array<CompiledPattern & { why: string }> = MONAI_CORE_RULES.map((r) => ({ re: compile(r.foreign), template: r.canonical, why: r.why }));
const SPLITS = MONAI_CORE_SPLITS.map((s) => ({ re: compile(s.foreign), templates: s.canonical, why: s.why }));

/** Which scheme a set of keys follows, and the key that shows it. Keys common to both read as generative. */
export function detectKeyScheme(keys: Iterable<string>): { scheme: KeyScheme; evidence: string } {
  let m: string | undefined;
  let g: string | undefined;
  for (const k of keys) {
    if (m === undefined && MONAI_CORE_MARKERS.test(k)) m = k;
    if (g === undefined && GENERATIVE_MARKERS.test(k)) g = k;
  }
  if (m !== undefined && g !== undefined)
    throw new RangeError(`mixed key schemes: '${g}' is a monai-generative 0.2.3 name but '${m}' is a MONAI core name; a checkpoint must use one`);
  if (m !== undefined) return { scheme: 'monai-core', evidence: `'${m}' is a MONAI core (monai >= 1.4) name` };
  if (g !== undefined) return { scheme: 'generative', evidence: `'${g}' is a monai-generative 0.2.3 name` };
  return { scheme: 'generative', evidence: 'no key differs between the two schemes' };
}

const ONE_BITS: Partial<Record<DType, number>> = { F16: 0x3c00, BF16: 0x3f80 };

function filled(dtype: DType, shape: number[], diagonalOne: boolean, name: string): HostTensor {
  if (dtype !== 'F32' && dtype !== 'F64' && dtype !== 'F16' && dtype !== 'BF16')
    throw new TypeError(`cannot synthesise '${name}' as ${dtype}: expected a floating-point attention weight`);
  const data = new DTYPES[dtype].array(elementCount(shape)) as Float32Array | Float64Array | Uint16Array;
  if (diagonalOne) {
    const one = ONE_BITS[dtype] ?? 1;
    for (let i = 0; i < shape[0]; i++) data[i * shape[1] + i] = one;
  }
  return { dtype, shape, data };
}

function splitRows(t: HostTensor, name: string): [HostTensor, HostTensor, HostTensor] {
  const rows = t.shape[0];
  if (t.shape.length < 1 || rows % 3 !== 0)
    throw new RangeError(`'${name}' has shape [${t.shape.join(', ')}]: a fused q/k/v tensor needs a first dimension divisible by 3`);
  const shape = [rows / 3, ...t.shape.slice(1)];
  const n = elementCount(shape);
  // Contiguous row-major data: each third along dim 0 is one contiguous run, so the parts are views.
  const part = (i: number): HostTensor => ({ dtype: t.dtype, shape: shape.slice(), data: t.data.subarray(i * n, (i + 1) * n) as TensorData });
  return [part(0), part(1), part(2)];
}

/**
 * Rewrites a state_dict into canonical (generative 0.2.3) names. `scheme` defaults to detection from the keys.
 * Values are not copied except where a fused q/k/v is split (views) or a projection is synthesised.
 */
export function convertKeys(stateDict: ReadonlyMap<string, HostTensor>, options: { scheme?: KeyScheme | 'auto' } = {}): ConvertedWeights {
  if (!(stateDict instanceof Map)) throw new TypeError(`convertKeys: argument 'stateDict' must be a Map of name -> tensor`);
  const requested = options.scheme ?? 'auto';
  if (requested !== 'auto' && requested !== 'generative' && requested !== 'monai-core')
    throw new TypeError(`convertKeys: argument 'options.scheme' must be 'auto', 'generative' or 'monai-core', got ${String(requested)}`);
  let entries = [...stateDict.entries()];
  let strippedPrefix = '';
  if (entries.length > 0 && entries.every(([k]) => k.startsWith('module.'))) {
    strippedPrefix = 'module.';
    entries = entries.map(([k, v]) => [k.slice(strippedPrefix.length), v]);
  }
  const detected = detectKeyScheme(entries.map(([k]) => k));
  const scheme = requested === 'auto' ? detected.scheme : requested;
  const evidence = requested === 'auto' ? detected.evidence : `scheme given by the caller (${detected.evidence})`;

  const weights = new Map<string, HostTensor>();
  const origin = new Map<string, string>();
  const dropped: string[] = [];
  const renamed: ConvertedWeights['renamed'] = [];
  const put = (name: string, t: HostTensor, from: string): void => {
    const prev = origin.get(name);
    if (prev !== undefined) throw new RangeError(`'${from}' and '${prev}' both map to '${name}'`);
    origin.set(name, from);
    weights.set(name, t);
  };
  for (const [key, tensor] of entries) {
    if (UNUSED_TENSORS.some((re) => re.test(key))) { dropped.push(key); continue; }
    if (scheme === 'monai-core') {
      const split = SPLITS.map((s) => ({ s, m: s.re.exec(key) })).find((x) => x.m);
      if (split) {
        const parts = splitRows(tensor, key);
        split.s.templates.forEach((tpl, i) => {
          const to = fill(tpl, split.m!.groups!);
          put(to, parts[i], key);
          renamed.push({ from: key, to, why: split.s.why });
        });
        continue;
      }
      const rule = RULES.map((r) => ({ r, m: r.re.exec(key) })).find((x) => x.m);
      if (rule) {
        const to = fill(rule.r.template, rule.m!.groups!);
        put(to, tensor, key);
        renamed.push({ from: key, to, why: rule.r.why });
        continue;
      }
    }
    put(key, tensor, key);
  }

  const synthesized: string[] = [];
  let attentionOutputProjection = false;
  if (scheme === 'monai-core') {
    // Attention blocks in canonical names: spatial ones end in anything but attn1/attn2.
    const blocks = [...weights.keys()].filter((k) => k.endsWith('.to_q.weight')).map((k) => k.slice(0, -'.to_q.weight'.length));
    const spatial = blocks.filter((b) => !/\.attn[12]$/.test(b));
    attentionOutputProjection = spatial.some((b) => weights.has(`${b}.proj_attn.weight`));
    const addProjection = (q: HostTensor, weightName: string, biasName: string): void => {
      // to_q is [inner, query]; the projection back is [query, inner], an identity only when square.
      const [inner, query] = q.shape;
      if (q.shape.length !== 2 || inner !== query)
        throw new RangeError(`cannot synthesise an identity '${weightName}': to_q has shape [${q.shape.join(', ')}], not square`);
      weights.set(weightName, filled(q.dtype, [query, inner], true, weightName));
      weights.set(biasName, filled(q.dtype, [query], false, biasName));
      synthesized.push(weightName, biasName);
    };
    for (const b of spatial) {
      // include_fc=False (or a block MONAI built without it): the identity is exact whether proj_attn is applied or not.
      if (!weights.has(`${b}.proj_attn.weight`) && !weights.has(`${b}.proj_attn.bias`))
        addProjection(weights.get(`${b}.to_q.weight`)!, `${b}.proj_attn.weight`, `${b}.proj_attn.bias`);
    }
    for (const b of blocks.filter((x) => /\.attn[12]$/.test(x))) {
      // A transformer self-attention without out_proj (include_fc=False): generative applies to_out.0, so an identity.
      if (!weights.has(`${b}.to_out.0.weight`) && !weights.has(`${b}.to_out.0.bias`))
        addProjection(weights.get(`${b}.to_q.weight`)!, `${b}.to_out.0.weight`, `${b}.to_out.0.bias`);
    }
  }

  let wrapper: EmbeddingWrapperSpec | null = null;
  const emb = weights.get('embedding.weight');
  if (emb && emb.shape.length === 2 && [...weights.keys()].every((k) => k === 'embedding.weight' || k.startsWith('autoencoder.')))
    wrapper = { type: 'EmbeddingWrapper', num_embeddings: emb.shape[0], embedding_dim: emb.shape[1] };

  return { weights, scheme, attentionOutputProjection, dropped, renamed, synthesized, wrapper, strippedPrefix, evidence };
}
