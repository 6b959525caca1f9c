#include "network_spec.h"

#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

namespace bl {

namespace {

Status parse_int_list(const std::string& key, const std::string& value, std::vector<int>* out) {
  out->clear();
  std::stringstream ss(value);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item == "true" || item == "True") { out->push_back(1); continue; }
    if (item == "false" || item == "False") { out->push_back(0); continue; }
    char* end = nullptr;
    long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0')
      return Status::range_error("network spec: field '" + key + "' must be a list of integers, got '" + value + "'");
    out->push_back(static_cast<int>(v));
  }
  return Status::ok();
}

Status parse_int(const std::string& key, const std::string& value, int* out) {
  std::vector<int> v;
  BL_RETURN_IF_ERROR(parse_int_list(key, value, &v));
  if (v.size() != 1) return Status::range_error("network spec: field '" + key + "' must be one integer, got '" + value + "'");
  *out = v[0];
  return Status::ok();
}

Status parse_bool(const std::string& key, const std::string& value, bool* out) {
  int v;
  BL_RETURN_IF_ERROR(parse_int(key, value, &v));
  *out = v != 0;
  return Status::ok();
}

// Expands a single value to one per level, as MONAI's ensure_tuple_rep does.
Status per_level(const std::string& key, std::vector<int>* v, size_t levels, int fallback) {
  // Copy the single value first: assign() may free the storage a reference into v points at.
  const int single = v->empty() ? fallback : (*v)[0];
  if (v->size() <= 1) v->assign(levels, single);
  if (v->size() != levels)
    return Status::range_error("network spec: field '" + key + "' has " + std::to_string(v->size()) +
                               " values, expected one per level (" + std::to_string(levels) + ")");
  return Status::ok();
}

}  // namespace

