// The AMX convolution tile for precision bf16 (compiled with -mamx-tile -mamx-bf16; chosen at run time only
// where the CPU has AMX-BF16 and Linux grants this process the tile state). One call computes 32 output channels
// x 32 positions in four 16x16 fp32 accumulator tiles: per 32 input channels and tap, two weight tiles (A: 16
// output channels x 32 input channels) and two input tiles (B: 16 channel pairs x 16 positions, the pair layout
// of bf16.h read with a row stride of one channel pair) feed four TDPBF16PS, 8192 multiply-adds each.
//
// Written by hand because the libraries that have AMX convolutions (oneDNN) bring their own graph and memory
// plan; only this inner product differs from the AVX512-BF16 tile, the orchestration is conv3d.cpp's.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "bf16.h"

namespace bl {

namespace {

constexpr int kCo = 32;      // output channels per call: two A tiles of 16 rows
constexpr int kTile = 32;    // positions per call: two B tiles of 16 columns
constexpr int kPairs = 16;   // channel pairs per K step: one tile row of 64 bytes holds 32 bf16

struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// The tile configuration is per thread; the pool's threads keep theirs between calls.
void configure_tiles() {
  static thread_local bool configured = false;
  if (configured) return;
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  configured = true;
}

void conv_tile_amx(const uint16_t* x2, const uint16_t* w2, const int32_t* tap_off, int ntaps, int pairs,
                   int64_t pair_stride, float* acc, int64_t acc_stride) {
  configure_tiles();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  const int64_t row_bytes = 4 * pair_stride;  // one channel pair further in x2
  for (int k = 0; k < pairs; k += kPairs) {
    const uint16_t* xk = x2 + 2 * k * pair_stride;
    for (int t = 0; t < ntaps; ++t) {
      const uint16_t* xb = xk + 2 * static_cast<int64_t>(tap_off[t]);
      _tile_loadd(6, xb, row_bytes);        // positions 0..15
      _tile_loadd(7, xb + 32, row_bytes);   // positions 16..31
      _tile_loadd(4, w2, 64);               // output channels 0..15
      _tile_loadd(5, w2 + 16 * 32, 64);     // output channels 16..31
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
      w2 += kCo * 2 * kPairs;
    }
  }
  _tile_stored(0, acc, acc_stride * 4);
  _tile_stored(1, acc + 16, acc_stride * 4);
  _tile_stored(2, acc + 16 * acc_stride, acc_stride * 4);
  _tile_stored(3, acc + 16 * acc_stride + 16, acc_stride * 4);
}

// [block][K step][tap][32 output channels][32 input channels]: one weight tile pair per (K step, tap).
void pack_weights(const float* w, int64_t cout, int64_t cin, int64_t taps, uint16_t* w2, int64_t b0, int64_t b1) {
  const int64_t steps = ((cin + 1) / 2 + kPairs - 1) / kPairs;
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t s = 0; s < steps; ++s)
      for (int64_t t = 0; t < taps; ++t)
        for (int c = 0; c < kCo; ++c)
          for (int i = 0; i < 2 * kPairs; ++i) {
            const int64_t co = b * kCo + c, ci = s * 2 * kPairs + i;
            w2[(((b * steps + s) * taps + t) * kCo + c) * 2 * kPairs + i] =
                co < cout && ci < cin ? f32_to_bf16(w[(co * cin + ci) * taps + t]) : 0;
          }
}

// No narrower tile: Winograd, its only user, takes the AVX512-BF16 layout (pair_multiple 1).
const Bf16Kernels kAmx = {"amx-bf16", kCo, kTile, kPairs, true, pack_weights, conv_tile_amx, kTile, nullptr,
                          pack_pair_row_avx512bf16};

}  // namespace

// Linux hands out the 8 KiB tile state only to processes that ask (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA); without it the first tile instruction faults.
const Bf16Kernels* bf16_kernels_amx() {
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return nullptr;
  return &kAmx;
}

}  // namespace bl
