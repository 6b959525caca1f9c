// Thin C ABI over the bl:: core for the WebAssembly builds. Node-API cannot be
// compiled to wasm with this emscripten (see TOOLCHAIN.md), so JS calls these
// exports directly. Tensors are described by plain structs whose `data` is an
// offset into the wasm heap: JS owns the allocations (bl_malloc/bl_free) and
// keeps them resident between calls, so no op copies its operands.
#include "../native/core/nets/network.h"
#include <emscripten/emscripten.h>
#include <emscripten/heap.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "../native/core/context.h"
#include "../native/core/op_registry.h"
#include "../native/core/ops.h"
#include "../native/core/tensor.h"

extern "C" {

// Mirrored field by field in ts/backend/wasm-backend.ts (44 bytes, 4-byte aligned).
struct bl_tensor_desc {
  int32_t dtype;  // bl::DType code
  int32_t ndim;
  int32_t shape[8];
  uint32_t data;  // heap offset
};

}  // extern "C"

static_assert(sizeof(bl_tensor_desc) == 44, "the JS side writes this layout by hand");
static_assert(offsetof(bl_tensor_desc, data) == 40, "the JS side writes this layout by hand");
static_assert(bl::kMaxDims == 8, "bl_tensor_desc.shape must hold kMaxDims dims");

namespace {

// A context plus the storage its info string points into (JS reads it after the call returns).
struct Handle {
  std::unique_ptr<bl::Context> ctx;
  std::string info;
};

// Errors are per calling thread so a failure cannot be overwritten by another
// thread's call between the failing call and JS reading the message.
thread_local std::string t_error;
thread_local int t_error_kind = 0;

int set_error(bl::ErrorKind kind, std::string message) {
  t_error = std::move(message);
  t_error_kind = static_cast<int>(kind);
  return t_error_kind;
}

void clear_error() {
  t_error.clear();
  t_error_kind = 0;
}

int from_status(const bl::Status& s) {
  if (s.is_ok()) return 0;
  return set_error(s.kind(), s.message());
}

// Validates what the core cannot: the descriptor itself and that the bytes it
// names lie inside the heap (an out-of-range offset would trap the whole
// instance instead of failing one call).
bl::Status to_tensor(const bl_tensor_desc* d, const char* op, const char* name, bl::Tensor* out) {
  std::string where = std::string(op) + ": argument '" + name + "'";
  if (!d) return bl::Status::type_error(where + " is missing (null descriptor)");
  if (d->dtype < 0 || d->dtype > 2)
    return bl::Status::type_error(where + " has unknown dtype code " + std::to_string(d->dtype));
  if (d->ndim < 0 || d->ndim > bl::kMaxDims)
    return bl::Status::range_error(where + " has " + std::to_string(d->ndim) + " dims, expected 0 to " +
                                   std::to_string(bl::kMaxDims));
  int64_t shape[bl::kMaxDims];
  uint64_t count = 1;
  for (int i = 0; i < d->ndim; ++i) {
    shape[i] = d->shape[i];
    if (d->shape[i] > 0) count *= static_cast<uint64_t>(d->shape[i]);
    if (count > (uint64_t(1) << 32)) break;  // already past any heap; the range check below reports it
  }
  auto dtype = static_cast<bl::DType>(d->dtype);
  uint64_t end = uint64_t(d->data) + count * bl::dtype_size(dtype);
  if (d->data != 0 && end > emscripten_get_heap_size())
    return bl::Status::range_error(where + " spans heap bytes [" + std::to_string(d->data) + ", " +
                                   std::to_string(end) + "), past the heap size " +
                                   std::to_string(emscripten_get_heap_size()));
  *out = bl::Tensor::borrow(reinterpret_cast<void*>(static_cast<uintptr_t>(d->data)), dtype, shape, d->ndim);
  return bl::Status::ok();
}

// Runs one op under the context's lock, turning C++ exceptions into errors so
// none ever unwinds into JS (an escaped exception would abort the instance).
template <class Fn>
int guarded(uintptr_t handle, Fn&& fn) {
  clear_error();
  if (!handle) return set_error(bl::ErrorKind::Type, "invalid context (null handle)");
  Handle* h = reinterpret_cast<Handle*>(handle);
  try {
    std::lock_guard<std::mutex> lock(h->ctx->mutex());
    return from_status(fn(*h->ctx));
  } catch (const std::bad_alloc&) {
    return set_error(bl::ErrorKind::Runtime, "out of wasm memory (the heap cannot grow past 4 GiB)");
  } catch (const std::exception& e) {
    return set_error(bl::ErrorKind::Runtime, std::string("internal error: ") + e.what());
  } catch (...) {
    return set_error(bl::ErrorKind::Runtime, "internal error: unknown C++ exception");
  }
}

bl::Status read_triple(const int32_t* v, const char* op, const char* name, int out[3]) {
  if (!v) return bl::Status::type_error(std::string(op) + ": argument '" + name + "' is missing (null pointer)");
  for (int i = 0; i < 3; ++i) out[i] = v[i];
  return bl::Status::ok();
}

// Attributes for bl_run_op as text: "key=v,v,...;key2=v" (numbers as JS String(number) writes
// them, including Infinity/NaN, which strtod reads). Empty or null text: no attributes.
bl::Status parse_attrs(const char* text, const std::string& op, bl::OpAttrs* out) {
  if (!text) return bl::Status::ok();
  const std::string s(text);
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(';', pos);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      return bl::Status::range_error(op + ": malformed attribute text '" + item + "', expected key=value[,value...]");
    const std::string key = item.substr(0, eq);
    std::vector<double> values;
    size_t vpos = eq + 1;
    if (vpos < item.size()) {
      for (;;) {
        size_t comma = item.find(',', vpos);
        if (comma == std::string::npos) comma = item.size();
        const std::string num = item.substr(vpos, comma - vpos);
        char* stop = nullptr;
        const double v = std::strtod(num.c_str(), &stop);
        if (num.empty() || stop != num.c_str() + num.size())
          return bl::Status::range_error(op + ": attribute '" + key + "' holds '" + num + "', which is not a number");
        values.push_back(v);
        if (comma == item.size()) break;
        vpos = comma + 1;
      }
    }
    (*out)[key] = std::move(values);
  }
  return bl::Status::ok();
}

}  // namespace

