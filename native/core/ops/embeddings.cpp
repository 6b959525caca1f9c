// Embeddings: the UNet's sinusoidal timestep embedding and the label-map embedding lookup
// (the thesis' EmbeddingWrapper in front of the mask autoencoder).
#include <cmath>
#include <cstdio>
#include <string>

#include "../ops.h"

namespace bl {

namespace {

std::string number_string(double v) {
  char buf[64];
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

// MONAI's get_timestep_embedding, step by step in float32 as PyTorch evaluates it:
//   exponent_k = float(-ln 10000) * k;  freq_k = exp(exponent_k / half);  arg = t * freq_k
// each product/quotient rounded to float, then [cos(arg), sin(arg)] of the float argument. The
// transcendental functions run in double and round once, so each value is the correctly rounded
// (or at worst 1 ulp off) float PyTorch's vectorised float functions also target.
Status timestep_embedding(Context& ctx, const Tensor& t, int dim, Tensor& y) {
  (void)ctx;
  const char* op = "timestep_embedding";
  BL_RETURN_IF_ERROR(check_tensor(t, op, "timesteps", 1));
  if (dim < 1)
    return Status::range_error(std::string(op) + ": argument 'dim' must be >= 1, got " + std::to_string(dim));
  const int64_t out_shape[2] = {t.shape[0], dim};
  BL_RETURN_IF_ERROR(check_tensor(y, op, "out", 2));
  BL_RETURN_IF_ERROR(check_shape(y, op, "out", out_shape, 2));
  const int half = dim / 2;
  const float neg_log_period = static_cast<float>(-std::log(10000.0));
  for (int64_t n = 0; n < t.shape[0]; ++n) {
    const float tn = t.f32()[n];
    float* row = y.f32() + n * dim;
    for (int i = 0; i < half; ++i) {
      const float exponent = neg_log_period * static_cast<float>(i);
      const float scaled = exponent / static_cast<float>(half);
      const float freq = static_cast<float>(std::exp(static_cast<double>(scaled)));
      const float arg = tn * freq;
      row[i] = static_cast<float>(std::cos(static_cast<double>(arg)));
      row[half + i] = static_cast<float>(std::sin(static_cast<double>(arg)));
    }
    if (dim % 2) row[dim - 1] = 0.0f;
  }
  return Status::ok();
}

Status embedding_channels(Context& ctx, const Tensor& ids, const Tensor& table, Tensor& y) {
  const char* op = "embedding_channels";
  BL_RETURN_IF_ERROR(check_tensor(ids, op, "ids", -1));
  if (ids.ndim < 2 || ids.shape[1] != 1)
    return Status::range_error(std::string(op) + ": argument 'ids' has shape " + ids.shape_string() +
                               ", expected [N, 1, ...] (one label per voxel)");
  BL_RETURN_IF_ERROR(check_tensor(table, op, "table", 2));
  const int64_t rows = table.shape[0], width = table.shape[1];
  int64_t out_shape[kMaxDims];
  for (int i = 0; i < ids.ndim; ++i) out_shape[i] = ids.shape[i];
  out_shape[1] = width;
  BL_RETURN_IF_ERROR(check_tensor(y, op, "out", -1));
  BL_RETURN_IF_ERROR(check_shape(y, op, "out", out_shape, ids.ndim));

  // Validate every id before writing anything, converting to row indices in scratch.
  const int64_t count = ids.numel();
  int32_t* index = static_cast<int32_t*>(ctx.scratch().reserve(sizeof(int32_t) * count));
  const float* id = ids.f32();
  for (int64_t i = 0; i < count; ++i) {
    const float v = id[i];
    if (!(v >= 0.0f && v < static_cast<float>(rows) && v == std::floor(v)))
      return Status::range_error(std::string(op) + ": argument 'ids' holds " + number_string(v) + " at element " +
                                 std::to_string(i) + ", expected an integer in [0, " + std::to_string(rows) +
                                 ") (the table has " + std::to_string(rows) + " rows)");
    index[i] = static_cast<int32_t>(v);
  }
  const int64_t batch = ids.shape[0];
  const int64_t spatial = count / batch;
  const float* tab = table.f32();
  ctx.pool().parallel_for(batch * width, [&](int64_t begin, int64_t end, int) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / width, e = item % width;
      const int32_t* ix = index + n * spatial;
      float* dst = y.f32() + item * spatial;
      for (int64_t p = 0; p < spatial; ++p) dst[p] = tab[int64_t(ix[p]) * width + e];
    }
  });
  return Status::ok();
}

}  // namespace bl
