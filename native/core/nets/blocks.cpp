#include "blocks.h"

#include <cmath>

namespace bl {

namespace {

// norm1 (in channels) and norm2 (out channels) of a resnet block: GroupNorm, or SPADE whose
// param-free norm has the given eps and affinity (they differ between the SPADE networks).
Status bind_norm_pair(WeightStore& ws, const std::string& p, int in, int out, const NetworkSpec& spec, bool spade,
                      float spade_eps, bool spade_affine, NormLayer* norm1, NormLayer* norm2) {
  if (!spade) {
    BL_RETURN_IF_ERROR(norm1->bind_group(ws, p + ".norm1", in, spec.norm_num_groups, spec.norm_eps));
    return norm2->bind_group(ws, p + ".norm2", out, spec.norm_num_groups, spec.norm_eps);
  }
  BL_RETURN_IF_ERROR(norm1->bind_spade(ws, p + ".norm1", in, spec.norm_num_groups, spade_eps, spade_affine,
                                       spec.label_nc, spec.spade_intermediate_channels));
  return norm2->bind_spade(ws, p + ".norm2", out, spec.norm_num_groups, spade_eps, spade_affine, spec.label_nc,
                           spec.spade_intermediate_channels);
}

}  // namespace

// ---- AeResBlock --------------------------------------------------------------

Status AeResBlock::bind(WeightStore& ws, const std::string& p, int in, int out, const NetworkSpec& spec, bool spade) {
  // SPADEAutoencoderKL's param-free norm is GroupNorm(affine=False) with spade_norm_eps.
  BL_RETURN_IF_ERROR(bind_norm_pair(ws, p, in, out, spec, spade, spec.spade_norm_eps, false, &norm1, &norm2));
  BL_RETURN_IF_ERROR(conv1.bind(ws, p + ".conv1.conv", in, out, 3, true));
  BL_RETURN_IF_ERROR(conv2.bind(ws, p + ".conv2.conv", out, out, 3, true));
  has_shortcut = in != out;
  if (has_shortcut) BL_RETURN_IF_ERROR(nin_shortcut.bind(ws, p + ".nin_shortcut.conv", in, out, 1, true));
  return Status::ok();
}

Status AeResBlock::forward(NetRun& r, Tensor x, const BlockInputs& in, Tensor* y, bool x_is_scratch) const {
  // Each map is dropped as soon as it is used and norm2 overwrites conv1's output: at a SPADE decoder's full
  // resolution every map is hundreds of MB, and x must stay alive for the skip. (Taking the skip first and
  // overwriting x with norm1 was measured worse where the skip is x itself: the pool hands the skip a free
  // full-size block.) With a shortcut the skip is a new, narrower map: made first, it lets norm1 overwrite x
  // where the caller no longer needs it, one input-sized map fewer (604 MB for the SPADE decoder's 128 -> 64
  // block at 96x128x96).
  Tensor skip = x;
  const bool skip_first = has_shortcut && x_is_scratch;
  if (skip_first) BL_RETURN_IF_ERROR(nin_shortcut.forward(r, x, &skip));
  Tensor h, h2;
  BL_RETURN_IF_ERROR(norm1.forward(r, x, in.seg, true, &h, /*overwrite_input=*/skip_first));
  if (skip_first) x = Tensor();
  BL_RETURN_IF_ERROR(conv1.forward(r, h, &h2));
  h = Tensor();
  BL_RETURN_IF_ERROR(norm2.forward(r, h2, in.seg, true, &h, /*overwrite_input=*/true));
  h2 = Tensor();
  BL_RETURN_IF_ERROR(conv2.forward(r, h, &h2));
  h = Tensor();
  if (has_shortcut && !skip_first) BL_RETURN_IF_ERROR(nin_shortcut.forward(r, x, &skip));
  BL_RETURN_IF_ERROR(add(r.ctx, skip, h2, h2));
  *y = h2;
  return Status::ok();
}

// ---- AttentionBlock ----------------------------------------------------------

Status AttentionBlock::bind(WeightStore& ws, const std::string& p, int channels, int n_heads, const NetworkSpec& spec) {
  heads = n_heads;
  BL_RETURN_IF_ERROR(norm.bind(ws, p + ".norm", channels, spec.norm_num_groups, spec.norm_eps, true));
  BL_RETURN_IF_ERROR(to_q.bind(ws, p + ".to_q", channels, channels, 1, true));
  BL_RETURN_IF_ERROR(to_k.bind(ws, p + ".to_k", channels, channels, 1, true));
  BL_RETURN_IF_ERROR(to_v.bind(ws, p + ".to_v", channels, channels, 1, true));
  apply_proj = spec.attention_output_projection;
  if (apply_proj) return proj.bind(ws, p + ".proj_attn", channels, channels, 1, true);
  // GenerativeModels 0.2.3 builds proj_attn but its forward() never calls it.
  ws.ignore(p + ".proj_attn.weight");
  ws.ignore(p + ".proj_attn.bias");
  return Status::ok();
}

Status AttentionBlock::forward(NetRun& r, const Tensor& x, Tensor* y) const {
  Tensor h, q, k, v;
  BL_RETURN_IF_ERROR(norm.forward(r, x, false, &h));
  BL_RETURN_IF_ERROR(to_q.forward(r, h, &q));
  BL_RETURN_IF_ERROR(to_k.forward(r, h, &k));
  BL_RETURN_IF_ERROR(to_v.forward(r, h, &v));
  const int64_t c = x.shape[1];
  std::vector<int64_t> seq = {x.shape[0], c, x.numel() / (x.shape[0] * c)};
  Tensor att = r.pool.acquire(seq);
  float scale = 1.0f / std::sqrt(static_cast<float>(c) / heads);
  BL_RETURN_IF_ERROR(attention(r.ctx, reshaped(q, seq), reshaped(k, seq), reshaped(v, seq), heads, scale, att));
  Tensor out = reshaped(att, shape_of(x));
  if (apply_proj) {
    Tensor projected;
    BL_RETURN_IF_ERROR(proj.forward(r, out, &projected));
    out = projected;
  }
  BL_RETURN_IF_ERROR(add(r.ctx, out, x, out));
  *y = out;
  return Status::ok();
}

// ---- ResnetBlock -------------------------------------------------------------

Status ResnetBlock::bind(WeightStore& ws, const std::string& p, int in, int out, int temb, bool is_up, bool is_down,
                         const NetworkSpec& spec, bool spade) {
  up = is_up;
  down = is_down;
  out_channels = out;
  // SPADEDiffusionModelUNet: param-free norm is an affine GroupNorm with the network's eps.
  BL_RETURN_IF_ERROR(bind_norm_pair(ws, p, in, out, spec, spade, spec.norm_eps, true, &norm1, &norm2));
  BL_RETURN_IF_ERROR(conv1.bind(ws, p + ".conv1.conv", in, out, 3, true));
  BL_RETURN_IF_ERROR(conv2.bind(ws, p + ".conv2.conv", out, out, 3, true));
  BL_RETURN_IF_ERROR(ws.take(p + ".time_emb_proj.weight", {out, temb}, &time_w));
  BL_RETURN_IF_ERROR(ws.take(p + ".time_emb_proj.bias", {out}, &time_b));
  has_skip = in != out;
  if (has_skip) BL_RETURN_IF_ERROR(skip_connection.bind(ws, p + ".skip_connection.conv", in, out, 1, true));
  return Status::ok();
}

namespace {

Status resample(NetRun& r, const Tensor& x, bool up, bool down, Tensor* y) {
  std::vector<int64_t> s = shape_of(x);
  if (up) {
    for (int i = 2; i < 5; ++i) s[i] *= 2;
    *y = r.pool.acquire(s);
    return resize_nearest(r.ctx, x, *y);
  }
  if (down) {
    for (int i = 2; i < 5; ++i) s[i] /= 2;
    *y = r.pool.acquire(s);
    return avg_pool3d_2x(r.ctx, x, *y);
  }
  *y = x;
  return Status::ok();
}

}  // namespace

Status ResnetBlock::forward(NetRun& r, const Tensor& x, const BlockInputs& in, Tensor* y) const {
  Tensor normed, h, h2, skip_in;
  BL_RETURN_IF_ERROR(norm1.forward(r, x, in.seg, true, &normed));
  BL_RETURN_IF_ERROR(resample(r, normed, up, down, &h));
  BL_RETURN_IF_ERROR(resample(r, x, up, down, &skip_in));
  BL_RETURN_IF_ERROR(conv1.forward(r, h, &h2));

  // time_emb_proj(SiLU(emb)): a handful of values per (batch, channel), computed on the host.
  const Tensor& emb = *in.emb;
  const int64_t n = x.shape[0], be = emb.shape[0], temb = emb.shape[1];
  Tensor proj = r.pool.acquire({n, out_channels});
  for (int64_t b = 0; b < n; ++b) {
    const float* e = emb.f32() + (be == 1 ? 0 : b) * temb;
    for (int o = 0; o < out_channels; ++o) {
      const float* w = time_w.f32() + static_cast<int64_t>(o) * temb;
      double s = time_b.f32()[o];
      for (int64_t i = 0; i < temb; ++i) s += static_cast<double>(w[i]) * (e[i] / (1.0 + std::exp(-static_cast<double>(e[i]))));
      proj.f32()[b * out_channels + o] = static_cast<float>(s);
    }
  }
  BL_RETURN_IF_ERROR(add(r.ctx, h2, proj, h2));
  BL_RETURN_IF_ERROR(norm2.forward(r, h2, in.seg, true, &h));
  BL_RETURN_IF_ERROR(conv2.forward(r, h, &h2));
  Tensor skip = skip_in;
  if (has_skip) BL_RETURN_IF_ERROR(skip_connection.forward(r, skip_in, &skip));
  BL_RETURN_IF_ERROR(add(r.ctx, h2, skip, h2));
  *y = h2;
  return Status::ok();
}

// ---- Transformer -------------------------------------------------------------

Status TransformerBlock::bind(WeightStore& ws, const std::string& p, int channels, int n_heads, int head_dim,
                              int context_dim) {
  heads = n_heads;
  const int inner = n_heads * head_dim;
  BL_RETURN_IF_ERROR(norm1.bind(ws, p + ".norm1", channels));
  BL_RETURN_IF_ERROR(norm2.bind(ws, p + ".norm2", channels));
  BL_RETURN_IF_ERROR(norm3.bind(ws, p + ".norm3", channels));
  BL_RETURN_IF_ERROR(attn1_q.bind(ws, p + ".attn1.to_q", channels, inner, 1, false));
  BL_RETURN_IF_ERROR(attn1_k.bind(ws, p + ".attn1.to_k", channels, inner, 1, false));
  BL_RETURN_IF_ERROR(attn1_v.bind(ws, p + ".attn1.to_v", channels, inner, 1, false));
  BL_RETURN_IF_ERROR(attn1_out.bind(ws, p + ".attn1.to_out.0", inner, channels, 1, true));
  BL_RETURN_IF_ERROR(attn2_q.bind(ws, p + ".attn2.to_q", channels, inner, 1, false));
  BL_RETURN_IF_ERROR(attn2_k.bind(ws, p + ".attn2.to_k", context_dim, inner, 1, false));
  BL_RETURN_IF_ERROR(attn2_v.bind(ws, p + ".attn2.to_v", context_dim, inner, 1, false));
  BL_RETURN_IF_ERROR(attn2_out.bind(ws, p + ".attn2.to_out.0", inner, channels, 1, true));
  // MONAI MLPBlock with GEGLU: linear1 C -> 8C (value and gate halves), linear2 4C -> C.
  BL_RETURN_IF_ERROR(ff1.bind(ws, p + ".ff.linear1", channels, channels * 8, 1, true));
  return ff2.bind(ws, p + ".ff.linear2", channels * 4, channels, 1, true);
}

namespace {

// Multi-head attention of `x_norm` queries against `kv_source` keys/values, projected by to_out.
Status attend(NetRun& r, const ConvLayer& q_layer, const ConvLayer& k_layer, const ConvLayer& v_layer,
              const ConvLayer& out_layer, int heads, const Tensor& x_norm, const Tensor& kv_source, Tensor* y) {
  Tensor v;
  BL_RETURN_IF_ERROR(v_layer.forward(r, kv_source, &v));
  const int64_t inner = v.shape[1];
  const int64_t tq = x_norm.shape[2], tk = kv_source.shape[2];
  if (tk == 1) {
    // One context token: softmax over a single key is exactly 1, so every query receives v;
    // to_q and to_k cannot change the result (MONAI-COMPAT.md 2.3).
    Tensor o;
    BL_RETURN_IF_ERROR(out_layer.forward(r, v, &o));  // [N, C, 1]
    *y = o;
    return Status::ok();
  }
  Tensor q, k;
  BL_RETURN_IF_ERROR(q_layer.forward(r, x_norm, &q));
  BL_RETURN_IF_ERROR(k_layer.forward(r, kv_source, &k));
  Tensor att = r.pool.acquire({x_norm.shape[0], inner, tq});
  const float scale = 1.0f / std::sqrt(static_cast<float>(q.shape[1] / heads));
  {
    LayerTimer timer(r, "attention", q, 0, 4.0 * x_norm.shape[0] * inner * tq * tk);
    BL_RETURN_IF_ERROR(attention(r.ctx, q, k, v, heads, scale, att));
  }
  return out_layer.forward(r, att, y);
}

}  // namespace

Status TransformerBlock::forward(NetRun& r, Tensor& x, const BlockInputs& in) const {
  Tensor n, a;
  BL_RETURN_IF_ERROR(norm1.forward(r, x, &n));
  BL_RETURN_IF_ERROR(attend(r, attn1_q, attn1_k, attn1_v, attn1_out, heads, n, n, &a));
  BL_RETURN_IF_ERROR(add(r.ctx, x, a, x));
  BL_RETURN_IF_ERROR(norm2.forward(r, x, &n));
  // Without a context, MONAI's cross-attention attends to x itself.
  const Tensor& kv = in.context ? *in.context : n;
  BL_RETURN_IF_ERROR(attend(r, attn2_q, attn2_k, attn2_v, attn2_out, heads, n, kv, &a));
  BL_RETURN_IF_ERROR(add(r.ctx, x, a, x));  // a is [N, C, 1] (broadcast) for one context token
  BL_RETURN_IF_ERROR(norm3.forward(r, x, &n));
  Tensor f, g;
  BL_RETURN_IF_ERROR(ff1.forward(r, n, &f));
  std::vector<int64_t> gs = shape_of(f);
  gs[1] /= 2;
  g = r.pool.acquire(gs);
  BL_RETURN_IF_ERROR(geglu_channels(r.ctx, f, g));
  BL_RETURN_IF_ERROR(ff2.forward(r, g, &f));
  return add(r.ctx, x, f, x);
}

Status SpatialTransformer::bind(WeightStore& ws, const std::string& p, int channels, int head_channels,
                                const NetworkSpec& spec) {
  const int heads = channels / head_channels;
  const int inner = heads * head_channels;
  BL_RETURN_IF_ERROR(norm.bind(ws, p + ".norm", channels, spec.norm_num_groups, spec.norm_eps, true));
  BL_RETURN_IF_ERROR(proj_in.bind(ws, p + ".proj_in.conv", channels, inner, 1, true));
  blocks.resize(spec.transformer_num_layers);
  for (int i = 0; i < spec.transformer_num_layers; ++i)
    BL_RETURN_IF_ERROR(blocks[i].bind(ws, p + ".transformer_blocks." + std::to_string(i), inner, heads, head_channels,
                                      spec.cross_attention_dim));
  return proj_out.bind(ws, p + ".proj_out.conv", inner, channels, 1, true);
}

Status SpatialTransformer::forward(NetRun& r, const Tensor& x, const BlockInputs& in, Tensor* y) const {
  Tensor h, t;
  BL_RETURN_IF_ERROR(norm.forward(r, x, false, &h));
  BL_RETURN_IF_ERROR(proj_in.forward(r, h, &t));
  // Tokens stay channels-first: [N, inner, voxels].
  std::vector<int64_t> seq = {t.shape[0], t.shape[1], t.numel() / (t.shape[0] * t.shape[1])};
  Tensor tokens = reshaped(t, seq);
  for (const TransformerBlock& b : blocks) BL_RETURN_IF_ERROR(b.forward(r, tokens, in));
  Tensor out;
  BL_RETURN_IF_ERROR(proj_out.forward(r, reshaped(tokens, shape_of(t)), &out));
  BL_RETURN_IF_ERROR(add(r.ctx, out, x, out));
  *y = out;
  return Status::ok();
}

Status AttentionSlot::bind(WeightStore& ws, const std::string& p, int channels, int head_channels,
                           const NetworkSpec& spec) {
  if (spec.with_conditioning) {
    kind = Transformer;
    return transformer.bind(ws, p, channels, head_channels, spec);
  }
  kind = SelfAttention;
  return self_attention.bind(ws, p, channels, head_channels > 0 ? channels / head_channels : 1, spec);
}

Status AttentionSlot::forward(NetRun& r, const Tensor& x, const BlockInputs& in, Tensor* y) const {
  switch (kind) {
    case SelfAttention: return self_attention.forward(r, x, y);
    case Transformer: return transformer.forward(r, x, in, y);
    default: *y = x; return Status::ok();
  }
}

}  // namespace bl
