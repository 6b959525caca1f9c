// bfloat16 products for `--precision bf16`: convolution inputs and weights rounded to bf16, products
// summed in fp32, on AMX tiles (TDPBF16PS) or AVX512-BF16 dot products (VDPBF16PS); everything else
// (GroupNorm, attention, activations between layers) stays fp32. Both multiply two adjacent bf16 values
// per fp32 lane, so the packed input holds channels 2k and 2k+1 of one position next to each other.
// Which is faster depends on the CPU: on the Sapphire Rapids VM of bench/RESULTS.md VDPBF16PS runs at half
// the fp32 FMA rate (bench/isa_peak.cpp: 66.5 vs 134.9 GFLOP/s per core), so there only AMX beats fp32.
#pragma once
#include <stdint.h>

namespace bl {

struct Bf16Kernels {
  const char* name;
  int conv_co_block;   // output channels per tile
  int conv_tile;       // positions per tile
  int pair_multiple;   // input-channel pairs per K step: packed inputs and weights are zero-padded to a multiple
  bool prefers_direct;  // the products are so cheap that Winograd's transforms would cost more than they save
  // Raw weights [cout][cin][taps] -> this kernel's packed layout, output-channel blocks [b0, b1); each block holds
  // round_up(ceil(cin / 2), pair_multiple) * taps * conv_co_block * 2 bf16 values, zeros past cin and cout.
  void (*pack_weights)(const float* w, int64_t cout, int64_t cin, int64_t taps, uint16_t* w2, int64_t b0, int64_t b1);
  // acc[co * acc_stride + p] = sum over pairs and taps of w2 x x2 for co < conv_co_block, p < conv_tile,
  // where x2[pair * 2 * pair_stride + 2 * (tap_off[tap] + p) + j] holds input channel 2 * pair + j (bf16 bits;
  // tap_off and pair_stride in positions); `pairs` is a multiple of pair_multiple.
  void (*conv_tile_fn)(const uint16_t* x2, const uint16_t* w2, const int32_t* tap_off, int ntaps, int pairs,
                       int64_t pair_stride, float* acc, int64_t acc_stride);
  // The same over the first `vectors` * conv_tile_step positions (as KernelTable's conv_tile_part_fn); null where
  // the kernel has no narrower tile.
  int conv_tile_step;
  void (*conv_tile_part_fn)(const uint16_t* x2, const uint16_t* w2, const int32_t* tap_off, int ntaps, int pairs,
                            int64_t pair_stride, float* acc, int64_t acc_stride, int vectors);
  // out[2i] = bf16(a[i]), out[2i + 1] = bf16(b[i]) (0 when b is null) for i < n: one row of a channel pair,
  // rounded to nearest even by VCVTNE2PS2BF16 (denormal inputs become zero, NaN stays NaN).
  void (*pack_pair_row)(const float* a, const float* b, uint16_t* out, int64_t n);
};

// The AVX512-BF16 pack_pair_row, shared by both kernel sets (every AMX CPU has AVX512-BF16).
void pack_pair_row_avx512bf16(const float* a, const float* b, uint16_t* out, int64_t n);

// The best bf16 kernels of this build and CPU: AMX tiles where the CPU has AMX-BF16 and the OS grants the
// tile state, else AVX512-BF16 dot products; null when neither is there.
const Bf16Kernels* bf16_kernels();

// fp32 -> bf16 bits, bit-exact with c10::BFloat16: round to nearest even, every NaN -> 0x7FC0.
inline uint16_t f32_to_bf16(float f) {
  uint32_t x;
  __builtin_memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0u;
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

// src channels src_stride apart, fp32 -> dst [ceil(channels / 2)][stride][2] bf16, an odd last channel paired
// with zeros. Positions [0, n) of each channel are converted; the rest of dst is left as it is.
void pack_bf16_pairs(const float* src, int64_t channels, int64_t src_stride, int64_t stride, int64_t n, uint16_t* dst,
                     int64_t c0, int64_t c1);

// Raw weights [cout][cin][taps] -> bf16 [blocks][ceil(cin / 2)][taps][co_block][2] (the AVX512-BF16 layout).
void pack_bf16_weights_pairs_raw(const float* w, int64_t cout, int64_t cin, int64_t taps, int co_block, uint16_t* w2,
                                 int64_t b0, int64_t b1);

// Packed fp32 weights [blocks][channels][taps][co_block] -> bf16 [blocks][ceil(channels / 2)][taps][co_block][2]
// (the pair layout the bf16 tile reads), an odd last channel paired with zeros; blocks [b0, b1).
void pack_bf16_weight_pairs(const float* w, int64_t channels, int64_t taps, int co_block, uint16_t* w2, int64_t b0,
                            int64_t b1);

}  // namespace bl
