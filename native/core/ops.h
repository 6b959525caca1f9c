// The core's ops on fp32 NCDHW tensors. Each checks its arguments and returns a
// Status naming the offending argument with the expected and actual values;
// outputs are written in full or not at all (checks run before any write).
#pragma once
#include <cstdint>

#include "context.h"
#include "tensor.h"

namespace bl {

struct Conv3dParams {
  int stride[3] = {1, 1, 1};
  int pad_before[3] = {0, 0, 0};  // per spatial dim (D, H, W)
  int pad_after[3] = {0, 0, 0};   // asymmetric: MONAI's autoencoder downsample pads (0, 1)
};

// x [N, Cin, D, H, W], weight [Cout, Cin, KD, KH, KW], bias [Cout] or null -> y [N, Cout, OD, OH, OW].
Status conv3d_output_shape(const Tensor& x, const Tensor& weight, const Conv3dParams& p, int64_t out_shape[5]);
Status conv3d(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv3dParams& p, Tensor& y);

// x [N, C, ...], C divisible by groups; gamma/beta [C] (both or neither). Biased variance, as PyTorch.
Status group_norm(Context& ctx, const Tensor& x, int groups, float eps, const Tensor* gamma, const Tensor* beta,
                  bool fuse_silu, Tensor& y);

Status silu(Context& ctx, const Tensor& x, Tensor& y);

// y = a + b, with b the same shape as a or one value per (batch, channel): [N, C] or [N, C, 1, 1, 1].
Status add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y);

// y = cat(xs, dim=1); every input [N, Ci, ...] with equal N and trailing dims.
Status concat_channels(Context& ctx, const Tensor* xs, int count, Tensor& y);

}  // namespace bl
