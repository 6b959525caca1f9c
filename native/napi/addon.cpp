// The Node-API surface: a Context class whose ops run on libuv's thread pool
// (AsyncWorker) and resolve Promises, so the event loop stays free while the
// core's own threads compute. Tensors are borrowed views of JS typed arrays.
#include <napi.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../core/context.h"
#include "../core/memory_plan.h"
#include "../core/op_registry.h"
#include "../core/ops.h"
#include "network_wrap.h"
#include "tensor_arg.h"

namespace bl_napi {

namespace {

Napi::Error to_js_error(Napi::Env env, const bl::Status& s) {
  switch (s.kind()) {
    case bl::ErrorKind::Type: return Napi::TypeError::New(env, s.message());
    case bl::ErrorKind::Range: return Napi::RangeError::New(env, s.message());
    default: return Napi::Error::New(env, s.message());
  }
}

std::string compiler_string() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return "gcc " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." + std::to_string(__GNUC_PATCHLEVEL__);
#else
  return "unknown";
#endif
}

// Runs one core op off the JS thread. The tensors' typed arrays stay referenced
// until it settles; the context is shared so dispose() cannot free it mid-op.
class OpWorker : public Napi::AsyncWorker {
 public:
  using Job = std::function<bl::Status(bl::Context&)>;
  OpWorker(Napi::Env env, std::shared_ptr<bl::Context> ctx, std::vector<TensorArg> args, Job job)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), ctx_(std::move(ctx)),
        args_(std::move(args)), job_(std::move(job)) {}

  Napi::Promise promise() { return deferred_.Promise(); }
  double result = 0.0;