extern "C" {

EMSCRIPTEN_KEEPALIVE const char* bl_last_error(void) { return t_error.c_str(); }

EMSCRIPTEN_KEEPALIVE int bl_last_error_kind(void) { return t_error_kind; }

EMSCRIPTEN_KEEPALIVE uintptr_t bl_context_create(int threads, const char* isa) {
  clear_error();
  try {
    bl::ContextOptions options;
    options.threads = threads;
    options.isa = isa ? isa : "auto";
    std::unique_ptr<bl::Context> ctx;
    bl::Status s = bl::Context::create(options, &ctx);
    if (!s.is_ok()) {
      from_status(s);
      return 0;
    }
    auto h = std::make_unique<Handle>();
    char info[256];
    std::snprintf(info, sizeof info,
                  "{\"isa\":\"%s\",\"threads\":%d,\"spinMicros\":%lld,\"splitBatch\":%s,\"coreVersion\":\"%s\",\"compiler\":\"emscripten %d.%d.%d\"}",
                  bl::isa_name(ctx->isa()), ctx->threads(), static_cast<long long>(ctx->spin_micros()), ctx->split_batch() ? "true" : "false", bl::core_version(), __EMSCRIPTEN_major__,
                  __EMSCRIPTEN_minor__, __EMSCRIPTEN_tiny__);
    h->info = info;
    h->ctx = std::move(ctx);
    return reinterpret_cast<uintptr_t>(h.release());
  } catch (const std::bad_alloc&) {
    set_error(bl::ErrorKind::Runtime, "out of wasm memory while creating the context");
  } catch (const std::exception& e) {
    // std::system_error when a worker thread cannot start (pthread pool exhausted).
    set_error(bl::ErrorKind::Runtime, std::string("cannot create the context: ") + e.what());
  } catch (...) {
    set_error(bl::ErrorKind::Runtime, "cannot create the context: unknown C++ exception");
  }
  return 0;
}

EMSCRIPTEN_KEEPALIVE void bl_context_destroy(uintptr_t handle) {
  // Joins the pool's threads; their workers go back to emscripten's pool.
  delete reinterpret_cast<Handle*>(handle);
}

EMSCRIPTEN_KEEPALIVE const char* bl_context_info(uintptr_t handle) {
  if (!handle) return "{}";
  return reinterpret_cast<Handle*>(handle)->info.c_str();
}

EMSCRIPTEN_KEEPALIVE void* bl_malloc(size_t bytes) {
  try {
    return bl::aligned_malloc(bytes);
  } catch (...) {
    return nullptr;  // JS reports the failed allocation with the size it asked for
  }
}

EMSCRIPTEN_KEEPALIVE void bl_free(void* p) { bl::aligned_free(p); }

EMSCRIPTEN_KEEPALIVE int bl_conv3d(uintptr_t handle, const bl_tensor_desc* x, const bl_tensor_desc* w,
                                   const bl_tensor_desc* bias_or_null, const bl_tensor_desc* out,
                                   const int32_t* stride3, const int32_t* pad_before3, const int32_t* pad_after3) {
  return guarded(handle, [&](bl::Context& ctx) {
    const char* op = "conv3d";
    bl::Tensor tx, tw, tb, ty;
    bl::Conv3dParams p;
    BL_RETURN_IF_ERROR(to_tensor(x, op, "input", &tx));
    BL_RETURN_IF_ERROR(to_tensor(w, op, "weight", &tw));
    if (bias_or_null) BL_RETURN_IF_ERROR(to_tensor(bias_or_null, op, "bias", &tb));
    BL_RETURN_IF_ERROR(to_tensor(out, op, "out", &ty));
    BL_RETURN_IF_ERROR(read_triple(stride3, op, "stride", p.stride));
    BL_RETURN_IF_ERROR(read_triple(pad_before3, op, "padding.before", p.pad_before));
    BL_RETURN_IF_ERROR(read_triple(pad_after3, op, "padding.after", p.pad_after));
    return bl::conv3d(ctx, tx, tw, bias_or_null ? &tb : nullptr, p, ty);
  });
}

EMSCRIPTEN_KEEPALIVE int bl_group_norm(uintptr_t handle, const bl_tensor_desc* x, int groups, float eps,
                                       const bl_tensor_desc* gamma_or_null, const bl_tensor_desc* beta_or_null,
                                       int silu, const bl_tensor_desc* out) {
  return guarded(handle, [&](bl::Context& ctx) {
    const char* op = "group_norm";
    bl::Tensor tx, tg, tb, ty;
    BL_RETURN_IF_ERROR(to_tensor(x, op, "input", &tx));
    if (gamma_or_null) BL_RETURN_IF_ERROR(to_tensor(gamma_or_null, op, "weight", &tg));
    if (beta_or_null) BL_RETURN_IF_ERROR(to_tensor(beta_or_null, op, "bias", &tb));
    BL_RETURN_IF_ERROR(to_tensor(out, op, "out", &ty));
    return bl::group_norm(ctx, tx, groups, eps, gamma_or_null ? &tg : nullptr, beta_or_null ? &tb : nullptr,
                          silu != 0, ty);
  });
}

EMSCRIPTEN_KEEPALIVE int bl_silu(uintptr_t handle, const bl_tensor_desc* x, const bl_tensor_desc* out) {
  return guarded(handle, [&](bl::Context& ctx) {
    bl::Tensor tx, ty;
    BL_RETURN_IF_ERROR(to_tensor(x, "silu", "input", &tx));
    BL_RETURN_IF_ERROR(to_tensor(out, "silu", "out", &ty));
    return bl::silu(ctx, tx, ty);
  });
}

EMSCRIPTEN_KEEPALIVE int bl_add(uintptr_t handle, const bl_tensor_desc* a, const bl_tensor_desc* b,
                                const bl_tensor_desc* out) {
  return guarded(handle, [&](bl::Context& ctx) {
    bl::Tensor ta, tb, ty;
    BL_RETURN_IF_ERROR(to_tensor(a, "add", "a", &ta));
    BL_RETURN_IF_ERROR(to_tensor(b, "add", "b", &tb));
    BL_RETURN_IF_ERROR(to_tensor(out, "add", "out", &ty));
    return bl::add(ctx, ta, tb, ty);
  });
}

EMSCRIPTEN_KEEPALIVE int bl_concat(uintptr_t handle, const bl_tensor_desc* xs, int count, const bl_tensor_desc* out) {
  return guarded(handle, [&](bl::Context& ctx) {
    if (count < 1) return bl::Status::range_error("concat: argument 'inputs' must hold at least one tensor");
    if (!xs) return bl::Status::type_error("concat: argument 'inputs' is missing (null pointer)");
    std::vector<bl::Tensor> ts(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
      std::string name = "inputs[" + std::to_string(i) + "]";
      BL_RETURN_IF_ERROR(to_tensor(xs + i, "concat", name.c_str(), &ts[i]));
    }
    bl::Tensor ty;
    BL_RETURN_IF_ERROR(to_tensor(out, "concat", "out", &ty));
    return bl::concat_channels(ctx, ts.data(), count, ty);
  });
}

// Any core op by name (native/core/op_registry.h): inputs[n_in] and outputs[n_out] are
// descriptor arrays, attrs the text encoding read by parse_attrs above.
EMSCRIPTEN_KEEPALIVE int bl_run_op(uintptr_t handle, const char* name, const bl_tensor_desc* inputs, int n_in,
                                   const char* attrs, const bl_tensor_desc* outputs, int n_out) {
  return guarded(handle, [&](bl::Context& ctx) {
    if (!name) return bl::Status::type_error("run_op: argument 'name' is missing (null pointer)");
    const std::string op(name);
    if (n_in < 0 || n_out < 0 || (n_in > 0 && !inputs) || (n_out > 0 && !outputs))
      return bl::Status::type_error(op + ": tensor descriptor arrays are missing or have a negative count");
    std::vector<bl::Tensor> ins(static_cast<size_t>(n_in)), outs(static_cast<size_t>(n_out));
    for (int i = 0; i < n_in; ++i) {
      std::string arg = "inputs[" + std::to_string(i) + "]";
      BL_RETURN_IF_ERROR(to_tensor(inputs + i, op.c_str(), arg.c_str(), &ins[i]));
    }
    for (int i = 0; i < n_out; ++i) {
      std::string arg = "outputs[" + std::to_string(i) + "]";
      BL_RETURN_IF_ERROR(to_tensor(outputs + i, op.c_str(), arg.c_str(), &outs[i]));
    }
    bl::OpAttrs parsed;
    BL_RETURN_IF_ERROR(parse_attrs(attrs, op, &parsed));
    return bl::run_op(ctx, op, ins, parsed, outs);
  });
}

// Returns the peak in GFLOP/s, or a negative value with the error set.
EMSCRIPTEN_KEEPALIVE double bl_probe_peak_gflops(uintptr_t handle, double seconds_per_repeat, int repeats) {
  double result = -1.0;
  int rc = guarded(handle, [&](bl::Context& ctx) {
    if (!(seconds_per_repeat > 0.0) || seconds_per_repeat > 60.0)
      return bl::Status::range_error("probePeakGflops: seconds per repeat must be in (0, 60], got " +
                                     std::to_string(seconds_per_repeat));
    if (repeats < 1 || repeats > 100)
      return bl::Status::range_error("probePeakGflops: repeats must be in [1, 100], got " + std::to_string(repeats));
    result = ctx.probe_peak_gflops(seconds_per_repeat, repeats);
    return bl::Status::ok();
  });
  return rc == 0 ? result : -1.0;
}

}  // extern "C"

