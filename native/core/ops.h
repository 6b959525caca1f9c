// The core's ops on fp32 NCDHW tensors. Each checks its arguments and returns a
// Status naming the offending argument with the expected and actual values;
// outputs are written in full or not at all (checks run before any write).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "context.h"
#include "tensor.h"

namespace bl {

// Direct: the flat-tap micro-kernel (any kernel, stride, padding). Winograd: F(2x2x2, 3x3x3), 3x3x3
// stride 1 only (ops/conv3d_winograd.cpp). Gathered: every output of every batch item one lane of a gathered input,
// one matrix product (small volumes; fp32 only). Winograd4: F(4x4x4, 3x3x3), 3x3x3 stride 1, in fp32 also in a bf16 context. Auto:
// Winograd (F(4,3) or F(2,3), winograd_tile) where it applies and pays, else gathered where the flat layout would be
// mostly margin, else direct.
enum class Conv3dAlgorithm { Auto = 0, Direct = 1, Winograd = 2, Gathered = 3, Winograd4 = 4 };

// A convolution's weights packed for the bf16 kernels, kept by a network layer across runs: a network's weights
// do not change, and packing them (rounding, channel pairs, K steps) cost ~10% of a bf16 UNet forward when done
// per call. Filled on first use for the kernels of the context that runs it; repacked if those change.
struct PackedConvWeights {
  // Readers of a made cache hold it shared for their whole call (hold_packed), so the shares of a batch running on
  // their own threads (Network::run) use it together and nobody remakes it underneath them.
  std::shared_mutex mutex;
  const void* kernels = nullptr;  // the Bf16Kernels the data was packed for
  std::vector<uint16_t> data;
  // Winograd: the transformed weights U (and their bf16 pairs after them) of a layer whose volume is small
  // enough that transforming the weights each call costs a good part of the products (ops/conv3d_winograd.cpp).
  const void* winograd_kernels = nullptr;  // the KernelTable the layout was made for
  const void* winograd_bf16 = nullptr;     // the Bf16Kernels, or null for fp32 products
  int winograd_tile = 0;                   // the m of F(m, 3) it was transformed for
  std::vector<float> winograd_u;
  // The fp32 direct convolution's packed weights, where the volume is small enough that packing them each call
  // cost a tenth of it (the gathered path of ops/conv3d.cpp).
  const void* direct_f32_kernels = nullptr;  // the KernelTable they were packed for
  std::vector<float> direct_f32;
};

// The cache held shared for the caller's call, made first under the exclusive lock unless ready() holds. The check is
// repeated after every exclusive turn: another context may have remade the cache for its own kernels in between.
template <class Ready, class Make>
std::shared_lock<std::shared_mutex> hold_packed(PackedConvWeights& packed, Ready ready, Make make) {
  std::shared_lock<std::shared_mutex> shared(packed.mutex);
  while (!ready()) {
    shared.unlock();
    {
      std::unique_lock<std::shared_mutex> exclusive(packed.mutex);
      if (!ready()) make();
    }
    shared.lock();
  }
  return shared;
}

struct Conv3dParams {
  int stride[3] = {1, 1, 1};
  int pad_before[3] = {0, 0, 0};  // per spatial dim (D, H, W)
  int pad_after[3] = {0, 0, 0};   // asymmetric: MONAI's autoencoder downsample pads (0, 1)
  Conv3dAlgorithm algorithm = Conv3dAlgorithm::Auto;
  // Direct convolution: bytes of packed input per chunk of output slices (0: the default, 64 MiB). Results do
  // not depend on it; the op's attribute exists so tests can force many chunks on small inputs.
  int64_t chunk_bytes = 0;
  // Null: weights are packed per call (one-off ops, whose weights may change between calls).
  std::shared_ptr<PackedConvWeights> packed;
};

// x [N, Cin, D, H, W], weight [Cout, Cin, KD, KH, KW], bias [Cout] or null -> y [N, Cout, OD, OH, OW].
Status conv3d_output_shape(const Tensor& x, const Tensor& weight, const Conv3dParams& p, int64_t out_shape[5]);
Status conv3d(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv3dParams& p, Tensor& y);
// Whether conv3d takes Winograd, F(2,3) or F(4,3), for this input and weight (else the direct convolution).
bool conv3d_uses_winograd(const Context& ctx, const Tensor& x, const Tensor& weight, const Conv3dParams& p);

// x [N, C, ...], C divisible by groups; gamma/beta [C] (both or neither). Biased variance, as PyTorch.
Status group_norm(Context& ctx, const Tensor& x, int groups, float eps, const Tensor* gamma, const Tensor* beta,
                  bool fuse_silu, Tensor& y);

Status silu(Context& ctx, const Tensor& x, Tensor& y);

// y = a + b, with b the same shape as a or one value per (batch, channel): [N, C] or [N, C, 1, 1, 1].
Status add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y);

// y = cat(xs, dim=1); every input [N, Ci, ...] with equal N and trailing dims.
Status concat_channels(Context& ctx, const Tensor* xs, int count, Tensor& y);