 protected:
  void Execute() override {
    std::lock_guard<std::mutex> lock(ctx_->mutex());
    try {
      status_ = job_(*ctx_);
    } catch (const std::bad_alloc&) {
      status_ = bl::Status::runtime_error("out of memory");
    } catch (const std::exception& e) {
      status_ = bl::Status::runtime_error(e.what());
    }
  }
  void OnOK() override {
    if (status_.is_ok())
      deferred_.Resolve(result_value_ ? Napi::Number::New(Env(), *result_value_) : Env().Undefined());
    else
      deferred_.Reject(to_js_error(Env(), status_).Value());
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 public:
  std::shared_ptr<double> result_value_;

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<bl::Context> ctx_;
  std::vector<TensorArg> args_;
  Job job_;
  bl::Status status_;
};

class NativeContext : public Napi::ObjectWrap<NativeContext> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeContext",
                       {InstanceMethod("info", &NativeContext::Info), InstanceMethod("stats", &NativeContext::Stats),
                        InstanceMethod("conv3d", &NativeContext::Conv3d),
                        InstanceMethod("groupNorm", &NativeContext::GroupNorm),
                        InstanceMethod("silu", &NativeContext::Silu), InstanceMethod("add", &NativeContext::Add),
                        InstanceMethod("concat", &NativeContext::Concat),
                        InstanceMethod("runOp", &NativeContext::RunOp),
                        InstanceMethod("createNetwork", &NativeContext::CreateNetwork),
                        InstanceMethod("probePeakGflops", &NativeContext::ProbePeakGflops),
                        InstanceMethod("dispose", &NativeContext::Dispose)});
  }

  // new NativeContext({ threads?: number, isa?: string, precision?: 'fp32' | 'bf16' })
  explicit NativeContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeContext>(info) {
    Napi::Env env = info.Env();
    bl::ContextOptions opts;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      if (o.Has("threads") && !o.Get("threads").IsUndefined()) {
        if (!o.Get("threads").IsNumber()) throw Napi::TypeError::New(env, "NativeContext: option 'threads' must be a number");
        opts.threads = o.Get("threads").As<Napi::Number>().Int32Value();
      }
      if (o.Has("isa") && !o.Get("isa").IsUndefined()) {
        if (!o.Get("isa").IsString()) throw Napi::TypeError::New(env, "NativeContext: option 'isa' must be a string");
        opts.isa = o.Get("isa").As<Napi::String>().Utf8Value();
      }
      if (o.Has("precision") && !o.Get("precision").IsUndefined()) {
        if (!o.Get("precision").IsString())
          throw Napi::TypeError::New(env, "NativeContext: option 'precision' must be a string");
        opts.precision = o.Get("precision").As<Napi::String>().Utf8Value();
      }
    }
    std::unique_ptr<bl::Context> ctx;
    bl::Status s = bl::Context::create(opts, &ctx);
    if (!s.is_ok()) throw to_js_error(env, s);
    ctx_ = std::move(ctx);
  }

 private:
  std::shared_ptr<bl::Context> live(const Napi::Env& env, const char* op) {
    if (!ctx_) throw Napi::Error::New(env, std::string(op) + ": context has been disposed");
    return ctx_;
  }

  Napi::Value run(const Napi::Env& env, const char* op, std::vector<TensorArg> args, OpWorker::Job job,
                  bool returns_number = false) {
    auto* worker = new OpWorker(env, live(env, op), std::move(args), std::move(job));
    if (returns_number) worker->result_value_ = std::make_shared<double>(0.0);
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    auto ctx = live(info.Env(), "info");
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("isa", bl::isa_name(ctx->isa()));
    o.Set("threads", ctx->threads());
    o.Set("spinMicros", static_cast<double>(ctx->spin_micros()));
    o.Set("splitBatch", ctx->split_batch());
    o.Set("precision", ctx->precision());
    o.Set("coreVersion", bl::core_version());
    o.Set("compiler", compiler_string());
    o.Set("convTile", ctx->kernels().conv_tile);
    o.Set("convChannelBlock", ctx->kernels().conv_co_block);
    return o;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    auto ctx = live(info.Env(), "stats");
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("scratchBytes", static_cast<double>(ctx->scratch().capacity()));
    o.Set("scratchAllocations", static_cast<double>(ctx->scratch().allocations()));
    return o;
  }

  // conv3d(x, w, bias|null, out, stride[3], padBefore[3], padAfter[3])
  Napi::Value Conv3d(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<TensorArg> a(4);
    parse_tensor(env, info[0], "conv3d", "input", false, &a[0]);
    parse_tensor(env, info[1], "conv3d", "weight", false, &a[1]);
    bool has_bias = parse_tensor(env, info[2], "conv3d", "bias", true, &a[2]);
    parse_tensor(env, info[3], "conv3d", "out", false, &a[3]);
    bl::Conv3dParams p;
    auto stride = parse_int_triple(env, info[4], "conv3d", "stride");
    auto before = parse_int_triple(env, info[5], "conv3d", "padBefore");
    auto after = parse_int_triple(env, info[6], "conv3d", "padAfter");
    for (int i = 0; i < 3; ++i) { p.stride[i] = stride[i]; p.pad_before[i] = before[i]; p.pad_after[i] = after[i]; }
    bl::Tensor x = a[0].tensor, w = a[1].tensor, b = a[2].tensor, y = a[3].tensor;
    return run(env, "conv3d", std::move(a), [=](bl::Context& c) mutable {
      return bl::conv3d(c, x, w, has_bias ? &b : nullptr, p, y);
    });
  }

  // groupNorm(x, groups, eps, weight|null, bias|null, silu, out)
  Napi::Value GroupNorm(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<TensorArg> a(4);
    parse_tensor(env, info[0], "groupNorm", "input", false, &a[0]);
    if (!info[1].IsNumber() || !info[2].IsNumber())
      throw Napi::TypeError::New(env, "groupNorm: arguments 'groups' and 'eps' must be numbers");
    int groups = info[1].As<Napi::Number>().Int32Value();
    float eps = info[2].As<Napi::Number>().FloatValue();
    bool has_w = parse_tensor(env, info[3], "groupNorm", "weight", true, &a[1]);
    bool has_b = parse_tensor(env, info[4], "groupNorm", "bias", true, &a[2]);
    bool silu = info[5].ToBoolean().Value();
    parse_tensor(env, info[6], "groupNorm", "out", false, &a[3]);
    bl::Tensor x = a[0].tensor, g = a[1].tensor, b = a[2].tensor, y = a[3].tensor;
    return run(env, "groupNorm", std::move(a), [=](bl::Context& c) mutable {
      return bl::group_norm(c, x, groups, eps, has_w ? &g : nullptr, has_b ? &b : nullptr, silu, y);
    });
  }

  Napi::Value Silu(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<TensorArg> a(2);
    parse_tensor(env, info[0], "silu", "input", false, &a[0]);
    parse_tensor(env, info[1], "silu", "out", false, &a[1]);
    bl::Tensor x = a[0].tensor, y = a[1].tensor;
    return run(env, "silu", std::move(a), [=](bl::Context& c) mutable { return bl::silu(c, x, y); });
  }

  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<TensorArg> a(3);
    parse_tensor(env, info[0], "add", "a", false, &a[0]);
    parse_tensor(env, info[1], "add", "b", false, &a[1]);
    parse_tensor(env, info[2], "add", "out", false, &a[2]);
    bl::Tensor x = a[0].tensor, z = a[1].tensor, y = a[2].tensor;
    return run(env, "add", std::move(a), [=](bl::Context& c) mutable { return bl::add(c, x, z, y); });
  }

  // concat([xs...], out)
  Napi::Value Concat(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) throw Napi::TypeError::New(env, "concat: argument 'inputs' must be an array of tensors");
    Napi::Array list = info[0].As<Napi::Array>();
    std::vector<TensorArg> a(list.Length() + 1);
    std::vector<bl::Tensor> xs(list.Length());
    for (uint32_t i = 0; i < list.Length(); ++i) {
      parse_tensor(env, list.Get(i), "concat", "inputs[" + std::to_string(i) + "]", false, &a[i]);
      xs[i] = a[i].tensor;
    }
    parse_tensor(env, info[1], "concat", "out", false, &a[list.Length()]);
    bl::Tensor y = a[list.Length()].tensor;
    return run(env, "concat", std::move(a), [xs, y](bl::Context& c) mutable {
      return bl::concat_channels(c, xs.data(), static_cast<int>(xs.size()), y);
    });
  }

  // runOp(name, [inputs...], { key: number | number[] }, [outputs...]): any core op by name
  // (native/core/op_registry.h). Tensors of any dtype pass through; the op checks them.
  // createNetwork(specText, [{ name, data, shape, dtype }]) -> NativeNetwork (native/napi/network_wrap.cpp)
  Napi::Value CreateNetwork(const Napi::CallbackInfo& info) {
    return create_native_network(info, live(info.Env(), "createNetwork"));
  }

  Napi::Value RunOp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "runOp: argument 'name' must be a string");
    std::string name = info[0].As<Napi::String>().Utf8Value();
    if (!info[1].IsArray()) throw Napi::TypeError::New(env, name + ": argument 'inputs' must be an array of tensors");
    if (!info[3].IsArray()) throw Napi::TypeError::New(env, name + ": argument 'outputs' must be an array of tensors");
    Napi::Array in_list = info[1].As<Napi::Array>();
    Napi::Array out_list = info[3].As<Napi::Array>();
    const uint32_t n_in = in_list.Length(), n_out = out_list.Length();
    std::vector<TensorArg> a(n_in + n_out);
    std::vector<bl::Tensor> inputs(n_in), outputs(n_out);
    for (uint32_t i = 0; i < n_in; ++i) {
      parse_tensor(env, in_list.Get(i), name, "inputs[" + std::to_string(i) + "]", false, &a[i]);
      inputs[i] = a[i].tensor;
    }
    for (uint32_t i = 0; i < n_out; ++i) {
      parse_tensor(env, out_list.Get(i), name, "outputs[" + std::to_string(i) + "]", false, &a[n_in + i]);
      outputs[i] = a[n_in + i].tensor;
    }
    bl::OpAttrs attrs;
    if (!info[2].IsUndefined() && !info[2].IsNull()) {
      if (!info[2].IsObject() || info[2].IsArray())
        throw Napi::TypeError::New(env, name + ": argument 'attrs' must be an object of numbers or number arrays");
      Napi::Object o = info[2].As<Napi::Object>();
      Napi::Array keys = o.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string key = keys.Get(i).ToString().Utf8Value();
        Napi::Value v = o.Get(key);
        std::vector<double> values;
        if (v.IsNumber()) {
          values.push_back(v.As<Napi::Number>().DoubleValue());
        } else if (v.IsArray()) {
          Napi::Array arr = v.As<Napi::Array>();
          for (uint32_t j = 0; j < arr.Length(); ++j) {
            Napi::Value e = arr.Get(j);
            if (!e.IsNumber()) throw Napi::TypeError::New(env, name + ": attribute '" + key + "' must hold numbers");
            values.push_back(e.As<Napi::Number>().DoubleValue());
          }
        } else {
          throw Napi::TypeError::New(env, name + ": attribute '" + key + "' must be a number or an array of numbers");
        }
        attrs[key] = std::move(values);
      }
    }
    return run(env, name.c_str(), std::move(a), [=](bl::Context& c) {
      return bl::run_op(c, name, inputs, attrs, outputs);
    });
  }

  // probePeakGflops(secondsPerRepeat, repeats) -> Promise<number>
  Napi::Value ProbePeakGflops(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double seconds = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0.2;
    int repeats = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 3;
    auto out = std::make_shared<double>(0.0);
    auto* worker = new OpWorker(env, live(env, "probePeakGflops"), {}, [=](bl::Context& c) {
      *out = c.probe_peak_gflops(seconds, repeats);
      return bl::Status::ok();
    });
    worker->result_value_ = out;
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  }

  // Joins the pool's threads once no op holds the context any more.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    ctx_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<bl::Context> ctx_;
};

