/**
 * MONAI constructor arguments -> the core's network spec (native/core/nets/
 * network_spec.cpp), a line-based `key=value` text. Arguments that only
 * matter for training or for PyTorch's kernels are accepted and dropped;
 * anything else unknown is an error naming the argument, so a bundle never
 * runs with a setting the graph ignores.
 */

import { NETWORK_CLASSES, type NetworkSpec } from '../bundle/model-bundle.js';

/** Args that change nothing in an fp32 forward pass. */
const INFERENCE_NEUTRAL = new Set(['use_flash_attention', 'use_checkpointing', 'dropout_cattn', 'dropout', 'use_combined_linear', 'include_fc']);

const INT_ARGS = new Set(['spatial_dims', 'in_channels', 'out_channels', 'norm_num_groups', 'latent_channels', 'cross_attention_dim',
  'transformer_num_layers', 'num_class_embeds', 'label_nc', 'spade_intermediate_channels']);
const BOOL_ARGS = new Set(['with_encoder_nonlocal_attn', 'with_decoder_nonlocal_attn', 'use_convtranspose', 'resblock_updown',
  'with_conditioning', 'upcast_attention']);
const LIST_ARGS = new Set(['num_channels', 'num_res_blocks', 'attention_levels', 'num_head_channels']);

export function networkSpecText(net: NetworkSpec, where = 'network'): string {
  if (!NETWORK_CLASSES.includes(net.class))
    throw new RangeError(`${where}.class is '${String(net.class)}', expected one of ${NETWORK_CLASSES.join(', ')}`);
  if (typeof net.args !== 'object' || net.args === null) throw new TypeError(`${where}.args must be an object of MONAI constructor arguments`);
  const lines = [`class=${net.class}`];
  for (const [rawKey, value] of Object.entries(net.args)) {
    const key = rawKey === 'channels' ? 'num_channels' : rawKey;
    const field = `${where}.args.${rawKey}`;
    if (INFERENCE_NEUTRAL.has(key) || value === null) continue;
    if (key === 'norm_eps') {
      if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`${field} must be a positive number, got ${JSON.stringify(value)}`);
      lines.push(`norm_eps=${value}`);
    } else if (INT_ARGS.has(key)) {
      if (!Number.isInteger(value)) throw new TypeError(`${field} must be an integer, got ${JSON.stringify(value)}`);
      lines.push(`${key}=${value}`);
    } else if (BOOL_ARGS.has(key)) {
      if (typeof value !== 'boolean') throw new TypeError(`${field} must be true or false, got ${JSON.stringify(value)}`);
      lines.push(`${key}=${value ? 1 : 0}`);
    } else if (LIST_ARGS.has(key)) {
      const list = Array.isArray(value) ? value : [value];
      if (!list.every((v) => typeof v === 'boolean' || Number.isInteger(v)))
        throw new TypeError(`${field} must be an integer, a boolean or a list of them, got ${JSON.stringify(value)}`);
      lines.push(`${key}=${list.map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v)).join(',')}`);
    } else {
      throw new RangeError(`${field} is not a supported ${net.class} argument`);
    }
  }
  if (net.attentionOutputProjection) lines.push('attention_output_projection=1');
  if (net.spadeNormEps !== undefined) lines.push(`spade_norm_eps=${net.spadeNormEps}`);
  if (net.wrapper) {
    if (net.wrapper.type !== 'EmbeddingWrapper') throw new RangeError(`${where}.wrapper.type must be 'EmbeddingWrapper'`);
    lines.push(`embedding_rows=${net.wrapper.num_embeddings}`, `embedding_dim=${net.wrapper.embedding_dim}`);
  }
  return lines.join('\n');
}
