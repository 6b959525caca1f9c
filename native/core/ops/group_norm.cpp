// GroupNorm as torch.nn.GroupNorm: biased variance over (C/G) x spatial per
// (batch, group); statistics in double (two passes) so the result does not
// depend on the ISA's lane count beyond float rounding of the inputs.
#include <algorithm>
#include <cmath>
#include <string>

#include "../ops.h"

namespace bl {

Status group_norm(Context& ctx, const Tensor& x, int groups, float eps, const Tensor* gamma, const Tensor* beta,
                  bool fuse_silu, Tensor& y) {
  BL_RETURN_IF_ERROR(check_tensor(x, "group_norm", "input", -1));
  if (x.ndim < 2)
    return Status::range_error("group_norm: argument 'input' has shape " + x.shape_string() +
                               ", expected at least 2 dims [N, C, ...]");
  const int64_t n = x.shape[0], c = x.shape[1];
  if (groups < 1 || c % groups != 0)
    return Status::range_error("group_norm: argument 'groups' is " + std::to_string(groups) +
                               ", expected a positive divisor of the " + std::to_string(c) + " channels");
  if (!(eps > 0.0f) || !std::isfinite(eps))
    return Status::range_error("group_norm: argument 'eps' must be a positive finite number, got " + std::to_string(eps));
  if ((gamma == nullptr) != (beta == nullptr))
    return Status::type_error("group_norm: arguments 'weight' and 'bias' must be given together or both omitted");
  if (gamma) {
    BL_RETURN_IF_ERROR(check_tensor(*gamma, "group_norm", "weight", 1));
    BL_RETURN_IF_ERROR(check_shape(*gamma, "group_norm", "weight", &c, 1));
    BL_RETURN_IF_ERROR(check_tensor(*beta, "group_norm", "bias", 1));
    BL_RETURN_IF_ERROR(check_shape(*beta, "group_norm", "bias", &c, 1));
  }
  BL_RETURN_IF_ERROR(check_tensor(y, "group_norm", "out", -1));
  BL_RETURN_IF_ERROR(check_shape(y, "group_norm", "out", x.shape, x.ndim));

  const KernelTable& k = ctx.kernels();
  const int64_t spatial = x.numel() / (n * c);
  const int64_t per_group = c / groups;
  const int64_t count = per_group * spatial;
  const float* gd = gamma ? gamma->f32() : nullptr;
  const float* bd = beta ? beta->f32() : nullptr;
  ctx.pool().parallel_for(n * groups, [&](int64_t begin, int64_t end, int) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t g = item % groups;
      const float* xs = x.f32() + item * count;
      float* ys = y.f32() + item * count;
      double mean = k.sum(xs, count) / double(count);
      double var = k.sum_sq_dev(xs, count, static_cast<float>(mean)) / double(count);
      // The mean was rounded to float for the second pass; correct var for it exactly.
      double shift_err = mean - static_cast<double>(static_cast<float>(mean));
      var -= shift_err * shift_err;
      double rstd = 1.0 / std::sqrt(std::max(var, 0.0) + double(eps));
      // Centre on the float mean the second pass used; the residual shift_err is folded into `shift`.
      float center = static_cast<float>(mean);
      for (int64_t ch = 0; ch < per_group; ++ch) {
        int64_t cc = g * per_group + ch;
        double scale = rstd * (gd ? gd[cc] : 1.0);
        double shift = (bd ? bd[cc] : 0.0) - shift_err * scale;
        k.scale_shift(xs + ch * spatial, ys + ch * spatial, spatial, center, static_cast<float>(scale),
                      static_cast<float>(shift), fuse_silu ? 1 : 0);
      }
    }
  });
  return Status::ok();
}

}  // namespace bl
