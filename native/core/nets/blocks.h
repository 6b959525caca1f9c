// The blocks of MONAI GenerativeModels 0.2.3's autoencoders and UNets, named
// after the modules they port (generative/networks/nets/autoencoderkl.py,
// diffusion_model_unet.py, spade_*.py), bound to the same key paths.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers.h"
#include "network_spec.h"

namespace bl {

// Inputs shared by every block of one forward pass.
struct BlockInputs {
  const Tensor* seg = nullptr;      // SPADE label map [N, label_nc, ...]
  const Tensor* emb = nullptr;      // UNet time (+class) embedding [Be, 4 * C0], Be = 1 or N
  const Tensor* context = nullptr;  // cross-attention context, channels-first [N, D, T]
};

// Autoencoder ResBlock: norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, plus the input
// (through a 1x1x1 nin_shortcut when channels change). SPADE decoders use SPADE norms.
struct AeResBlock {
  NormLayer norm1, norm2;
  ConvLayer conv1, conv2, nin_shortcut;
  bool has_shortcut = false;
  Status bind(WeightStore& ws, const std::string& prefix, int in, int out, const NetworkSpec& spec, bool spade);
  // x_is_scratch: the caller hands x over (moved in, no other reference), so a block with a shortcut may
  // overwrite it once the shortcut has read it, and x's memory is free once norm1's output is consumed.
  Status forward(NetRun& r, Tensor x, const BlockInputs& in, Tensor* y, bool x_is_scratch = false) const;
};

// Self-attention over voxels (GroupNorm, q/k/v Linear with bias, softmax(q k^T / sqrt(C/heads)) v,
// + input). GenerativeModels declares proj_attn but never applies it; MONAI core applies out_proj.
struct AttentionBlock {
  GroupNormLayer norm;
  ConvLayer to_q, to_k, to_v, proj;
  int heads = 1;
  bool apply_proj = false;
  Status bind(WeightStore& ws, const std::string& prefix, int channels, int heads, const NetworkSpec& spec);
  Status forward(NetRun& r, const Tensor& x, Tensor* y) const;
};

// UNet ResnetBlock: norm1 -> SiLU -> [nearest x2 | avgpool /2 on both paths] -> conv1
// -> + time_emb_proj(SiLU(emb)) -> norm2 -> SiLU -> conv2, plus the skip.
struct ResnetBlock {
  NormLayer norm1, norm2;
  ConvLayer conv1, conv2, skip_connection;
  Tensor time_w, time_b;  // time_emb_proj Linear [out, temb]
  bool has_skip = false, up = false, down = false;
  int out_channels = 0;
  Status bind(WeightStore& ws, const std::string& prefix, int in, int out, int temb, bool up, bool down,
              const NetworkSpec& spec, bool spade);
  Status forward(NetRun& r, const Tensor& x, const BlockInputs& in, Tensor* y) const;
};

// BasicTransformerBlock: self-attention, cross-attention on the context, GEGLU feed-forward,
// each after a LayerNorm and added to the stream.
struct TransformerBlock {
  LayerNormLayer norm1, norm2, norm3;
  ConvLayer attn1_q, attn1_k, attn1_v, attn1_out;
  ConvLayer attn2_q, attn2_k, attn2_v, attn2_out;
  ConvLayer ff1, ff2;
  int heads = 1;
  Status bind(WeightStore& ws, const std::string& prefix, int channels, int heads, int head_dim, int context_dim);
  Status forward(NetRun& r, Tensor& x, const BlockInputs& in) const;  // updates x in place
};

// SpatialTransformer: GroupNorm -> proj_in (1x1x1) -> transformer blocks over voxels -> proj_out -> + input.
struct SpatialTransformer {
  GroupNormLayer norm;
  ConvLayer proj_in, proj_out;
  std::vector<TransformerBlock> blocks;
  Status bind(WeightStore& ws, const std::string& prefix, int channels, int head_channels, const NetworkSpec& spec);
  Status forward(NetRun& r, const Tensor& x, const BlockInputs& in, Tensor* y) const;
};

// The attention slot after a UNet resnet: none, AttentionBlock or SpatialTransformer.
struct AttentionSlot {
  enum Kind { None, SelfAttention, Transformer } kind = None;
  AttentionBlock self_attention;
  SpatialTransformer transformer;
  Status bind(WeightStore& ws, const std::string& prefix, int channels, int head_channels, const NetworkSpec& spec);
  Status forward(NetRun& r, const Tensor& x, const BlockInputs& in, Tensor* y) const;
};

}  // namespace bl
