// Memory-bound elementwise ops, split into cache-sized chunks across threads.
#include <algorithm>
#include <cstring>
#include <string>

#include "../ops.h"

namespace bl {

namespace {
constexpr int64_t kChunk = 1 << 14;  // 64 KiB of floats per work item
}

Status silu(Context& ctx, const Tensor& x, Tensor& y) {
  BL_RETURN_IF_ERROR(check_tensor(x, "silu", "input", -1));
  BL_RETURN_IF_ERROR(check_tensor(y, "silu", "out", -1));
  BL_RETURN_IF_ERROR(check_shape(y, "silu", "out", x.shape, x.ndim));
  const KernelTable& k = ctx.kernels();
  const int64_t n = x.numel();
  ctx.pool().parallel_for((n + kChunk - 1) / kChunk, [&](int64_t b, int64_t e, int) {
    int64_t lo = b * kChunk, hi = std::min(n, e * kChunk);
    k.silu(x.f32() + lo, y.f32() + lo, hi - lo);
  });
  return Status::ok();
}

Status add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
  BL_RETURN_IF_ERROR(check_tensor(a, "add", "a", -1));
  BL_RETURN_IF_ERROR(check_tensor(b, "add", "b", -1));
  BL_RETURN_IF_ERROR(check_tensor(y, "add", "out", -1));
  BL_RETURN_IF_ERROR(check_shape(y, "add", "out", a.shape, a.ndim));
  const KernelTable& k = ctx.kernels();
  const int64_t n = a.numel();
  bool same = a.ndim == b.ndim;
  for (int i = 0; same && i < a.ndim; ++i) same = a.shape[i] == b.shape[i];
  if (same) {
    ctx.pool().parallel_for((n + kChunk - 1) / kChunk, [&](int64_t lo_c, int64_t hi_c, int) {
      int64_t lo = lo_c * kChunk, hi = std::min(n, hi_c * kChunk);
      k.add(a.f32() + lo, b.f32() + lo, y.f32() + lo, hi - lo);
    });
    return Status::ok();
  }
  // Per-(batch, channel) broadcast, as the UNet adds its time embedding.
  bool per_channel = a.ndim >= 2 && b.ndim >= 2 && b.shape[0] == a.shape[0] && b.shape[1] == a.shape[1];
  for (int i = 2; per_channel && i < b.ndim; ++i) per_channel = b.shape[i] == 1;
  if (!per_channel)
    return Status::range_error("add: argument 'b' has shape " + b.shape_string() + ", expected " + a.shape_string() +
                               " (same as 'a') or [" + std::to_string(a.shape[0]) + ", " +
                               std::to_string(a.ndim > 1 ? a.shape[1] : 1) + "] (one value per batch and channel)");
  const int64_t rows = a.shape[0] * a.shape[1];
  const int64_t spatial = n / rows;
  ctx.pool().parallel_for(rows, [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r)
      k.add_scalar(a.f32() + r * spatial, b.f32()[r], y.f32() + r * spatial, spatial);
  });
  return Status::ok();
}

Status concat_channels(Context& ctx, const Tensor* xs, int count, Tensor& y) {
  if (count < 1) return Status::range_error("concat: argument 'inputs' must hold at least one tensor");
  int64_t channels = 0;
  for (int i = 0; i < count; ++i) {
    std::string name = "inputs[" + std::to_string(i) + "]";
    BL_RETURN_IF_ERROR(check_tensor(xs[i], "concat", name.c_str(), xs[0].ndim));
    if (xs[i].ndim < 2)
      return Status::range_error("concat: argument '" + name + "' has shape " + xs[i].shape_string() +
                                 ", expected at least 2 dims [N, C, ...]");
    for (int d = 0; d < xs[0].ndim; ++d)
      if (d != 1 && xs[i].shape[d] != xs[0].shape[d])
        return Status::range_error("concat: argument '" + name + "' has shape " + xs[i].shape_string() +
                                   ", which differs from inputs[0] " + xs[0].shape_string() + " outside dim 1");
    channels += xs[i].shape[1];
  }
  int64_t out_shape[kMaxDims];
  for (int d = 0; d < xs[0].ndim; ++d) out_shape[d] = xs[0].shape[d];
  out_shape[1] = channels;
  BL_RETURN_IF_ERROR(check_tensor(y, "concat", "out", xs[0].ndim));
  BL_RETURN_IF_ERROR(check_shape(y, "concat", "out", out_shape, xs[0].ndim));

  const int64_t batch = xs[0].shape[0];
  const int64_t inner = xs[0].numel() / (batch * xs[0].shape[1]);
  ctx.pool().parallel_for(batch * count, [&](int64_t lo, int64_t hi, int) {
    for (int64_t item = lo; item < hi; ++item) {
      int64_t nb = item / count;
      int i = static_cast<int>(item % count);
      int64_t before = 0;
      for (int j = 0; j < i; ++j) before += xs[j].shape[1];
      int64_t block = xs[i].shape[1] * inner;
      std::memcpy(y.f32() + (nb * channels + before) * inner, xs[i].f32() + nb * block, sizeof(float) * block);
    }
  });
  return Status::ok();
}

}  // namespace bl
