// Winograd F(2x2x2, 3x3x3) for stride-1 3x3x3 convolutions (conv3d.cpp chooses it by shape).
#pragma once
#include "../ops.h"

namespace bl {

// True when the convolution is one F(2,3) computes: 3x3x3 kernel, stride 1 (any padding).
bool winograd_applies(const Tensor& weight, const Conv3dParams& p);

// Whether Conv3dAlgorithm::Auto takes Winograd for these channel counts and this many 2x2x2 output tiles (all
// batch items): it needs enough channels for the 3.4x fewer multiplies to outweigh the input and output
// transforms, which cost per channel, not per pair, and enough tiles to outweigh the weight transform.
bool winograd_pays(int64_t cin, int64_t cout, int64_t tiles);

// Arguments already checked by conv3d(); y is fully written.
Status conv3d_winograd(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv3dParams& p,
                       Tensor& y);

}  // namespace bl
