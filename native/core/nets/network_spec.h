// The constructor arguments of a MONAI network, as the graph needs them.
// TypeScript turns a bundle's model.json into the line-based text this parses
// ("key=value" per line, lists comma-separated), so the core needs no JSON
// library; every field absent from the text takes MONAI GenerativeModels
// 0.2.3's default for that class.
#pragma once
#include <string>
#include <vector>

#include "../status.h"

namespace bl {

enum class NetworkClass { AutoencoderKL, SPADEAutoencoderKL, DiffusionModelUNet, SPADEDiffusionModelUNet };

struct NetworkSpec {
  NetworkClass cls = NetworkClass::AutoencoderKL;
  std::string class_name;
  int spatial_dims = 3;
  int in_channels = 1;
  int out_channels = 1;
  std::vector<int> num_channels;
  std::vector<int> num_res_blocks;
  std::vector<int> attention_levels;   // 0/1 per level
  std::vector<int> num_head_channels;  // per level (UNet); 0 = unused
  int norm_num_groups = 32;
  float norm_eps = 1e-6f;
  // Autoencoders
  int latent_channels = 3;
  bool with_encoder_nonlocal_attn = true;
  bool with_decoder_nonlocal_attn = true;
  bool use_convtranspose = false;
  // UNets
  bool resblock_updown = false;
  bool with_conditioning = false;
  int cross_attention_dim = 0;  // 0 = none
  int transformer_num_layers = 1;
  int num_class_embeds = 0;     // 0 = none
  bool upcast_attention = false;
  // SPADE
  int label_nc = 0;
  int spade_intermediate_channels = 128;
  // SPADEAutoencoderKL's parameter-free GroupNorm eps: GenerativeModels 0.2.3 leaves torch's 1e-5,
  // MONAI core passes norm_eps (the importer records which).
  float spade_norm_eps = 1e-5f;
  // MONAI core applies the attention block's output projection (include_fc); GenerativeModels never does.
  bool attention_output_projection = false;
  // Thesis EmbeddingWrapper around the autoencoder: nn.Embedding(rows, dim) on the raw label map.
  int embedding_rows = 0;
  int embedding_dim = 0;

  bool is_spade() const { return cls == NetworkClass::SPADEAutoencoderKL || cls == NetworkClass::SPADEDiffusionModelUNet; }
  bool is_unet() const { return cls == NetworkClass::DiffusionModelUNet || cls == NetworkClass::SPADEDiffusionModelUNet; }
};

Status parse_network_spec(const std::string& text, NetworkSpec* out);

}  // namespace bl