Status parse_network_spec(const std::string& text, NetworkSpec* out) {
  std::map<std::string, std::string> kv;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) return Status::range_error("network spec: line '" + line + "' is not key=value");
    kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  NetworkSpec s;
  auto it = kv.find("class");
  if (it == kv.end()) return Status::range_error("network spec: field 'class' is missing");
  s.class_name = it->second;
  if (s.class_name == "AutoencoderKL") s.cls = NetworkClass::AutoencoderKL;
  else if (s.class_name == "SPADEAutoencoderKL") s.cls = NetworkClass::SPADEAutoencoderKL;
  else if (s.class_name == "DiffusionModelUNet") s.cls = NetworkClass::DiffusionModelUNet;
  else if (s.class_name == "SPADEDiffusionModelUNet") s.cls = NetworkClass::SPADEDiffusionModelUNet;
  else
    return Status::range_error("network spec: class '" + s.class_name +
                               "' is not supported; expected AutoencoderKL, SPADEAutoencoderKL, DiffusionModelUNet or SPADEDiffusionModelUNet");
  // MONAI GenerativeModels 0.2.3 defaults per class.
  if (s.is_unet()) {
    s.num_channels = {32, 64, 64, 64};
    s.attention_levels = {0, 0, 1, 1};
    s.num_head_channels = {8};
  } else {
    s.num_channels = {32, 64, 64, 64};
    s.attention_levels = {0, 0, 1, 1};
  }
  s.num_res_blocks = {2};

  static const std::set<std::string> known = {
      "class", "spatial_dims", "in_channels", "out_channels", "num_channels", "num_res_blocks", "attention_levels",
      "num_head_channels", "norm_num_groups", "norm_eps", "latent_channels", "with_encoder_nonlocal_attn",
      "with_decoder_nonlocal_attn", "use_convtranspose", "resblock_updown", "with_conditioning",
      "cross_attention_dim", "transformer_num_layers", "num_class_embeds", "upcast_attention", "label_nc",
      "spade_intermediate_channels", "spade_norm_eps", "attention_output_projection", "embedding_rows", "embedding_dim"};
  for (auto& [key, value] : kv) {
    if (!known.count(key)) return Status::range_error("network spec: field '" + key + "' is not supported");
    if (key == "class") continue;
    if (key == "norm_eps" || key == "spade_norm_eps") {
      char* end = nullptr;
      float v = std::strtof(value.c_str(), &end);
      if (*end != '\0' || !(v > 0))
        return Status::range_error("network spec: field '" + key + "' must be a positive number, got '" + value + "'");
      (key == "norm_eps" ? s.norm_eps : s.spade_norm_eps) = v;
    } else if (key == "num_channels") BL_RETURN_IF_ERROR(parse_int_list(key, value, &s.num_channels));
    else if (key == "num_res_blocks") BL_RETURN_IF_ERROR(parse_int_list(key, value, &s.num_res_blocks));
    else if (key == "attention_levels") BL_RETURN_IF_ERROR(parse_int_list(key, value, &s.attention_levels));
    else if (key == "num_head_channels") BL_RETURN_IF_ERROR(parse_int_list(key, value, &s.num_head_channels));
    else if (key == "spatial_dims") BL_RETURN_IF_ERROR(parse_int(key, value, &s.spatial_dims));
    else if (key == "in_channels") BL_RETURN_IF_ERROR(parse_int(key, value, &s.in_channels));
    else if (key == "out_channels") BL_RETURN_IF_ERROR(parse_int(key, value, &s.out_channels));
    else if (key == "norm_num_groups") BL_RETURN_IF_ERROR(parse_int(key, value, &s.norm_num_groups));
    else if (key == "latent_channels") BL_RETURN_IF_ERROR(parse_int(key, value, &s.latent_channels));
    else if (key == "cross_attention_dim") BL_RETURN_IF_ERROR(parse_int(key, value, &s.cross_attention_dim));
    else if (key == "transformer_num_layers") BL_RETURN_IF_ERROR(parse_int(key, value, &s.transformer_num_layers));
    else if (key == "num_class_embeds") BL_RETURN_IF_ERROR(parse_int(key, value, &s.num_class_embeds));
    else if (key == "label_nc") BL_RETURN_IF_ERROR(parse_int(key, value, &s.label_nc));
    else if (key == "spade_intermediate_channels") BL_RETURN_IF_ERROR(parse_int(key, value, &s.spade_intermediate_channels));
    else if (key == "embedding_rows") BL_RETURN_IF_ERROR(parse_int(key, value, &s.embedding_rows));
    else if (key == "embedding_dim") BL_RETURN_IF_ERROR(parse_int(key, value, &s.embedding_dim));
    else if (key == "with_encoder_nonlocal_attn") BL_RETURN_IF_ERROR(parse_bool(key, value, &s.with_encoder_nonlocal_attn));
    else if (key == "with_decoder_nonlocal_attn") BL_RETURN_IF_ERROR(parse_bool(key, value, &s.with_decoder_nonlocal_attn));
    else if (key == "use_convtranspose") BL_RETURN_IF_ERROR(parse_bool(key, value, &s.use_convtranspose));
    else if (key == "resblock_updown") BL_RETURN_IF_ERROR(parse_bool(key, value, &s.resblock_updown));
    else if (key == "with_conditioning") BL_RETURN_IF_ERROR(parse_bool(key, value, &s.with_conditioning));
    else if (key == "upcast_attention") BL_RETURN_IF_ERROR(parse_bool(key, value, &s.upcast_attention));
    else if (key == "attention_output_projection") BL_RETURN_IF_ERROR(parse_bool(key, value, &s.attention_output_projection));
  }

  const size_t levels = s.num_channels.size();
  if (levels == 0) return Status::range_error("network spec: field 'num_channels' must not be empty");
  BL_RETURN_IF_ERROR(per_level("num_res_blocks", &s.num_res_blocks, levels, 2));
  BL_RETURN_IF_ERROR(per_level("attention_levels", &s.attention_levels, levels, 0));
  if (s.is_unet()) BL_RETURN_IF_ERROR(per_level("num_head_channels", &s.num_head_channels, levels, 8));
  if (s.spatial_dims != 3) return Status::range_error("network spec: only spatial_dims 3 is supported, got " + std::to_string(s.spatial_dims));
  for (int c : s.num_channels)
    if (c <= 0 || c % s.norm_num_groups != 0)
      return Status::range_error("network spec: every num_channels value must be a positive multiple of norm_num_groups (" +
                                 std::to_string(s.norm_num_groups) + "), got " + std::to_string(c));
  if (s.use_convtranspose) return Status::range_error("network spec: use_convtranspose is not supported");
  if (s.is_spade() && s.label_nc <= 0) return Status::range_error("network spec: SPADE networks need label_nc > 0");
  if (s.is_unet() && s.with_conditioning && s.cross_attention_dim <= 0)
    return Status::range_error("network spec: with_conditioning needs cross_attention_dim > 0");
  if ((s.embedding_rows > 0) != (s.embedding_dim > 0))
    return Status::range_error("network spec: embedding_rows and embedding_dim must be given together");
  if (s.embedding_dim > 0 && s.embedding_dim != s.in_channels)
    return Status::range_error("network spec: embedding_dim (" + std::to_string(s.embedding_dim) +
                               ") must equal in_channels (" + std::to_string(s.in_channels) + ")");
  *out = s;
  return Status::ok();
}

}  // namespace bl
