// fp16 / bf16 <-> fp32 conversion, bit-exact with PyTorch's c10::Half and c10::BFloat16:
//   to fp32:  exact (every 16-bit value, subnormals, infinities and NaN payloads included);
//   to fp16:  round to nearest even, subnormals kept, overflow to +-inf, NaN -> sign | 0x7E00;
//   to bf16:  round to nearest even, NaN -> 0x7FC0 (c10::round_to_nearest_even drops the sign).
// A 16-bit to 16-bit conversion goes through fp32, which is exact, so it rounds once.
#include <algorithm>
#include <cstring>
#include <string>

#include "../kernels/bf16.h"
#include "../ops.h"

namespace bl {

namespace {

inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  if (e == 0x1F) return float_of(sign | 0x7F800000u | (m << 13));
  if (e == 0) return float_of(sign | bits_of(static_cast<float>(m) * 5.9604644775390625e-8f));  // m * 2^-24, exact
  return float_of(sign | ((e + 112) << 23) | (m << 13));
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t x = bits_of(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);  // NaN
  if (ax >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520 rounds to inf
  if (ax >= 0x38800000u) {                                                // normal half
    ax += 0xC8000FFFu + ((ax >> 13) & 1u);  // rebias the exponent by -112 and round to nearest even
    return static_cast<uint16_t>(sign | (ax >> 13));
  }
  // Subnormal half (or zero): adding 0.5 leaves units of 2^-24 in the low mantissa bits, and the
  // float addition rounds them to nearest even.
  const uint32_t sum = bits_of(float_of(ax) + 0.5f) - 0x3F000000u;
  return static_cast<uint16_t>(sign | sum);
}

inline float bf16_to_f32(uint16_t h) { return float_of(uint32_t(h) << 16); }

// f32_to_bf16: kernels/bf16.h (the same rounding feeds the bf16 convolutions).

inline float load_as_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
  }
  return 0.0f;
}

template <class Fn>
void convert_range(const void* src, DType from, void* dst, int64_t lo, int64_t hi, Fn&& store) {
  for (int64_t i = lo; i < hi; ++i) store(dst, i, load_as_f32(src, from, i));
}

constexpr int64_t kChunk = 1 << 15;

}  // namespace

Status convert_dtype(Context& ctx, const Tensor& x, Tensor& y) {
  const char* op = "convert_dtype";
  BL_RETURN_IF_ERROR(check_tensor(x, op, "input", -1, x.dtype));
  BL_RETURN_IF_ERROR(check_tensor(y, op, "out", -1, y.dtype));
  BL_RETURN_IF_ERROR(check_shape(y, op, "out", x.shape, x.ndim));
  const int64_t n = x.numel();
  const DType from = x.dtype, to = y.dtype;
  ctx.pool().parallel_for((n + kChunk - 1) / kChunk, [&](int64_t b, int64_t e, int) {
    const int64_t lo = b * kChunk, hi = std::min(n, e * kChunk);
    if (from == to) {
      std::memcpy(static_cast<char*>(y.data) + lo * dtype_size(to), static_cast<const char*>(x.data) + lo * dtype_size(from),
                  static_cast<size_t>(hi - lo) * dtype_size(to));
      return;
    }
    switch (to) {
      case DType::F32:
        convert_range(x.data, from, y.data, lo, hi, [](void* d, int64_t i, float v) { static_cast<float*>(d)[i] = v; });
        break;
      case DType::F16:
        convert_range(x.data, from, y.data, lo, hi,
                      [](void* d, int64_t i, float v) { static_cast<uint16_t*>(d)[i] = f32_to_f16(v); });
        break;
      case DType::BF16:
        convert_range(x.data, from, y.data, lo, hi,
                      [](void* d, int64_t i, float v) { static_cast<uint16_t*>(d)[i] = f32_to_bf16(v); });
        break;
    }
  });
  return Status::ok();
}

}  // namespace bl