// ---------------------------------------------------------------------------
// Ops the MONAI networks need (MONAI-COMPAT.md section 6). Activations are
// channels-first everywhere: [N, C, ...spatial] or [N, C, T] for token
// sequences, so a Linear over tokens is a 1x1x1 convolution (conv3d with
// weight [Cout, Cin, 1, 1, 1]) and needs no op of its own.

// AvgPool3d(kernel 2, stride 2): [N, C, D, H, W] -> [N, C, D/2, H/2, W/2] (floor, as PyTorch).
Status avg_pool3d_2x(Context& ctx, const Tensor& x, Tensor& y);

// Nearest-neighbour resize to y's spatial size with PyTorch's legacy 'nearest' rule:
// src = min(floor(dst * (in / out)), in - 1) per dim, the scale computed in float as PyTorch does.
// Covers the x2 upsample and SPADE's resize of the label map to each feature size.
Status resize_nearest(Context& ctx, const Tensor& x, Tensor& y);
// The same for 3 spatial dims, y holding only the output depth rows [row0, row0 + y.D) of a resize to depth
// out_depth (and y's H, W): an upsampled map made a slab at a time.
Status resize_nearest_rows(Context& ctx, const Tensor& x, int64_t out_depth, int64_t row0, Tensor& y);

// LayerNorm over the channel dim of [N, C, T] (each token normalised over its C values),
// biased variance, affine gamma/beta [C] (both or neither).
Status layer_norm_channels(Context& ctx, const Tensor& x, float eps, const Tensor* gamma, const Tensor* beta,
                           Tensor& y);

Status leaky_relu(Context& ctx, const Tensor& x, float negative_slope, Tensor& y);
// GELU with the exact erf form (torch.nn.GELU(approximate='none')).
Status gelu(Context& ctx, const Tensor& x, Tensor& y);
// GEGLU over channels: x [N, 2C, ...] -> y [N, C, ...] = x[:, :C] * gelu(x[:, C:]) (MONAI MLPBlock "GEGLU").
Status geglu_channels(Context& ctx, const Tensor& x, Tensor& y);

// y = x * (1 + gamma) + beta, all the same shape (SPADE's modulation); beta may be null: y = x * (1 + gamma).
Status spade_modulate(Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor* beta, Tensor& y);

// y = x * scale (elementwise; latent scale factors, CFG arithmetic).
Status scale(Context& ctx, const Tensor& x, float factor, Tensor& y);

// Multi-head attention on channels-first sequences: q [N, H*Dh, Tq], k [N, H*Dh, Tk],
// v [N, H*Dv, Tk] -> y [N, H*Dv, Tq]; head h uses channels [h*Dh, (h+1)*Dh).
// softmax(scale * q.k) over keys in fp32 with fp32 accumulation; never materialises the
// full [Tq, Tk] score matrix (online softmax over key blocks, per query block).
Status attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale_qk,
                 Tensor& y);

// Sinusoidal timestep embedding as MONAI/diffusers (flip_sin_to_cos=True, shift 0):
// t [N] -> y [N, dim] = [cos(t * f_k), sin(t * f_k)] with f_k = exp(-ln(10000) k / (dim/2)),
// zero-padded when dim is odd. t holds float timesteps.
Status timestep_embedding(Context& ctx, const Tensor& t, int dim, Tensor& y);

// Embedding lookup on a label map: ids [N, 1, ...] (float32 holding integers in [0, rows)),
// table [rows, E] -> y [N, E, ...]. An id outside the table is a RangeError naming the value.
Status embedding_channels(Context& ctx, const Tensor& ids, const Tensor& table, Tensor& y);

// Element-wise clamp to [lo, hi] (MONAI clamps log-variance to [-30, 20]).
Status clamp(Context& ctx, const Tensor& x, float lo, float hi, Tensor& y);

// y = exp(x * factor) (sigma = exp(logvar / 2)).
Status exp_scaled(Context& ctx, const Tensor& x, float factor, Tensor& y);

// fp16/bf16 <-> fp32 conversion of whole tensors (weights stored as 16-bit).
Status convert_dtype(Context& ctx, const Tensor& x, Tensor& y);

// ---------------------------------------------------------------------------
// Counter-based randomness (ops/random.cpp), bit-identical on every backend and platform.

// Fills float32 `y` (any shape) with N(0, 1) samples: element i is sample number offset + i of the
// stream (seed, stream). Philox4x32-10 with key = (seed lo32, seed hi32) and counter = (block lo32,
// block hi32, stream lo32, stream hi32), block = (offset + i) / 4; each block's words (w0, w1) and
// (w2, w3) give two Box-Muller pairs (r cos, r sin) with u = (w + 0.5) 2^-32, computed in double with
// this file's own log/sin/cos (no libm), rounded once to float. Any subrange regenerates alone.
Status random_normal(Context& ctx, uint64_t seed, uint64_t stream, uint64_t offset, Tensor& y);

// The raw Philox4x32-10 bijection of one counter block under `key`, for known-answer tests: y holds
// 8 floats, word j as y[2j] = w_j >> 16, y[2j + 1] = w_j & 0xffff (exact in float32).
Status philox4x32(Context& ctx, const uint32_t counter[4], const uint32_t key[2], Tensor& y);

}  // namespace bl
