// Converts JS tensor arguments ({ data: TypedArray, shape: number[], dtype: code })
// into borrowed bl::Tensor views of the same memory (zero-copy), throwing a
// TypeError/RangeError that names the argument on anything malformed.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "../core/tensor.h"

namespace bl_napi {

struct TensorArg {
  bl::Tensor tensor;
  Napi::Reference<Napi::Value> keep_alive;  // the typed array, held until the op finishes
};

// Parses args[index]; a null/undefined value is allowed only when `optional`.
bool parse_tensor(const Napi::Env& env, const Napi::Value& value, const std::string& op, const std::string& name,
                  bool optional, TensorArg* out);

std::vector<int> parse_int_triple(const Napi::Env& env, const Napi::Value& value, const std::string& op,
                                  const std::string& name);

}  // namespace bl_napi
