#include "network.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

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

uint64_t Network::buffer_allocations() const {
  uint64_t n = pool_.allocations();
  for (const auto& p : share_pools_) n += p->allocations();
  return n;
}

size_t Network::buffer_bytes() const {
  size_t n = pool_.bytes_held();
  for (const auto& p : share_pools_) n += p->bytes_held();
  return n;
}

int Network::batch_shares(const Context& ctx, const NamedTensors& inputs, int64_t* batch) const {
  const int threads = ctx.threads();
  if (threads <= 1 || !ctx.split_batch() || weight_bytes_ > kSplitWeightBytes) return 1;
  // The batch is the largest first dimension; every input must be a contiguous float32 tensor whose first dimension
  // is the batch or 1 (broadcast), else the call runs whole and reports its own errors.
  int64_t n = 1;
  for (const auto& kv : inputs) {
    const Tensor& t = kv.second;
    if (t.ndim < 1 || t.dtype != DType::F32 || !t.is_contiguous() || !t.data) return 1;
    n = std::max(n, t.shape[0]);
  }
  for (const auto& kv : inputs)
    if (kv.second.shape[0] != 1 && kv.second.shape[0] != n) return 1;
  // The most shares that divide both the batch and the threads: a batch of 2 on 4 threads runs as 2 shares of 2
  // threads; on 3 threads it runs whole.
  int shares = 1;
  for (int s = 2; s <= threads; ++s)
    if (n % s == 0 && threads % s == 0) shares = s;
  *batch = n;
  return shares;
}

Status Network::run(Context& ctx, const std::string& entry, const NamedTensors& inputs, NamedTensors* outputs) {
  int64_t batch = 0;
  const int shares = batch_shares(ctx, inputs, &batch);
  if (shares <= 1) return run_entry(ctx, pool_, entry, inputs, outputs);
  std::vector<Context*> workers;
  BL_RETURN_IF_ERROR(ctx.workers(shares, ctx.threads() / shares, &workers));
  while (static_cast<int>(share_pools_.size()) < shares) share_pools_.emplace_back(new TensorPool());
  const int64_t per = batch / shares;
  std::vector<NamedTensors> in(shares), out(shares);
  for (int i = 0; i < shares; ++i)
    for (const auto& kv : inputs) {
      const Tensor& t = kv.second;
      if (t.shape[0] != batch) {
        in[i][kv.first] = t;
        continue;
      }
      int64_t shape[kMaxDims];
      for (int d = 0; d < t.ndim; ++d) shape[d] = t.shape[d];
      shape[0] = per;
      const int64_t item = t.numel() / batch;
      in[i][kv.first] = Tensor::borrow(t.f32() + i * per * item, DType::F32, shape, t.ndim);
    }
  std::vector<Status> status(shares);
  ctx.pool().parallel_for(shares, [&](int64_t s0, int64_t s1, int) {
    for (int64_t i = s0; i < s1; ++i) status[i] = run_entry(*workers[i], *share_pools_[i], entry, in[i], &out[i]);
  });
  // A share that failed (bad input) is run again whole, so the error names the shapes the caller passed.
  for (const Status& st : status)
    if (!st.is_ok()) return run_entry(ctx, pool_, entry, inputs, outputs);
  for (const auto& kv : out[0]) {
    const Tensor& first = kv.second;
    int64_t shape[kMaxDims];
    for (int d = 0; d < first.ndim; ++d) shape[d] = first.shape[d];
    shape[0] = batch;
    Tensor whole = pool_.acquire(std::vector<int64_t>(shape, shape + first.ndim));
    const size_t share_bytes = first.nbytes();
    for (int i = 0; i < shares; ++i) {
      const auto it = out[i].find(kv.first);
      if (it == out[i].end() || it->second.nbytes() != share_bytes || it->second.shape[0] != per)
        return Status::runtime_error(entry + ": batch share " + std::to_string(i) + " gave output '" + kv.first +
                                     "' another shape");
      std::memcpy(static_cast<char*>(whole.data) + i * share_bytes, it->second.data, share_bytes);
    }
    (*outputs)[kv.first] = whole;
  }
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
