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
  //
  // Where the context has several threads and the batch divides among them, each thread runs its own share of the
  // batch (every input whose first dimension is the batch, sliced; the others whole) through the whole graph on a
  // one-thread context (Context::worker), and the outputs are put back together. Batch items are independent in
  // every network here, so the split changes no item's arithmetic that depends on another's; a thread then reads
  // only activations it wrote itself. Threads that shared every op's work handed each activation from one core to
  // the other between ops, and on the 2-core EPYC VM, in the minutes its two vCPUs sat on different dies (a cache
  // line's round trip 330 ns against 55), that traffic took the default UNet's bf16 forward (batch 2) from ~100 to
  // ~130 ms; two one-thread runs side by side took their one-thread time in either kind of minute (bench/RESULTS.md).
  Status run(Context& ctx, const std::string& entry, const NamedTensors& inputs, NamedTensors* outputs);
  const NetworkSpec& spec() const { return spec_; }
  uint64_t buffer_allocations() const;
  size_t buffer_bytes() const;
  // The weights' bytes (build_network records them; run() splits batches only for networks up to kSplitWeightBytes).
  void set_weight_bytes(size_t bytes) { weight_bytes_ = bytes; }
  // Each share streams the weights itself, makes its own per-call transformed weights (Winograd's U above
  // kKeepUBytes) and has its own scratch: on the thesis-size UNet (2.2 GB of weights, batch 2 at 24x32x24, the
  // 2-core EPYC VM) the split took a forward from 6.1 to 7.3 s (bf16) and 7.1 to 9.4 s (fp32), peak RSS from 3.5 to
  // 4.5-5.0 GiB, past PyTorch's 4.4. The default-size UNet (67 MB) gains from it; the shipped generator's networks
  // are 1-8 MB.
  static constexpr size_t kSplitWeightBytes = size_t(256) << 20;

 protected:
  explicit Network(const NetworkSpec& spec) : spec_(spec) {}
  // One run of `entry` on ctx, its tensors from `pool`.
  virtual Status run_entry(Context& ctx, TensorPool& pool, const std::string& entry, const NamedTensors& inputs,
                           NamedTensors* outputs) = 0;
  NetworkSpec spec_;

 private:
  // How many shares run() splits this call's batch into (1: no split).
  int batch_shares(const Context& ctx, const NamedTensors& inputs, int64_t* batch) const;
  TensorPool pool_;
  size_t weight_bytes_ = 0;
  std::vector<std::unique_ptr<TensorPool>> share_pools_;  // one per batch share, kept so steps reuse buffers
};

// Constructs a network class and binds its weights.
template <class Net>
Status build_network(const NetworkSpec& spec, WeightStore& ws, std::unique_ptr<Network>* out) {
  auto net = std::make_unique<Net>(spec);
  BL_RETURN_IF_ERROR(net->bind(ws));
  net->set_weight_bytes(ws.bytes());
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
