// One entry point for every core op, by name, so each op can be driven (and tested) from JS on
// every backend through a single binding: Node-API runOp, wasm bl_run_op.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "context.h"
#include "status.h"
#include "tensor.h"

namespace bl {

// Scalar and small-vector op attributes ("groups" -> {32}, "stride" -> {2, 2, 2}).
using OpAttrs = std::map<std::string, std::vector<double>>;

// Runs op `name` (see op_names()) on `inputs`, writing `outputs` (which the caller allocates with
// the right shapes). An unknown op, a wrong number of tensors, or a missing, unknown or malformed
// attribute is a RangeError naming it; tensor checks are the op's own.
//
//   op                   inputs                     outputs  attributes (default)
//   conv3d               x, weight [, bias]         y        stride (1), padding (0) or
//                                                             padding_before/padding_after (0); 1 or 3 values
//   group_norm           x [, weight, bias]         y        groups, eps (1e-5), silu (0)
//   silu                 x                          y
//   add                  a, b                       y
//   concat               x0, x1, ...                y
//   avg_pool3d_2x        x                          y
//   resize_nearest       x                          y        (size from y)
//   layer_norm_channels  x [, weight, bias]         y        eps (1e-5)
//   leaky_relu           x                          y        negative_slope (0.01)
//   gelu                 x                          y
//   geglu_channels       x                          y
//   spade_modulate       x, gamma, beta             y
//   scale                x                          y        factor
//   attention            q, k, v                    y        heads (1), scale (1/sqrt(head dim))
//   timestep_embedding   t                          y        dim
//   embedding_channels   ids, table                 y
//   clamp                x                          y        min, max
//   exp_scaled           x                          y        factor
//   convert_dtype        x (any dtype)              y (any dtype)
//   random_normal        (none)                     y        seed_hi (0), seed_lo (0), stream (0), offset (0):
//                                                             seed = seed_hi * 2^32 + seed_lo, halves in [0, 2^32);
//                                                             stream, offset integers in [0, 2^53)
//   philox4x32           (none)                     y [8]    counter (4 words), key (2 words): raw Philox4x32-10,
//                                                             word j as y[2j] = hi 16 bits, y[2j+1] = lo 16 bits
Status run_op(Context& ctx, const std::string& name, const std::vector<Tensor>& inputs, const OpAttrs& attrs,
              const std::vector<Tensor>& outputs);

// Every name run_op accepts, in the order of the table above.
const std::vector<std::string>& op_names();

}  // namespace bl
