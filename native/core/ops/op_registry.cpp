// run_op: every core op behind one name-based entry point (see op_registry.h for the table).
#include "../op_registry.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "../ops.h"

namespace bl {

namespace {

std::string number_string(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// Text that reads back as exactly v (integers up to 2^53 in full, not in %.9g exponent form).
std::string exact_string(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// Reads an op's attributes, remembering which keys it asked for so leftovers can be reported.
class AttrReader {
 public:
  AttrReader(const std::string& op, const OpAttrs& attrs) : op_(op), attrs_(attrs) {}

  Status real(const char* key, double* out) { return read(key, nullptr, out); }
  Status real(const char* key, double def, double* out) { return read(key, &def, out); }

  Status integer(const char* key, const int64_t* def, int64_t lo, int64_t hi, int* out) {
    double v = 0.0;
    if (def) {
      double d = static_cast<double>(*def);
      BL_RETURN_IF_ERROR(read(key, &d, &v));
    } else {
      BL_RETURN_IF_ERROR(read(key, nullptr, &v));
    }
    if (!(v == std::floor(v)) || v < static_cast<double>(lo) || v > static_cast<double>(hi))
      return Status::range_error(op_ + ": attribute '" + key + "' must be an integer in [" + std::to_string(lo) + ", " +
                                 std::to_string(hi) + "], got " + number_string(v));
    *out = static_cast<int>(v);
    return Status::ok();
  }

  // 1 value (used for all three dims) or 3 values, integers in [lo, hi]; `def` when absent.
  Status triple(const char* key, int def, int lo, int hi, int out[3]) {
    auto it = find(key);
    if (it == attrs_.end()) {
      out[0] = out[1] = out[2] = def;
      return Status::ok();
    }
    const std::vector<double>& vals = it->second;
    if (vals.size() != 1 && vals.size() != 3)
      return Status::range_error(op_ + ": attribute '" + key + "' must hold 1 or 3 values, got " +
                                 std::to_string(vals.size()));
    for (int i = 0; i < 3; ++i) {
      double v = vals[vals.size() == 1 ? 0 : i];
      if (!(v == std::floor(v)) || v < lo || v > hi)
        return Status::range_error(op_ + ": attribute '" + key + "' must hold integers in [" + std::to_string(lo) +
                                   ", " + std::to_string(hi) + "], got " + number_string(v));
      out[i] = static_cast<int>(v);
    }
    return Status::ok();
  }

  // `count` integers in [0, hi] (exact in a double: hi <= 2^53 - 1), required.
  Status unsigned_list(const char* key, size_t count, double hi, uint64_t* out) {
    auto it = find(key);
    if (it == attrs_.end()) return Status::range_error(op_ + ": missing attribute '" + key + "'");
    if (it->second.size() != count)
      return Status::range_error(op_ + ": attribute '" + key + "' must hold " + std::to_string(count) + " values, got " +
                                 std::to_string(it->second.size()));
    for (size_t i = 0; i < count; ++i) {
      const double v = it->second[i];
      if (!(v == std::floor(v)) || v < 0.0 || v > hi)
        return Status::range_error(op_ + ": attribute '" + key + "' must hold integers in [0, " +
                                   std::to_string(static_cast<uint64_t>(hi)) + "], got " + exact_string(v));
      out[i] = static_cast<uint64_t>(v);
    }
    return Status::ok();
  }

  // One integer in [0, hi] (hi <= 2^53 - 1), `def` when absent.
  Status unsigned_int(const char* key, uint64_t def, double hi, uint64_t* out) {
    if (!has(key)) {
      *out = def;
      return Status::ok();
    }
    return unsigned_list(key, 1, hi, out);
  }

  bool has(const char* key) {
    return find(key) != attrs_.end();
  }

  // Any attribute the op did not ask for is a RangeError (a misspelt key must not be ignored).
  Status finish() const {
    for (const auto& kv : attrs_) {
      bool known = false;
      for (const auto& k : asked_) known = known || k == kv.first;
      if (!known) {
        std::string accepted;
        for (const auto& k : asked_) accepted += (accepted.empty() ? "" : ", ") + k;
        return Status::range_error(op_ + ": unknown attribute '" + kv.first + "'" +
                                   (accepted.empty() ? std::string(" (it takes none)") : " (accepted: " + accepted + ")"));
      }
    }
    return Status::ok();
  }

 private:
  OpAttrs::const_iterator find(const char* key) {
    bool seen = false;
    for (const auto& k : asked_) seen = seen || k == key;
    if (!seen) asked_.emplace_back(key);
    return attrs_.find(key);
  }

  Status read(const char* key, const double* def, double* out) {
    auto it = find(key);
    if (it == attrs_.end()) {
      if (!def) return Status::range_error(op_ + ": missing attribute '" + key + "'");
      *out = *def;
      return Status::ok();
    }
    if (it->second.size() != 1)
      return Status::range_error(op_ + ": attribute '" + key + "' must hold one number, got " +
                                 std::to_string(it->second.size()) + " values");
    *out = it->second[0];
    return Status::ok();
  }

  std::string op_;
  const OpAttrs& attrs_;
  std::vector<std::string> asked_;
};

using OpFn = std::function<Status(Context&, const std::vector<Tensor>&, AttrReader&, Tensor&)>;

struct OpEntry {
  const char* name;
  int min_inputs;
  int max_inputs;  // -1: any number >= min_inputs
  OpFn fn;
};

const Tensor* optional_input(const std::vector<Tensor>& in, size_t i) { return in.size() > i ? &in[i] : nullptr; }

const std::vector<OpEntry>& registry() {
  static const std::vector<OpEntry> ops = {
      {"conv3d", 2, 3,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         Conv3dParams p;
         BL_RETURN_IF_ERROR(a.triple("stride", 1, 1, 1 << 20, p.stride));
         const bool split = a.has("padding_before") || a.has("padding_after");
         if (split && a.has("padding"))
           return Status::range_error("conv3d: give attribute 'padding' or 'padding_before'/'padding_after', not both");
         if (split) {
           BL_RETURN_IF_ERROR(a.triple("padding_before", 0, 0, 1 << 20, p.pad_before));
           BL_RETURN_IF_ERROR(a.triple("padding_after", 0, 0, 1 << 20, p.pad_after));
         } else {
           BL_RETURN_IF_ERROR(a.triple("padding", 0, 0, 1 << 20, p.pad_before));
           for (int i = 0; i < 3; ++i) p.pad_after[i] = p.pad_before[i];
         }
         const int64_t auto_algorithm = 0;
         int algorithm = 0;  // 0 auto, 1 direct, 2 winograd, 3 gathered, 4 winograd4 (Conv3dAlgorithm)
         BL_RETURN_IF_ERROR(a.integer("algorithm", &auto_algorithm, 0, 4, &algorithm));
         p.algorithm = static_cast<Conv3dAlgorithm>(algorithm);
         const int64_t default_chunk = 0;
         int chunk_bytes = 0;
         BL_RETURN_IF_ERROR(a.integer("chunk_bytes", &default_chunk, 0, 1 << 30, &chunk_bytes));
         p.chunk_bytes = chunk_bytes;
         BL_RETURN_IF_ERROR(a.finish());
         return conv3d(c, in[0], in[1], optional_input(in, 2), p, y);
       }},
      {"group_norm", 1, 3,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         int groups = 0;
         double eps = 0.0, silu_flag = 0.0;
         BL_RETURN_IF_ERROR(a.integer("groups", nullptr, 1, 1 << 30, &groups));
         BL_RETURN_IF_ERROR(a.real("eps", 1e-5, &eps));
         BL_RETURN_IF_ERROR(a.real("silu", 0.0, &silu_flag));
         BL_RETURN_IF_ERROR(a.finish());
         if (in.size() == 2)
           return Status::range_error("group_norm: takes input, or input, weight and bias (got 2 inputs)");
         return group_norm(c, in[0], groups, static_cast<float>(eps), optional_input(in, 1), optional_input(in, 2),
                           silu_flag != 0.0, y);
       }},
      {"silu", 1, 1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         BL_RETURN_IF_ERROR(a.finish());
         return silu(c, in[0], y);
       }},
      {"add", 2, 2,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         BL_RETURN_IF_ERROR(a.finish());
         return add(c, in[0], in[1], y);
       }},
      {"concat", 1, -1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         BL_RETURN_IF_ERROR(a.finish());
         return concat_channels(c, in.data(), static_cast<int>(in.size()), y);
       }},
      {"avg_pool3d_2x", 1, 1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         BL_RETURN_IF_ERROR(a.finish());
         return avg_pool3d_2x(c, in[0], y);
       }},
      {"resize_nearest", 1, 1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         BL_RETURN_IF_ERROR(a.finish());
         return resize_nearest(c, in[0], y);
       }},
      {"layer_norm_channels", 1, 3,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         double eps = 0.0;
         BL_RETURN_IF_ERROR(a.real("eps", 1e-5, &eps));
         BL_RETURN_IF_ERROR(a.finish());
         if (in.size() == 2)
           return Status::range_error("layer_norm_channels: takes input, or input, weight and bias (got 2 inputs)");
         return layer_norm_channels(c, in[0], static_cast<float>(eps), optional_input(in, 1), optional_input(in, 2), y);
       }},
      {"leaky_relu", 1, 1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         double slope = 0.0;
         BL_RETURN_IF_ERROR(a.real("negative_slope", 0.01, &slope));
         BL_RETURN_IF_ERROR(a.finish());
         return leaky_relu(c, in[0], static_cast<float>(slope), y);
       }},
      {"gelu", 1, 1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         BL_RETURN_IF_ERROR(a.finish());
         return gelu(c, in[0], y);
       }},
      {"geglu_channels", 1, 1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         BL_RETURN_IF_ERROR(a.finish());
         return geglu_channels(c, in[0], y);
       }},
      {"spade_modulate", 3, 3,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         BL_RETURN_IF_ERROR(a.finish());
         return spade_modulate(c, in[0], in[1], &in[2], y);
       }},
      {"scale", 1, 1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         double factor = 0.0;
         BL_RETURN_IF_ERROR(a.real("factor", &factor));
         BL_RETURN_IF_ERROR(a.finish());
         return scale(c, in[0], static_cast<float>(factor), y);
       }},
      {"attention", 3, 3,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         int heads = 1;
         const int64_t one = 1;
         BL_RETURN_IF_ERROR(a.integer("heads", &one, 1, 1 << 20, &heads));
         // Default scale 1/sqrt(head dim); q is checked by the op itself, so guard the division here.
         double head_dim = in[0].ndim == 3 && in[0].shape[1] % heads == 0 ? double(in[0].shape[1] / heads) : 1.0;
         double s = 0.0;
         BL_RETURN_IF_ERROR(a.real("scale", 1.0 / std::sqrt(head_dim), &s));
         BL_RETURN_IF_ERROR(a.finish());
         return attention(c, in[0], in[1], in[2], heads, static_cast<float>(s), y);
       }},
      {"timestep_embedding", 1, 1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         int dim = 0;
         BL_RETURN_IF_ERROR(a.integer("dim", nullptr, 1, 1 << 30, &dim));
         BL_RETURN_IF_ERROR(a.finish());
         return timestep_embedding(c, in[0], dim, y);
       }},
      {"embedding_channels", 2, 2,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         BL_RETURN_IF_ERROR(a.finish());
         return embedding_channels(c, in[0], in[1], y);
       }},
      {"clamp", 1, 1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         double lo = 0.0, hi = 0.0;
         BL_RETURN_IF_ERROR(a.real("min", &lo));
         BL_RETURN_IF_ERROR(a.real("max", &hi));
         BL_RETURN_IF_ERROR(a.finish());
         return clamp(c, in[0], static_cast<float>(lo), static_cast<float>(hi), y);
       }},
      {"exp_scaled", 1, 1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         double factor = 0.0;
         BL_RETURN_IF_ERROR(a.real("factor", &factor));
         BL_RETURN_IF_ERROR(a.finish());
         return exp_scaled(c, in[0], static_cast<float>(factor), y);
       }},
      {"convert_dtype", 1, 1,
       [](Context& c, const std::vector<Tensor>& in, AttrReader& a, Tensor& y) {
         BL_RETURN_IF_ERROR(a.finish());
         return convert_dtype(c, in[0], y);
       }},
      {"random_normal", 0, 0,
       [](Context& c, const std::vector<Tensor>&, AttrReader& a, Tensor& y) {
         // 64-bit seed as two 32-bit halves; stream and offset exact JS integers.
         constexpr double kU32 = 4294967295.0, kSafe = 9007199254740991.0;
         uint64_t hi = 0, lo = 0, stream = 0, offset = 0;
         BL_RETURN_IF_ERROR(a.unsigned_int("seed_hi", 0, kU32, &hi));
         BL_RETURN_IF_ERROR(a.unsigned_int("seed_lo", 0, kU32, &lo));
         BL_RETURN_IF_ERROR(a.unsigned_int("stream", 0, kSafe, &stream));
         BL_RETURN_IF_ERROR(a.unsigned_int("offset", 0, kSafe, &offset));
         BL_RETURN_IF_ERROR(a.finish());
         return random_normal(c, (hi << 32) | lo, stream, offset, y);
       }},
      {"philox4x32", 0, 0,
       [](Context& c, const std::vector<Tensor>&, AttrReader& a, Tensor& y) {
         constexpr double kU32 = 4294967295.0;
         uint64_t ctr[4], key[2];
         BL_RETURN_IF_ERROR(a.unsigned_list("counter", 4, kU32, ctr));
         BL_RETURN_IF_ERROR(a.unsigned_list("key", 2, kU32, key));
         BL_RETURN_IF_ERROR(a.finish());
         const uint32_t c32[4] = {uint32_t(ctr[0]), uint32_t(ctr[1]), uint32_t(ctr[2]), uint32_t(ctr[3])};
         const uint32_t k32[2] = {uint32_t(key[0]), uint32_t(key[1])};
         return philox4x32(c, c32, k32, y);
       }},
  };
  return ops;
}

