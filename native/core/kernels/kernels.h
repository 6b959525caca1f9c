// The per-ISA kernel table. Every op's orchestration (shapes, padding, threads)
// is written once in ops/; only these inner loops differ between ISAs. Each
// table is built from kernels_impl.inc compiled with that ISA's flags.
#pragma once
#include <stdint.h>

#include "../isa_kind.h"

namespace bl {

struct KernelTable {
  Isa isa;
  const char* name;

  // Convolution micro-tile: acc[co * acc_stride + p] = sum_ci sum_tap w[ci][tap][co] * x[ci*ci_stride + tap_off[tap] + p]
  // for co < conv_co_block and p < conv_tile. x may be read up to conv_tile-1 past each tap offset. acc_stride lets
  // a caller store straight into its own rows (Winograd's products per channel) instead of copying a dense tile.
  int conv_co_block;
  int conv_tile;
  void (*conv_tile_fn)(const float* x, const float* w, const int32_t* tap_off, int ntaps, int cin,
                       int64_t ci_stride, float* acc, int64_t acc_stride);
  // The same over the first `vectors` * conv_tile_step positions only (1 <= vectors <= conv_tile / conv_tile_step),
  // bit for bit what conv_tile_fn gives there: Winograd's last micro-tile of a block, whose lanes past the block's
  // tiles would otherwise be products thrown away (160 tiles made 4 tiles of 48: 17% of the products).
  int conv_tile_step;
  void (*conv_tile_part_fn)(const float* x, const float* w, const int32_t* tap_off, int ntaps, int cin,
                            int64_t ci_stride, float* acc, int64_t acc_stride, int vectors);

  void (*silu)(const float* x, float* y, int64_t n);
  void (*add)(const float* a, const float* b, float* y, int64_t n);
  void (*add_scalar)(const float* a, float s, float* y, int64_t n);
  // y = (x - center) * scale + shift, then SiLU when apply_silu != 0 (GroupNorm's normalise-and-affine
  // step, optionally fused). Centering first avoids the cancellation of x*scale - mean*scale when
  // 1/std is large (constant or single-element groups).
  void (*scale_shift)(const float* x, float* y, int64_t n, float center, float scale, float shift, int apply_silu);
  double (*sum)(const float* x, int64_t n);
  double (*sum_sq_dev)(const float* x, int64_t n, float mean);

  // Element-wise kernels of the MONAI ops (any n; tails go through the vector formula).
  void (*mul_scalar)(const float* x, float s, float* y, int64_t n);
  // y = x > 0 ? x : x * slope (torch.nn.LeakyReLU).
  void (*leaky_relu)(const float* x, float slope, float* y, int64_t n);
  // y = x * Phi(x), Phi the normal CDF (exact-erf GELU): a minimax polynomial for |x| < 1 and
  // exp(-x^2/2) times a rational for |x| >= 1, about 4e-7 relative worst case over all floats.
  void (*gelu)(const float* x, float* y, int64_t n);
  // y = a * gelu(gate) (GEGLU).
  void (*geglu)(const float* a, const float* gate, float* y, int64_t n);
  // y = x * (1 + gamma) + beta (SPADE modulation), all of length n; beta may be null (y = x * (1 + gamma)).
  void (*modulate)(const float* x, const float* gamma, const float* beta, float* y, int64_t n);
  // y = min(max(x, lo), hi); NaN stays NaN.
  void (*clamp)(const float* x, float lo, float hi, float* y, int64_t n);
  // y = exp(x * factor) over the whole float range (inf above ~88.72, gradual underflow, NaN kept).
  void (*exp_scaled)(const float* x, float factor, float* y, int64_t n);

  // LayerNorm over the channels of a channels-first slab x[c * tokens + t], for tokens t0 <= t < t1:
  // biased variance, statistics accumulated in double, affine gamma/beta [channels] or null.
  void (*layer_norm_cf)(const float* x, float* y, int64_t channels, int64_t tokens, int64_t t0, int64_t t1,
                        const float* gamma, const float* beta, float eps);

  // Attention micro-kernels, all vectorised along queries (attn_tile queries per call).
  // attn_scores:     s[r * s_stride + i] = sum_c kpack[c * attn_group + r] * qpack[c * q_stride + i]
  //                  for r < attn_group keys, i < attn_tile queries, c < dh.
  // attn_softmax:    one online-softmax step over `rows` score rows of `width` queries (a multiple of
  //                  attn_tile), m the running extreme of the raw scores (max for scale >= 0, min
  //                  otherwise): per query, m' = extreme(m, s_r), alpha = exp((m - m') * scale),
  //                  s <- exp((s - m') * scale), l <- l*alpha + sum_r s; m, l, alpha are [width].
  //                  first != 0 starts the recurrence (m, l read as empty, alpha = 0).
  // attn_accumulate: o[r * o_stride + i] = o[r * o_stride + i] * alpha[i] + sum_j vpack[j * attn_group + r] *
  //                  p[j * p_stride + i] for r < attn_group value channels, j < rows keys, i < attn_tile.
  int attn_tile;
  int attn_group;
  void (*attn_scores)(const float* kpack, const float* qpack, int64_t dh, int64_t q_stride, float* s,
                      int64_t s_stride);
  void (*attn_softmax)(float* s, int64_t rows, int64_t s_stride, int64_t width, float scale, float* m, float* l,
                       float* alpha, int first);
  void (*attn_accumulate)(const float* vpack, const float* p, int64_t rows, int64_t p_stride, const float* alpha,
                          float* o, int64_t o_stride);

  // Peak-rate probe: independent FMA chains, peak_flops_per_iter flops per iteration.
  float (*peak_probe)(int64_t iters);
  int peak_flops_per_iter;
};

// Null when the kernels for `isa` are not compiled into this build.
const KernelTable* kernels_for(Isa isa);

// Defined by the per-ISA translation units.
const KernelTable* kernels_scalar();
const KernelTable* kernels_avx2();
const KernelTable* kernels_avx512();
const KernelTable* kernels_simd128();

}  // namespace bl
