// Winograd F(2x2x2, 3x3x3) and F(4x4x4, 3x3x3) for stride-1 3x3x3 convolutions (conv3d.cpp chooses them by shape).
#pragma once
#include "../ops.h"

namespace bl {

// True when the convolution is one Winograd computes: 3x3x3 kernel, stride 1 (any padding).
bool winograd_applies(const Tensor& weight, const Conv3dParams& p);

// Whether Conv3dAlgorithm::Auto takes Winograd (F(2,3) at least) for these channel counts and this many 2x2x2
// output tiles (all batch items): it needs enough channels for the 3.4x fewer multiplies to outweigh the input and
// output transforms, which cost per channel, not per pair, and enough tiles to outweigh the weight transform
// (min_tiles: winograd_min_tiles).
bool winograd_pays(int64_t cin, int64_t cout, int64_t tiles, int64_t min_tiles = 64);

// The fewest output tiles from which Winograd pays: fewer where a network layer keeps its transformed weights
// (keeps_u) or one thread takes every tile.
int64_t winograd_min_tiles(bool keeps_u, int threads);

// The output tile size m of the Winograd F(m, 3) Conv3dAlgorithm::Auto takes for a convolution that
// winograd_applies to: 4, 2, or 0 for none (the direct or gathered convolution). `out` is the output size (D, H, W)
// per batch item; bf16 products take F(2,3) only. no_fma: the kernels multiply and add in two instructions (wasm
// simd128), so the products cost twice what they do elsewhere and fewer of them pay for more transforming.
// keeps_weights: the caller is a network layer (Conv3dParams::packed), which keeps small transformed weights across
// calls, so bf16 F(2,3) pays on fewer tiles. threads: the context's, which share the tiles (limits that were measured
// with two threads count tiles per pair of threads). bf16_context: fp32 products asked for a bf16 context, whose
// direct convolution runs bf16 (the fp32 F(4,3) it may take instead has to beat that).
int winograd_tile(int64_t cin, int64_t cout, int64_t batch, const int64_t out[3], bool bf16, bool no_fma = false,
                  bool keeps_weights = false, int threads = 2, bool bf16_context = false);

// F(tile x tile x tile, 3x3x3), tile 2 or 4 (4 computes in fp32 whatever ctx's precision, and a bf16 context takes
// it where an fp32 one does: conv3d.cpp). Arguments already checked by conv3d(); y is fully written.
Status conv3d_winograd(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv3dParams& p,
                       int tile, Tensor& y);

}  // namespace bl
