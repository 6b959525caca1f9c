// Counter-based Gaussian noise: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers:
// as easy as 1, 2, 3", SC 2011; the Random123 reference algorithm) + Box-Muller in double precision.
//
// Layout (see ops.h random_normal):
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (block & 0xffffffff, block >> 32, stream & 0xffffffff, stream >> 32)
//   element g = offset + i of the draw uses block g / 4 and word g % 4 of that block's output:
//   words (0, 1) -> normals (r cos t, r sin t) for elements 4b, 4b+1, words (2, 3) -> the same for
//   4b+2, 4b+3, with u = (word + 0.5) * 2^-32 (never 0 or 1), r = sqrt(-2 ln u_even), t = 2 pi u_odd.
// Each element is a pure function of (seed, stream, g), so any subrange regenerates on its own and
// the thread split cannot change a bit.
//
// Bit identity across platforms. Philox is integer-only. The Box-Muller step is computed in double and
// rounded once to float, but the C library's log/sin/cos are not correctly rounded and differ between
// implementations (glibc on the native build, musl in emscripten, Apple's libm, MSVC's CRT) by an ulp
// here and there, which would occasionally flip the final float rounding. So this file uses no libm
// transcendental: log and sin/cos are evaluated here with fixed polynomials (exact range reduction,
// then a truncated series in Horner form, relative error well below 1e-15), built only from IEEE-754
// double +, -, *, / and sqrt, which are correctly rounded on every target (x86-64 SSE2, aarch64, wasm).
// The remaining hazard is the compiler fusing a*b+c into an FMA (GCC's default -ffp-contract=fast
// does this on aarch64, or on x86 with -mfma): that is turned off for this file below. Nothing here
// may be built with -ffast-math.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../ops.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace bl {

namespace {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;  // sqrt(3) - 1

inline void philox_round(uint32_t ctr[4], const uint32_t key[2]) {
  const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * ctr[0];
  const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * ctr[2];
  const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  const uint32_t c1 = ctr[1], c3 = ctr[3];
  ctr[0] = hi1 ^ c1 ^ key[0];
  ctr[1] = lo1;
  ctr[2] = hi0 ^ c3 ^ key[1];
  ctr[3] = lo0;
}

// Philox4x32 with 10 rounds: out = bijection_key(ctr).
inline void philox4x32_10(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]) {
  uint32_t ctr[4] = {ctr_in[0], ctr_in[1], ctr_in[2], ctr_in[3]};
  uint32_t key[2] = {key_in[0], key_in[1]};
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      key[0] += kPhiloxW0;
      key[1] += kPhiloxW1;
    }
    philox_round(ctr, key);
  }
  out[0] = ctr[0];
  out[1] = ctr[1];
  out[2] = ctr[2];
  out[3] = ctr[3];
}

// ln(x) for x in (0, 1], x = (w + 0.5) * 2^-32 in practice. x = m * 2^e with m in [sqrt(1/2), sqrt(2))
// (exact: bit manipulation), ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, so
// s^2 <= 0.02944 and the odd series 2 (s + s^3/3 + ... + s^25/25) is truncated below 1e-19 relative.
// e ln 2 uses fdlibm's split constant (high part with its low 21 bits zero: e * hi is exact for |e| < 2^21).
double det_log(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;  // x is normal here: >= 2^-33
  bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;  // m in [1, 2)
  double m;
  std::memcpy(&m, &bits, sizeof m);
  if (m > 1.4142135623730951) {  // fold to [sqrt(1/2), sqrt(2))
    m *= 0.5;
    e += 1;
  }
  const double s = (m - 1.0) / (m + 1.0);  // m - 1 is exact (Sterbenz)
  const double z = s * s;
  double p = 1.0 / 25.0;
  p = p * z + 1.0 / 23.0;
  p = p * z + 1.0 / 21.0;
  p = p * z + 1.0 / 19.0;
  p = p * z + 1.0 / 17.0;
  p = p * z + 1.0 / 15.0;
  p = p * z + 1.0 / 13.0;
  p = p * z + 1.0 / 11.0;
  p = p * z + 1.0 / 9.0;
  p = p * z + 1.0 / 7.0;
  p = p * z + 1.0 / 5.0;
  p = p * z + 1.0 / 3.0;
  const double log_m = 2.0 * s + 2.0 * s * (z * p);
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 0x3fe62e42fee00000: low 32 bits zero
  constexpr double kLn2Lo = 1.90821492927058770002e-10;  // ln 2 - kLn2Hi
  const double de = static_cast<double>(e);
  return (de * kLn2Hi + (de * kLn2Lo + log_m));
}

