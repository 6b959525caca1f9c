// bfloat16 products for `--precision bf16`: convolution inputs and weights rounded to bf16, products
// summed in fp32 (AVX512-BF16 vdpbf16ps), everything else (GroupNorm, attention, activations between
// layers) stays fp32. The layouts here are the fp32 convolution's with input channels taken in pairs:
// a vdpbf16ps multiplies two adjacent bf16 values per fp32 lane, so channels 2k and 2k+1 of one
// position sit next to each other.
#pragma once
#include <stdint.h>

namespace bl {

struct Bf16Kernels {
  const char* name;
  int conv_co_block;  // same tile as the fp32 kernels of the ISA it belongs to
  int conv_tile;
  // acc[co][p] = sum_pair sum_tap sum_j w2[pair][tap][co][j] * x2[pair * 2 * pair_stride + 2 * (tap_off[tap] + p) + j]
  // for co < conv_co_block, p < conv_tile (x2 and w2 bf16 bits; tap_off and pair_stride in positions).
  void (*conv_tile_fn)(const uint16_t* x2, const uint16_t* w2, const int32_t* tap_off, int ntaps, int pairs,
                    int64_t pair_stride, float* acc);
};

// Null when this build or CPU has no bf16 dot-product kernels (they need AVX512-BF16).
const Bf16Kernels* bf16_kernels();

// fp32 -> bf16 bits, bit-exact with c10::BFloat16: round to nearest even, every NaN -> 0x7FC0.
inline uint16_t f32_to_bf16(float f) {
  uint32_t x;
  __builtin_memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0u;
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

// src [channels][stride] fp32 -> dst [ceil(channels / 2)][stride][2] bf16, an odd last channel paired
// with zeros. Positions [0, n) of each channel are converted; the rest of dst is left as it is.
void pack_bf16_pairs(const float* src, int64_t channels, int64_t stride, int64_t n, uint16_t* dst, int64_t c0,
                     int64_t c1);

// Packed fp32 weights [blocks][channels][taps][co_block] -> bf16 [blocks][ceil(channels / 2)][taps][co_block][2]
// (the pair layout the bf16 tile reads), an odd last channel paired with zeros; blocks [b0, b1).
void pack_bf16_weight_pairs(const float* w, int64_t channels, int64_t taps, int co_block, uint16_t* w2, int64_t b0,
                            int64_t b1);

}  // namespace bl
