// Register-only throughput of one core's multiply-add instructions: fp32 FMA (vfmadd231ps zmm) and the bf16 dot
// product (vdpbf16ps zmm), each with 24 independent accumulators, so neither memory nor latency limits them.
// Tells whether AVX512-BF16 dot products beat fp32 on a CPU (bench/RESULTS.md):
//
//   g++ -O2 -mavx512f -mavx512bf16 bench/isa_peak.cpp -o /tmp/isa_peak && /tmp/isa_peak
#include <immintrin.h>

#include <chrono>
#include <cstdio>

namespace {

constexpr int kAcc = 24;
constexpr long kIters = 50000000;

template <typename Step>
double gflops(double flops_per_iter, Step step) {
  auto t0 = std::chrono::steady_clock::now();
  step();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return kIters * flops_per_iter / s * 1e-9;
}

}  // namespace

int main() {
  __m512 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_ps(1e-3f * i);
  __m512 xf = _mm512_set1_ps(1.0f), wf = _mm512_set1_ps(1e-6f);
  double fp32 = gflops(kAcc * 32.0, [&] {
    for (long n = 0; n < kIters; ++n) {
#pragma GCC unroll 24
      for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_fmadd_ps(xf, wf, acc[i]);
      __asm__ volatile("" : "+v"(xf));  // keeps the loop from being folded away
    }
  });
  __m512bh xb = (__m512bh)_mm512_set1_epi32(0x3f803f80), wb = (__m512bh)_mm512_set1_epi32(0x358c358c);
  double bf16 = gflops(kAcc * 64.0, [&] {
    for (long n = 0; n < kIters; ++n) {
#pragma GCC unroll 24
      for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], xb, wb);
      __asm__ volatile("" : "+v"(xb));
    }
  });
  float sink = 0;
  for (int i = 0; i < kAcc; ++i) sink += _mm512_reduce_add_ps(acc[i]);
  std::printf("one core: fp32 FMA %.1f GFLOP/s, bf16 VDPBF16PS %.1f GFLOP/s (ratio %.2f)%s\n", fp32, bf16, bf16 / fp32,
              sink == 12345.f ? " " : "");
  return 0;
}
