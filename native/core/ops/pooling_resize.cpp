// Resampling: AvgPool3d(2, 2) for the UNet's resblock downsample, and nearest-neighbour resize
// for the x2 upsample and SPADE's label-map resize. Both are gathers, memory-bound; rows of the
// output are split across threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "../ops.h"

namespace bl {

Status avg_pool3d_2x(Context& ctx, const Tensor& x, Tensor& y) {
  const char* op = "avg_pool3d_2x";
  BL_RETURN_IF_ERROR(check_tensor(x, op, "input", 5));
  for (int i = 2; i < 5; ++i)
    if (x.shape[i] < 2)
      return Status::range_error(std::string(op) + ": argument 'input' has shape " + x.shape_string() +
                                 ", expected every spatial dim >= 2 (kernel 2, stride 2)");
  const int64_t out_shape[5] = {x.shape[0], x.shape[1], x.shape[2] / 2, x.shape[3] / 2, x.shape[4] / 2};
  BL_RETURN_IF_ERROR(check_tensor(y, op, "out", 5));
  BL_RETURN_IF_ERROR(check_shape(y, op, "out", out_shape, 5));

  const int64_t D = x.shape[2], H = x.shape[3], W = x.shape[4];
  const int64_t OD = out_shape[2], OH = out_shape[3], OW = out_shape[4];
  const int64_t rows = x.shape[0] * x.shape[1] * OD * OH;
  ctx.pool().parallel_for(rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % OH, od = (r / OH) % OD, plane = r / (OH * OD);
      const float* src = x.f32() + ((plane * D + 2 * od) * H + 2 * oh) * W;
      float* dst = y.f32() + r * OW;
      const float* rows4[4] = {src, src + W, src + H * W, src + H * W + W};
      for (int64_t ow = 0; ow < OW; ++ow) {
        // PyTorch's summation order (kd, kh, kw), then one division by the window size.
        float sum = 0.0f;
        for (int t = 0; t < 4; ++t) {
          sum += rows4[t][2 * ow];
          sum += rows4[t][2 * ow + 1];
        }
        dst[ow] = sum / 8.0f;
      }
    }
  });
  return Status::ok();
}

namespace {

// PyTorch's legacy 'nearest' source index (aten/src/ATen/native/UpSample.h, nearest_idx with no
// explicit scale): identity and exact x2 are special-cased, otherwise the scale is in/out computed
// in float and the index is floor(float(dst) * scale), clamped to the input.
int64_t nearest_source(int64_t dst, int64_t in, int64_t out) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float pos = static_cast<float>(dst) * scale;
  return std::min(static_cast<int64_t>(std::floor(pos)), in - 1);
}

}  // namespace

Status resize_nearest(Context& ctx, const Tensor& x, Tensor& y) {
  return resize_nearest_rows(ctx, x, y.ndim == 5 ? y.shape[2] : 1, 0, y);
}

Status resize_nearest_rows(Context& ctx, const Tensor& x, int64_t out_depth, int64_t row0, Tensor& y) {
  const char* op = "resize_nearest";
  BL_RETURN_IF_ERROR(check_tensor(x, op, "input", -1));
  if (x.ndim < 3 || x.ndim > 5)
    return Status::range_error(std::string(op) + ": argument 'input' has shape " + x.shape_string() +
                               ", expected [N, C, ...] with 1 to 3 spatial dims");
  BL_RETURN_IF_ERROR(check_tensor(y, op, "out", x.ndim));
  if (y.shape[0] != x.shape[0] || y.shape[1] != x.shape[1])
    return Status::range_error(std::string(op) + ": argument 'out' has shape " + y.shape_string() +
                               ", expected [" + std::to_string(x.shape[0]) + ", " + std::to_string(x.shape[1]) +
                               ", ...] (the input's batch and channels; only the spatial size changes)");
  // Pad to three spatial dims with leading 1s.
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  const int sp = x.ndim - 2;
  for (int i = 0; i < sp; ++i) {
    in[3 - sp + i] = x.shape[2 + i];
    out[3 - sp + i] = y.shape[2 + i];
  }
  if (row0 < 0 || (sp == 3 ? row0 + out[0] > out_depth : (row0 != 0 || out_depth != 1)))
    return Status::range_error(std::string(op) + ": rows [" + std::to_string(row0) + ", " +
                               std::to_string(row0 + out[0]) + ") of 'out' lie outside its full depth " +
                               std::to_string(out_depth));
  int32_t* idx = static_cast<int32_t*>(ctx.scratch().reserve(sizeof(int32_t) * (out[0] + out[1] + out[2])));
  int32_t* id_d = idx;
  int32_t* id_h = id_d + out[0];
  int32_t* id_w = id_h + out[1];
  for (int64_t i = 0; i < out[0]; ++i)
    id_d[i] = static_cast<int32_t>(nearest_source(row0 + i, in[0], sp == 3 ? out_depth : out[0]));
  for (int64_t i = 0; i < out[1]; ++i) id_h[i] = static_cast<int32_t>(nearest_source(i, in[1], out[1]));
  for (int64_t i = 0; i < out[2]; ++i) id_w[i] = static_cast<int32_t>(nearest_source(i, in[2], out[2]));

  const int64_t planes = x.shape[0] * x.shape[1];
  const int64_t rows = planes * out[0] * out[1];
  const int64_t in_plane = in[0] * in[1] * in[2];
  const bool same_w = in[2] == out[2];
  ctx.pool().parallel_for(rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % out[1], od = (r / out[1]) % out[0], plane = r / (out[1] * out[0]);
      const float* src = x.f32() + plane * in_plane + (int64_t(id_d[od]) * in[1] + id_h[oh]) * in[2];
      float* dst = y.f32() + r * out[2];
      if (same_w) {
        std::memcpy(dst, src, sizeof(float) * out[2]);
      } else {
        for (int64_t ow = 0; ow < out[2]; ++ow) dst[ow] = src[id_w[ow]];
      }
    }
  });
  return Status::ok();
}

}  // namespace bl
