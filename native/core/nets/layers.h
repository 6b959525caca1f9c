// Weight-carrying layers of the MONAI networks, each bound to its checkpoint
// keys (GenerativeModels 0.2.3 names) and run with the core's ops. A forward
// allocates its output from the network's TensorPool.
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "../context.h"
#include "../ops.h"
#include "tensor_pool.h"
#include "weight_store.h"

namespace bl {

// Per-layer wall time of one run, kept when BRAIN_LDM_PROFILE is set (printed to stderr after the run,
// heaviest first), to show where a forward's time goes without an external profiler.
class LayerProfile {
 public:
  static bool enabled();
  void add(const std::string& label, double seconds, double flops);
  void print(const std::string& title) const;

 private:
  struct Entry { double seconds = 0, flops = 0; int calls = 0; };
  std::map<std::string, Entry> entries_;
};

struct NetRun {
  Context& ctx;
  TensorPool& pool;
  LayerProfile* profile = nullptr;
};

// One network run's NetRun, with a LayerProfile that is printed when the run ends (only when
// BRAIN_LDM_PROFILE is set).
class ProfiledRun {
 public:
  ProfiledRun(Context& ctx, TensorPool& pool, std::string title)
      : run_{ctx, pool, LayerProfile::enabled() ? &profile_ : nullptr}, title_(std::move(title)) {}
  ~ProfiledRun() { if (run_.profile) profile_.print(title_); }
  NetRun& run() { return run_; }

 private:
  LayerProfile profile_;
  NetRun run_;
  std::string title_;
};

// Times one layer call into r.profile when profiling.
class LayerTimer {
 public:
  LayerTimer(NetRun& r, const char* kind, const Tensor& x, int cout = 0, double flops = 0);
  ~LayerTimer();

 private:
  NetRun& r_;
  std::string label_;
  double flops_;
  std::chrono::steady_clock::time_point start_;
};

// Same memory, new contiguous shape (element count must match).
Tensor reshaped(const Tensor& t, const std::vector<int64_t>& shape);
// [N, C, T...] viewed as [N, C, T, 1, 1] (or any rank >= 2 flattened to 5-D) for the 3-D kernels.
Tensor as_ncdhw(const Tensor& t);
std::vector<int64_t> shape_of(const Tensor& t);

// Upsampled maps above `above` bytes are convolved in slabs of about `bytes` (input and output rows together;
// 4 rows at least). 64 MB: slab buffers that big stay in the pool for good (192 MB held 200 MB more at the SPADE
// decoder's peak for no speed). BRAIN_LDM_UPSAMPLE_SLAB_ABOVE and BRAIN_LDM_UPSAMPLE_SLAB_BYTES (read when a
// network is built) override them, so the specs can take the slab path, with many slabs, on small maps.
struct UpsampleSlabs {
  int64_t above = int64_t(256) << 20;
  int64_t bytes = int64_t(64) << 20;
  static UpsampleSlabs from_env();
};

// MONAI Convolution (keys <prefix>.weight/.bias); also a Linear on channels-first
// tensors when bound with k = 1 from a [out, in] weight.

struct ConvLayer {
  Tensor weight, bias;
  bool has_bias = false;
  int cin = 0, cout = 0, k = 1;
  Conv3dParams params;
  Status bind(WeightStore& ws, const std::string& prefix, int cin, int cout, int k, bool with_bias, int stride = 1,
              int pad_before = -1, int pad_after = -1);
  // y has x's rank; for rank < 5 the trailing dims are treated as positions.
  Status forward(NetRun& r, const Tensor& x, Tensor* y) const;
  // The same convolution as `blocks` layers over consecutive slices of the output channels (views of these
  // weights, each with its own packed-weight cache): a caller that consumes the output a slice at a time never
  // holds all of it.
  Status split_output_channels(int blocks, std::vector<ConvLayer>* out) const;
  // The convolution of x upsampled 2x (nearest), as an autoencoder's Upsample runs it; where the upsampled map
  // is above slabs.above bytes it is never made whole, only a slab of depth rows at a time.
  Status forward_upsampled2x(NetRun& r, const Tensor& x, const UpsampleSlabs& slabs, Tensor* y) const;
};


struct GroupNormLayer {
  Tensor weight, bias;
  bool affine = true;
  int groups = 32;
  float eps = 1e-6f;
  Status bind(WeightStore& ws, const std::string& prefix, int channels, int groups, float eps, bool affine);
  // overwrite_input: y is x (the caller no longer needs x), saving one activation map.
  Status forward(NetRun& r, const Tensor& x, bool fuse_silu, Tensor* y, bool overwrite_input = false) const;
};

struct LayerNormLayer {
  Tensor weight, bias;
  float eps = 1e-5f;
  Status bind(WeightStore& ws, const std::string& prefix, int channels);
  Status forward(NetRun& r, const Tensor& x, Tensor* y) const;
};

// SPADE norms over maps above kSpadeBlockAbove bytes make gamma and beta in up to kSpadeBlocks slices of
// channels. BRAIN_LDM_SPADE_SLICE_ABOVE (bytes, read when a network is built) overrides the threshold, so the
// specs can take the sliced path on small maps.
constexpr int kSpadeBlocks = 4;
constexpr int64_t kSpadeBlockAbove = int64_t(256) << 20;

// The normalisation in front of a convolution: GroupNorm, or SPADE
// (param-free norm, then x * (1 + gamma(seg)) + beta(seg)).
struct NormLayer {
  GroupNormLayer group_norm;
  bool spade = false;
  ConvLayer mlp_shared, mlp_gamma, mlp_beta;
  std::vector<ConvLayer> mlp_gamma_blocks, mlp_beta_blocks;  // the same, by slices of 32 output channels
  std::vector<ConvLayer> mlp_gamma_wide_blocks, mlp_beta_wide_blocks;  // by slices of 64 (Winograd's minimum)
  int64_t slice_above = kSpadeBlockAbove;
  Status bind_group(WeightStore& ws, const std::string& prefix, int channels, int groups, float eps);
  // param_free_affine: SPADEDiffusionModelUNet's param-free norm is an affine GroupNorm with keys
  // <prefix>.param_free_norm.N.*; the SPADE autoencoder's has no parameters (eps 1e-5).
  Status bind_spade(WeightStore& ws, const std::string& prefix, int channels, int groups, float eps,
                    bool param_free_affine, int label_nc, int hidden);
  Status forward(NetRun& r, const Tensor& x, const Tensor* seg, bool fuse_silu, Tensor* y, bool overwrite_input = false) const;
};

}  // namespace bl