std::string plural(size_t n, const char* word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); }

}  // namespace

const std::vector<std::string>& op_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& e : registry()) out.emplace_back(e.name);
    return out;
  }();
  return names;
}

Status run_op(Context& ctx, const std::string& name, const std::vector<Tensor>& inputs, const OpAttrs& attrs,
              const std::vector<Tensor>& outputs) {
  const std::string canonical = name == "concat_channels" ? "concat" : name == "convert" ? "convert_dtype" : name;
  const OpEntry* entry = nullptr;
  for (const auto& e : registry())
    if (canonical == e.name) entry = &e;
  if (!entry) {
    std::string known;
    for (const auto& n : op_names()) known += (known.empty() ? "" : ", ") + n;
    return Status::range_error("run_op: unknown op '" + name + "' (known ops: " + known + ")");
  }
  const size_t n_in = inputs.size();
  if (n_in < static_cast<size_t>(entry->min_inputs) ||
      (entry->max_inputs >= 0 && n_in > static_cast<size_t>(entry->max_inputs))) {
    std::string want = entry->max_inputs < 0 ? "at least " + plural(entry->min_inputs, "input")
                       : entry->min_inputs == entry->max_inputs
                           ? plural(entry->min_inputs, "input")
                           : std::to_string(entry->min_inputs) + " to " + plural(entry->max_inputs, "input");
    return Status::range_error(std::string(entry->name) + ": takes " + want + ", got " + std::to_string(n_in));
  }
  if (outputs.size() != 1)
    return Status::range_error(std::string(entry->name) + ": takes 1 output, got " + std::to_string(outputs.size()));
  for (const auto& kv : attrs)
    for (double v : kv.second)
      if (std::isnan(v))
        return Status::range_error(std::string(entry->name) + ": attribute '" + kv.first + "' is NaN");
  AttrReader reader(entry->name, attrs);
  Tensor out = outputs[0];
  return entry->fn(ctx, inputs, reader, out);
}

}  // namespace bl
