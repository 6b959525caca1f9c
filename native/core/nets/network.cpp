#include "network.h"

#include "autoencoder_kl.h"
#include "diffusion_unet.h"

namespace bl {

Status create_network(const NetworkSpec& spec, WeightStore& weights, std::unique_ptr<Network>* out) {
  std::unique_ptr<Network> net;
  if (spec.is_unet()) BL_RETURN_IF_ERROR(create_diffusion_unet(spec, weights, &net));
  else BL_RETURN_IF_ERROR(create_autoencoder_kl(spec, weights, &net));
  BL_RETURN_IF_ERROR(weights.check_all_used());
  *out = std::move(net);
  return Status::ok();
}

Status list_network_weights(const NetworkSpec& spec, std::vector<WeightStore::Request>* out) {
  WeightStore ws;
  ws.set_listing(true);
  std::unique_ptr<Network> net;
  BL_RETURN_IF_ERROR(create_network(spec, ws, &net));
  *out = ws.requests();
  return Status::ok();
}

Status network_input(const NamedTensors& in, const std::string& entry, const std::string& name, int ndim,
                     bool required, const Tensor** out) {
  auto it = in.find(name);
  if (it == in.end()) {
    *out = nullptr;
    if (required) return Status::range_error(entry + ": input '" + name + "' is required");
    return Status::ok();
  }
  std::string label = entry + " input";
  BL_RETURN_IF_ERROR(check_tensor(it->second, label.c_str(), name.c_str(), ndim));
  *out = &it->second;
  return Status::ok();
}

}  // namespace bl