// ---- Networks ---------------------------------------------------------------
// A network built from spec text and weights: float32 weights are borrowed from
// the heap (JS keeps them until bl_network_destroy), 16-bit ones are widened to
// float32 copies here. Outputs of the last run stay in the network's pool until
// released, so JS copies them out through their descriptors.

namespace {

struct NetworkHandle {
  std::unique_ptr<bl::Network> network;
  bl::NamedTensors outputs;
  std::vector<std::string> output_names;
  std::vector<bl_tensor_desc> output_descs;
  std::string entries;
};

std::vector<std::string> split_names(const char* names) {
  std::vector<std::string> out;
  if (!names) return out;
  std::string all(names);
  size_t pos = 0;
  for (;;) {
    size_t nl = all.find('\n', pos);
    out.push_back(all.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return out;
}

}  // namespace

extern "C" {

// names: the weights' names joined by '\n', in descriptor order.
EMSCRIPTEN_KEEPALIVE uintptr_t bl_network_create(uintptr_t handle, const char* spec_text, const bl_tensor_desc* weights,
                                                 const char* names, int count) {
  uintptr_t result = 0;
  int rc = guarded(handle, [&](bl::Context& ctx) -> bl::Status {
    bl::NetworkSpec spec;
    BL_RETURN_IF_ERROR(bl::parse_network_spec(spec_text ? spec_text : "", &spec));
    std::vector<std::string> keys = split_names(names);
    if (count < 0 || (count > 0 && (!weights || static_cast<int>(keys.size()) != count)))
      return bl::Status::type_error("createNetwork: " + std::to_string(keys.size()) + " weight names for " +
                                    std::to_string(count) + " weight descriptors");
    bl::WeightStore store;
    for (int i = 0; i < count; ++i) {
      bl::Tensor t;
      std::string arg = "weights '" + keys[i] + "'";
      BL_RETURN_IF_ERROR(to_tensor(weights + i, "createNetwork", arg.c_str(), &t));
      if (t.dtype == bl::DType::F32) {
        store.add(keys[i], t);
      } else {
        bl::Tensor wide = bl::Tensor::empty(bl::DType::F32, t.shape, t.ndim);
        BL_RETURN_IF_ERROR(bl::convert_dtype(ctx, t, wide));
        store.add(keys[i], wide);
      }
    }
    auto h = std::make_unique<NetworkHandle>();
    BL_RETURN_IF_ERROR(bl::create_network(spec, store, &h->network));
    for (const std::string& e : h->network->entries()) h->entries += (h->entries.empty() ? "" : "\n") + e;
    result = reinterpret_cast<uintptr_t>(h.release());
    return bl::Status::ok();
  });
  return rc == 0 ? result : 0;
}

EMSCRIPTEN_KEEPALIVE int bl_network_run(uintptr_t handle, uintptr_t net, const char* entry, const bl_tensor_desc* inputs,
                                        const char* names, int count) {
  return guarded(handle, [&](bl::Context& ctx) -> bl::Status {
    if (!net) return bl::Status::type_error("network.run: invalid network (null handle)");
    auto* n = reinterpret_cast<NetworkHandle*>(net);
    n->outputs.clear();
    n->output_names.clear();
    n->output_descs.clear();
    std::vector<std::string> keys = split_names(names);
    if (count < 0 || (count > 0 && static_cast<int>(keys.size()) != count))
      return bl::Status::type_error("network.run: input names do not match the input descriptors");
    bl::NamedTensors in;
    for (int i = 0; i < count; ++i) {
      std::string arg = "inputs." + keys[i];
      BL_RETURN_IF_ERROR(to_tensor(inputs + i, "network.run", arg.c_str(), &in[keys[i]]));
    }
    BL_RETURN_IF_ERROR(n->network->run(ctx, entry ? entry : "", in, &n->outputs));
    for (auto& [name, t] : n->outputs) {
      bl_tensor_desc d{};
      d.dtype = 0;
      d.ndim = t.ndim;
      for (int i = 0; i < t.ndim; ++i) d.shape[i] = static_cast<int32_t>(t.shape[i]);
      d.data = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(t.data));
      n->output_names.push_back(name);
      n->output_descs.push_back(d);
    }
    return bl::Status::ok();
  });
}

EMSCRIPTEN_KEEPALIVE int bl_network_output_count(uintptr_t net) {
  return net ? static_cast<int>(reinterpret_cast<NetworkHandle*>(net)->output_descs.size()) : 0;
}

EMSCRIPTEN_KEEPALIVE const char* bl_network_output_name(uintptr_t net, int i) {
  return reinterpret_cast<NetworkHandle*>(net)->output_names.at(i).c_str();
}

EMSCRIPTEN_KEEPALIVE const bl_tensor_desc* bl_network_output_desc(uintptr_t net, int i) {
  return &reinterpret_cast<NetworkHandle*>(net)->output_descs.at(i);
}

// Returns the last run's output buffers to the network's pool.
EMSCRIPTEN_KEEPALIVE void bl_network_release_outputs(uintptr_t net) {
  if (!net) return;
  auto* n = reinterpret_cast<NetworkHandle*>(net);
  n->outputs.clear();
  n->output_names.clear();
  n->output_descs.clear();
}

EMSCRIPTEN_KEEPALIVE const char* bl_network_entries(uintptr_t net) {
  return reinterpret_cast<NetworkHandle*>(net)->entries.c_str();
}

// stats[0] = activation buffer allocations so far, stats[1] = bytes they hold.
EMSCRIPTEN_KEEPALIVE void bl_network_stats(uintptr_t net, double* stats) {
  auto* n = reinterpret_cast<NetworkHandle*>(net);
  stats[0] = static_cast<double>(n->network->buffer_allocations());
  stats[1] = static_cast<double>(n->network->buffer_bytes());
}

// Every weight key the network of `spec_text` binds and its shape, as lines "name\td0,d1,...", in binding order;
// null on error (bl_last_error). The text lives until the next call on this thread.
EMSCRIPTEN_KEEPALIVE const char* bl_network_weight_shapes(uintptr_t handle, const char* spec_text) {
  static thread_local std::string text;
  int rc = guarded(handle, [&](bl::Context&) -> bl::Status {
    bl::NetworkSpec spec;
    BL_RETURN_IF_ERROR(bl::parse_network_spec(spec_text ? spec_text : "", &spec));
    std::vector<bl::WeightStore::Request> requests;
    BL_RETURN_IF_ERROR(bl::list_network_weights(spec, &requests));
    text.clear();
    for (const auto& r : requests) {
      text += r.name;
      text += '\t';
      for (size_t d = 0; d < r.shape.size(); ++d) text += (d ? "," : "") + std::to_string(r.shape[d]);
      text += '\n';
    }
    return bl::Status::ok();
  });
  return rc == 0 ? text.c_str() : nullptr;
}

EMSCRIPTEN_KEEPALIVE void bl_network_destroy(uintptr_t net) { delete reinterpret_cast<NetworkHandle*>(net); }

}  // extern "C"