// sin(2 pi t) and cos(2 pi t) for t in [0, 1) holding at most 34 significant bits below 2^0 (so 4t
// and the reduction are exact): t = k/4 + r, |r| <= 1/8, a = 2 pi r in [-pi/4, pi/4], Taylor series
// to a^17 (sin) and a^18 (cos), truncation below 1e-19, then the quadrant rotation by k.
void det_sincos_2pi(double t, double* sin_out, double* cos_out) {
  const double q = std::floor(t * 4.0 + 0.5);  // exact: t * 4 is exact, floor is IEEE
  const double r = t - q * 0.25;                 // exact
  const int k = static_cast<int>(q) & 3;
  constexpr double kTwoPi = 6.28318530717958647692;
  const double a = r * kTwoPi;
  const double z = a * a;
  // sin a = a (1 - z/3! + z^2/5! - ... - z^8/17!)
  double ps = -1.0 / 355687428096000.0;  // -1/17!
  ps = ps * z + 1.0 / 1307674368000.0;  // 1/15!
  ps = ps * z - 1.0 / 6227020800.0;     // 1/13!
  ps = ps * z + 1.0 / 39916800.0;       // 1/11!
  ps = ps * z - 1.0 / 362880.0;         // 1/9!
  ps = ps * z + 1.0 / 5040.0;           // 1/7!
  ps = ps * z - 1.0 / 120.0;            // 1/5!
  ps = ps * z + 1.0 / 6.0;              // 1/3!
  const double s = a - a * (z * ps);
  // cos a = 1 - z/2! + z^2/4! - ... + z^9/18!  (written as 1 - z (1/2 - z (...)))
  double pc = 1.0 / 6402373705728000.0;  // 1/18!
  pc = pc * z - 1.0 / 20922789888000.0;  // 1/16!
  pc = pc * z + 1.0 / 87178291200.0;     // 1/14!
  pc = pc * z - 1.0 / 479001600.0;       // 1/12!
  pc = pc * z + 1.0 / 3628800.0;         // 1/10!
  pc = pc * z - 1.0 / 40320.0;           // 1/8!
  pc = pc * z + 1.0 / 720.0;             // 1/6!
  pc = pc * z - 1.0 / 24.0;              // 1/4!
  pc = pc * z + 0.5;                     // 1/2!
  const double c = 1.0 - z * pc;
  switch (k) {
    case 0: *sin_out = s; *cos_out = c; break;
    case 1: *sin_out = c; *cos_out = -s; break;
    case 2: *sin_out = -s; *cos_out = -c; break;
    default: *sin_out = -c; *cos_out = s; break;
  }
}

constexpr double kTwoPowMinus32 = 1.0 / 4294967296.0;

// Two N(0, 1) samples from two 32-bit words.
inline void box_muller(uint32_t w_radius, uint32_t w_angle, float* z_cos, float* z_sin) {
  const double u1 = (static_cast<double>(w_radius) + 0.5) * kTwoPowMinus32;  // exact, in (0, 1)
  const double u2 = (static_cast<double>(w_angle) + 0.5) * kTwoPowMinus32;
  const double r = std::sqrt(-2.0 * det_log(u1));  // sqrt is correctly rounded everywhere
  double sn, cs;
  det_sincos_2pi(u2, &sn, &cs);
  *z_cos = static_cast<float>(r * cs);
  *z_sin = static_cast<float>(r * sn);
}

inline void normal_block(uint64_t seed, uint64_t stream, uint64_t block, float out[4]) {
  const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const uint32_t ctr[4] = {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                           static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)};
  uint32_t w[4];
  philox4x32_10(ctr, key, w);
  box_muller(w[0], w[1], &out[0], &out[1]);
  box_muller(w[2], w[3], &out[2], &out[3]);
}

constexpr int64_t kChunk = 1 << 14;  // elements per work item (a multiple of 4)

}  // namespace

Status philox4x32(Context& ctx, const uint32_t counter[4], const uint32_t key[2], Tensor& y) {
  (void)ctx;
  BL_RETURN_IF_ERROR(check_tensor(y, "philox4x32", "out", -1));
  if (y.numel() != 8)
    return Status::range_error("philox4x32: argument 'out' has shape " + y.shape_string() +
                               ", expected 8 elements (4 words as [hi16, lo16] pairs)");
  uint32_t w[4];
  philox4x32_10(counter, key, w);
  for (int j = 0; j < 4; ++j) {
    y.f32()[2 * j] = static_cast<float>(w[j] >> 16);
    y.f32()[2 * j + 1] = static_cast<float>(w[j] & 0xffffu);
  }
  return Status::ok();
}

Status random_normal(Context& ctx, uint64_t seed, uint64_t stream, uint64_t offset, Tensor& y) {
  BL_RETURN_IF_ERROR(check_tensor(y, "random_normal", "out", -1));
  const int64_t n = y.numel();
  if (n > 0 && offset > UINT64_MAX - static_cast<uint64_t>(n))
    return Status::range_error("random_normal: offset + numel(out) overflows the 64-bit element counter");
  float* out = y.f32();
  ctx.pool().parallel_for((n + kChunk - 1) / kChunk, [&](int64_t cb, int64_t ce, int) {
    const int64_t lo = cb * kChunk, hi = std::min(n, ce * kChunk);
    int64_t i = lo;
    float z[4];
    while (i < hi) {
      const uint64_t g = offset + static_cast<uint64_t>(i);
      const int first = static_cast<int>(g & 3);
      normal_block(seed, stream, g >> 2, z);
      const int64_t take = std::min<int64_t>(4 - first, hi - i);
      for (int64_t j = 0; j < take; ++j) out[i + j] = z[first + j];
      i += take;
    }
  });
  return Status::ok();
}

}  // namespace bl
