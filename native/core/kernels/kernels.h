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

  // Convolution micro-tile: acc[co][p] = sum_ci sum_tap w[ci][tap][co] * x[ci*ci_stride + tap_off[tap] + p]
  // for co < conv_co_block and p < conv_tile. x may be read up to conv_tile-1 past each tap offset.
  int conv_co_block;
  int conv_tile;
  void (*conv_tile_fn)(const float* x, const float* w, const int32_t* tap_off, int ntaps, int cin,
                       int64_t ci_stride, float* acc);

  void (*silu)(const float* x, float* y, int64_t n);
  void (*add)(const float* a, const float* b, float* y, int64_t n);
  void (*add_scalar)(const float* a, float s, float* y, int64_t n);
  // y = (x - center) * scale + shift, then SiLU when apply_silu != 0 (GroupNorm's normalise-and-affine
  // step, optionally fused). Centering first avoids the cancellation of x*scale - mean*scale when
  // 1/std is large (constant or single-element groups).
  void (*scale_shift)(const float* x, float* y, int64_t n, float center, float scale, float shift, int apply_silu);
  double (*sum)(const float* x, int64_t n);
  double (*sum_sq_dev)(const float* x, int64_t n, float mean);

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
