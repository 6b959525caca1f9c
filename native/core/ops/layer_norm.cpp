// LayerNorm over the channels of channels-first token sequences [N, C, T] (torch.nn.LayerNorm(C)
// applied to [N, T, C]). Each token's C values are strided by T, so the kernel vectorises across
// neighbouring tokens: one strip of tokens is normalised per pass over its C rows, with the
// statistics accumulated in double per token (see layer_norm_cf in kernels_impl.inc).
#include <algorithm>
#include <cmath>
#include <string>

#include "../ops.h"

namespace bl {

Status layer_norm_channels(Context& ctx, const Tensor& x, float eps, const Tensor* gamma, const Tensor* beta,
                           Tensor& y) {
  const char* op = "layer_norm_channels";
  BL_RETURN_IF_ERROR(check_tensor(x, op, "input", -1));
  if (x.ndim < 3)
    return Status::range_error(std::string(op) + ": argument 'input' has shape " + x.shape_string() +
                               ", expected [N, C, T] (or [N, C, ...spatial], the tokens flattened)");
  if (!(eps > 0.0f) || !std::isfinite(eps))
    return Status::range_error(std::string(op) + ": argument 'eps' must be a positive finite number, got " +
                               std::to_string(eps));
  if ((gamma == nullptr) != (beta == nullptr))
    return Status::type_error(std::string(op) + ": arguments 'weight' and 'bias' must be given together or both omitted");
  const int64_t n = x.shape[0], c = x.shape[1];
  if (gamma) {
    BL_RETURN_IF_ERROR(check_tensor(*gamma, op, "weight", 1));
    BL_RETURN_IF_ERROR(check_shape(*gamma, op, "weight", &c, 1));
    BL_RETURN_IF_ERROR(check_tensor(*beta, op, "bias", 1));
    BL_RETURN_IF_ERROR(check_shape(*beta, op, "bias", &c, 1));
  }
  BL_RETURN_IF_ERROR(check_tensor(y, op, "out", -1));
  BL_RETURN_IF_ERROR(check_shape(y, op, "out", x.shape, x.ndim));

  const KernelTable& k = ctx.kernels();
  const int64_t tokens = x.numel() / (n * c);
  constexpr int64_t kTokensPerItem = 64;  // a multiple of every ISA's strip width
  const int64_t per_batch = (tokens + kTokensPerItem - 1) / kTokensPerItem;
  const float* gd = gamma ? gamma->f32() : nullptr;
  const float* bd = beta ? beta->f32() : nullptr;
  ctx.pool().parallel_for(n * per_batch, [&](int64_t begin, int64_t end, int) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / per_batch;
      const int64_t t0 = (item % per_batch) * kTokensPerItem, t1 = std::min(tokens, t0 + kTokensPerItem);
      k.layer_norm_cf(x.f32() + b * c * tokens, y.f32() + b * c * tokens, c, tokens, t0, t1, gd, bd, eps);
    }
  });
  return Status::ok();
}

}  // namespace bl
