// A MONAI network built from its constructor arguments and weights, run by
// named entry points: autoencoders have "encode" (x -> z_mu, z_sigma) and
// "decode" (z [, seg] -> out); UNets have "forward" (x, timesteps [, context]
// [, seg] [, class_labels] -> out). One graph for every backend: the native
// addon, CUDA and wasm builds differ only in the kernels behind the ops.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../context.h"
#include "network_spec.h"
#include "tensor_pool.h"
#include "weight_store.h"

namespace bl {

using NamedTensors = std::map<std::string, Tensor>;

class Network {
 public:
  virtual ~Network() = default;
  virtual std::vector<std::string> entries() const = 0;
  // Outputs come from the network's pool; they return to it when released.
  virtual Status run(Context& ctx, const std::string& entry, const NamedTensors& inputs, NamedTensors* outputs) = 0;
  const NetworkSpec& spec() const { return spec_; }
  uint64_t buffer_allocations() const { return pool_.allocations(); }
  size_t buffer_bytes() const { return pool_.bytes_held(); }

 protected:
  explicit Network(const NetworkSpec& spec) : spec_(spec) {}
  NetworkSpec spec_;
  TensorPool pool_;
};

// Constructs a network class and binds its weights.
template <class Net>
Status build_network(const NetworkSpec& spec, WeightStore& ws, std::unique_ptr<Network>* out) {
  auto net = std::make_unique<Net>(spec);
  BL_RETURN_IF_ERROR(net->bind(ws));
  *out = std::move(net);
  return Status::ok();
}

// Binds every weight the graph needs (errors name key and both shapes) and
// rejects keys it does not use.
Status create_network(const NetworkSpec& spec, WeightStore& weights, std::unique_ptr<Network>* out);

// Every weight key the network of `spec` binds, with the shape it expects, in binding order (the graph is
// built once with zero weights; its memory is released before returning).
Status list_network_weights(const NetworkSpec& spec, std::vector<WeightStore::Request>* out);

// The named input `name`, checked to be float32 with `ndim` dims (any when < 0); null if optional and absent.
Status network_input(const NamedTensors& in, const std::string& entry, const std::string& name, int ndim,
                     bool required, const Tensor** out);

}  // namespace bl
