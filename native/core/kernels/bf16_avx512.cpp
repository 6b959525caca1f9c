// The AVX512-BF16 convolution tile (compiled with -mavx512bf16; chosen at run time only on CPUs that
// report it). Same register blocking as the fp32 AVX-512 tile: 8 output channels x 48 positions in 24
// accumulators; each vdpbf16ps does 32 multiply-adds where an fp32 FMA does 16.
#include <immintrin.h>

#include "bf16.h"

namespace bl {

namespace {

constexpr int kCo = 8;
constexpr int kNv = 3;

// kNv vectors of 16 positions, or fewer for a Winograd block's last micro-tile (each lane's sum is the same).
template <int kNv>
void conv_tile_bf16_nv(const uint16_t* x2, const uint16_t* w2, const int32_t* tap_off, int ntaps, int pairs,
                       int64_t pair_stride, float* acc, int64_t acc_stride) {
  __m512 a[kCo][kNv];
  for (int c = 0; c < kCo; ++c)
    for (int v = 0; v < kNv; ++v) a[c][v] = _mm512_setzero_ps();
  for (int pr = 0; pr < pairs; ++pr) {
    const uint16_t* xc = x2 + 2 * pr * pair_stride;
    for (int t = 0; t < ntaps; ++t) {
      const uint16_t* xp = xc + 2 * static_cast<int64_t>(tap_off[t]);
      __m512bh xv[kNv];
      for (int v = 0; v < kNv; ++v) xv[v] = (__m512bh)_mm512_loadu_si512(xp + 32 * v);
      for (int c = 0; c < kCo; ++c) {
        int32_t pair_bits;
        __builtin_memcpy(&pair_bits, w2 + 2 * c, 4);
        const __m512bh wv = (__m512bh)_mm512_set1_epi32(pair_bits);
        for (int v = 0; v < kNv; ++v) a[c][v] = _mm512_dpbf16_ps(a[c][v], xv[v], wv);
      }
      w2 += 2 * kCo;
    }
  }
  for (int c = 0; c < kCo; ++c)
    for (int v = 0; v < kNv; ++v) _mm512_storeu_ps(acc + c * acc_stride + v * 16, a[c][v]);
}

void conv_tile_bf16(const uint16_t* x2, const uint16_t* w2, const int32_t* tap_off, int ntaps, int pairs,
                    int64_t pair_stride, float* acc, int64_t acc_stride) {
  conv_tile_bf16_nv<kNv>(x2, w2, tap_off, ntaps, pairs, pair_stride, acc, acc_stride);
}

void conv_tile_part_bf16(const uint16_t* x2, const uint16_t* w2, const int32_t* tap_off, int ntaps, int pairs,
                         int64_t pair_stride, float* acc, int64_t acc_stride, int vectors) {
  if (vectors == 1) return conv_tile_bf16_nv<1>(x2, w2, tap_off, ntaps, pairs, pair_stride, acc, acc_stride);
  if (vectors == 2) return conv_tile_bf16_nv<2>(x2, w2, tap_off, ntaps, pairs, pair_stride, acc, acc_stride);
  conv_tile_bf16_nv<kNv>(x2, w2, tap_off, ntaps, pairs, pair_stride, acc, acc_stride);
}

}  // namespace

void pack_pair_row_avx512bf16(const float* a, const float* b, uint16_t* out, int64_t n) {
  // cvtne2ps gives [bf16(a[0..15]) | bf16(b[0..15])]; the permute interleaves them to a0 b0 a1 b1 ...
  alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i idx = _mm512_load_si512(kInterleave);
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t left = n - i < 16 ? n - i : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << left) - 1u);
    const __m512 va = _mm512_maskz_loadu_ps(m, a + i);
    const __m512 vb = b ? _mm512_maskz_loadu_ps(m, b + i) : _mm512_setzero_ps();
    const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(vb, va);
    const __mmask32 m2 = left == 16 ? ~__mmask32(0) : static_cast<__mmask32>((1u << (2 * left)) - 1u);
    _mm512_mask_storeu_epi16(out + 2 * i, m2, _mm512_permutexvar_epi16(idx, both));
  }
}

namespace {

void pack_weights(const float* w, int64_t cout, int64_t cin, int64_t taps, uint16_t* w2, int64_t b0, int64_t b1) {
  pack_bf16_weights_pairs_raw(w, cout, cin, taps, kCo, w2, b0, b1);
}

const Bf16Kernels kAvx512Bf16 = {"avx512-bf16", kCo, kNv * 16, 1, false, pack_weights, conv_tile_bf16,
                                 16, conv_tile_part_bf16, pack_pair_row_avx512bf16};

}  // namespace

const Bf16Kernels* bf16_kernels_avx512() { return &kAvx512Bf16; }

}  // namespace bl
