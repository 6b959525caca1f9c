// Element-wise ops of the MONAI networks: activations (LeakyReLU, exact-erf GELU, GEGLU), SPADE's
// modulation, scaling, clamping and exp. Memory-bound, split into cache-sized chunks across threads
// like elementwise.cpp; the per-ISA loops are in the kernel table.
#include <algorithm>
#include <cmath>
#include <string>

#include "../ops.h"

namespace bl {

namespace {

constexpr int64_t kChunk = 1 << 14;  // 64 KiB of floats per work item

// Runs fn(lo, hi) over [0, n) in kChunk pieces on the pool.
template <class Fn>
void chunked(Context& ctx, int64_t n, Fn&& fn) {
  ctx.pool().parallel_for((n + kChunk - 1) / kChunk, [&](int64_t b, int64_t e, int) {
    fn(b * kChunk, std::min(n, e * kChunk));
  });
}

// Shared checks of a unary op: any rank, out the same shape as the input.
Status check_unary(const char* op, const Tensor& x, const Tensor& y) {
  BL_RETURN_IF_ERROR(check_tensor(x, op, "input", -1));
  BL_RETURN_IF_ERROR(check_tensor(y, op, "out", -1));
  return check_shape(y, op, "out", x.shape, x.ndim);
}

Status check_finite(const char* op, const char* name, float v) {
  if (!std::isfinite(v))
    return Status::range_error(std::string(op) + ": argument '" + name + "' must be a finite number, got " +
                               std::to_string(v));
  return Status::ok();
}

}  // namespace

Status leaky_relu(Context& ctx, const Tensor& x, float negative_slope, Tensor& y) {
  BL_RETURN_IF_ERROR(check_unary("leaky_relu", x, y));
  BL_RETURN_IF_ERROR(check_finite("leaky_relu", "negative_slope", negative_slope));
  const KernelTable& k = ctx.kernels();
  chunked(ctx, x.numel(), [&](int64_t lo, int64_t hi) { k.leaky_relu(x.f32() + lo, negative_slope, y.f32() + lo, hi - lo); });
  return Status::ok();
}

Status gelu(Context& ctx, const Tensor& x, Tensor& y) {
  BL_RETURN_IF_ERROR(check_unary("gelu", x, y));
  const KernelTable& k = ctx.kernels();
  chunked(ctx, x.numel(), [&](int64_t lo, int64_t hi) { k.gelu(x.f32() + lo, y.f32() + lo, hi - lo); });
  return Status::ok();
}

Status geglu_channels(Context& ctx, const Tensor& x, Tensor& y) {
  const char* op = "geglu_channels";
  BL_RETURN_IF_ERROR(check_tensor(x, op, "input", -1));
  if (x.ndim < 2 || x.shape[1] % 2 != 0)
    return Status::range_error(std::string(op) + ": argument 'input' has shape " + x.shape_string() +
                               ", expected [N, 2C, ...] (an even number of channels: value half, then gate half)");
  int64_t out_shape[kMaxDims];
  for (int i = 0; i < x.ndim; ++i) out_shape[i] = x.shape[i];
  out_shape[1] = x.shape[1] / 2;
  BL_RETURN_IF_ERROR(check_tensor(y, op, "out", -1));
  BL_RETURN_IF_ERROR(check_shape(y, op, "out", out_shape, x.ndim));
  const KernelTable& k = ctx.kernels();
  const int64_t batch = x.shape[0];
  const int64_t half = y.numel() / batch;  // C * spatial
  const int64_t chunks = (half + kChunk - 1) / kChunk;
  ctx.pool().parallel_for(batch * chunks, [&](int64_t b, int64_t e, int) {
    for (int64_t item = b; item < e; ++item) {
      int64_t n = item / chunks, lo = (item % chunks) * kChunk, hi = std::min(half, lo + kChunk);
      const float* a = x.f32() + n * 2 * half;
      k.geglu(a + lo, a + half + lo, y.f32() + n * half + lo, hi - lo);
    }
  });
  return Status::ok();
}

Status spade_modulate(Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor* beta, Tensor& y) {
  const char* op = "spade_modulate";
  BL_RETURN_IF_ERROR(check_tensor(x, op, "input", -1));
  BL_RETURN_IF_ERROR(check_tensor(gamma, op, "gamma", -1));
  BL_RETURN_IF_ERROR(check_shape(gamma, op, "gamma", x.shape, x.ndim));
  if (beta) {
    BL_RETURN_IF_ERROR(check_tensor(*beta, op, "beta", -1));
    BL_RETURN_IF_ERROR(check_shape(*beta, op, "beta", x.shape, x.ndim));
  }
  BL_RETURN_IF_ERROR(check_tensor(y, op, "out", -1));
  BL_RETURN_IF_ERROR(check_shape(y, op, "out", x.shape, x.ndim));
  const KernelTable& k = ctx.kernels();
  chunked(ctx, x.numel(), [&](int64_t lo, int64_t hi) {
    k.modulate(x.f32() + lo, gamma.f32() + lo, beta ? beta->f32() + lo : nullptr, y.f32() + lo, hi - lo);
  });
  return Status::ok();
}

Status scale(Context& ctx, const Tensor& x, float factor, Tensor& y) {
  BL_RETURN_IF_ERROR(check_unary("scale", x, y));
  BL_RETURN_IF_ERROR(check_finite("scale", "factor", factor));
  const KernelTable& k = ctx.kernels();
  chunked(ctx, x.numel(), [&](int64_t lo, int64_t hi) { k.mul_scalar(x.f32() + lo, factor, y.f32() + lo, hi - lo); });
  return Status::ok();
}

Status clamp(Context& ctx, const Tensor& x, float lo, float hi, Tensor& y) {
  BL_RETURN_IF_ERROR(check_unary("clamp", x, y));
  if (std::isnan(lo) || std::isnan(hi) || lo > hi)
    return Status::range_error("clamp: arguments 'min' and 'max' must be numbers with min <= max, got min " +
                               std::to_string(lo) + ", max " + std::to_string(hi));
  const KernelTable& k = ctx.kernels();
  chunked(ctx, x.numel(), [&](int64_t a, int64_t b) { k.clamp(x.f32() + a, lo, hi, y.f32() + a, b - a); });
  return Status::ok();
}

Status exp_scaled(Context& ctx, const Tensor& x, float factor, Tensor& y) {
  BL_RETURN_IF_ERROR(check_unary("exp_scaled", x, y));
  BL_RETURN_IF_ERROR(check_finite("exp_scaled", "factor", factor));
  const KernelTable& k = ctx.kernels();
  chunked(ctx, x.numel(), [&](int64_t lo, int64_t hi) { k.exp_scaled(x.f32() + lo, factor, y.f32() + lo, hi - lo); });
  return Status::ok();
}

}  // namespace bl