// planMemory([{ bytes, firstUse, lastUse }], alignment) -> { offsets, totalBytes }
Napi::Value PlanMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "planMemory: argument 'buffers' must be an array");
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<bl::BufferLifetime> buffers(list.Length());
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value v = list.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(env, "planMemory: buffers[" + std::to_string(i) + "] must be an object");
    Napi::Object o = v.As<Napi::Object>();
    for (const char* key : {"bytes", "firstUse", "lastUse"})
      if (!o.Get(key).IsNumber())
        throw Napi::TypeError::New(env, "planMemory: buffers[" + std::to_string(i) + "]." + key + " must be a number");
    buffers[i].bytes = static_cast<size_t>(o.Get("bytes").As<Napi::Number>().DoubleValue());
    buffers[i].first_use = o.Get("firstUse").As<Napi::Number>().Int32Value();
    buffers[i].last_use = o.Get("lastUse").As<Napi::Number>().Int32Value();
  }
  size_t alignment = info[1].IsNumber() ? static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue()) : 64;
  bl::MemoryPlan plan;
  bl::Status s = bl::plan_memory(buffers, alignment, &plan);
  if (!s.is_ok()) throw to_js_error(env, s);
  Napi::Array offsets = Napi::Array::New(env, plan.offsets.size());
  for (size_t i = 0; i < plan.offsets.size(); ++i) offsets.Set(i, static_cast<double>(plan.offsets[i]));
  Napi::Object o = Napi::Object::New(env);
  o.Set("offsets", offsets);
  o.Set("totalBytes", static_cast<double>(plan.total_bytes));
  return o;
}

Napi::Value SupportedIsas(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  uint32_t n = 0;
  for (bl::Isa isa : {bl::Isa::Avx512, bl::Isa::Avx2, bl::Isa::Scalar})
    if (bl::isa_supported(isa)) out.Set(n++, bl::isa_name(isa));
  return out;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeContext", NativeContext::Define(env));
  define_native_network(env, exports);
  exports.Set("planMemory", Napi::Function::New(env, PlanMemory));
  exports.Set("supportedIsas", Napi::Function::New(env, SupportedIsas));
  exports.Set("networkWeightShapes", Napi::Function::New(env, bl_napi::network_weight_shapes));
  exports.Set("bestIsa", Napi::String::New(env, bl::isa_name(bl::best_isa())));
  exports.Set("bf16Supported", Napi::Boolean::New(env, bl::bf16_kernels() != nullptr));
  exports.Set("bf16Kernels", Napi::String::New(env, bl::bf16_kernels() ? bl::bf16_kernels()->name : ""));
  exports.Set("coreVersion", Napi::String::New(env, bl::core_version()));
  return exports;
}

NODE_API_MODULE(brain_ldm, Init)

}  // namespace bl_napi
