#include "network_wrap.h"

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "../core/nets/network.h"
#include "../core/ops.h"
#include "tensor_arg.h"

namespace bl_napi {

namespace {

Napi::Error js_error(Napi::Env env, const bl::Status& s) {
  switch (s.kind()) {
    case bl::ErrorKind::Type: return Napi::TypeError::New(env, s.message());
    case bl::ErrorKind::Range: return Napi::RangeError::New(env, s.message());
    default: return Napi::Error::New(env, s.message());
  }
}

struct NetworkState {
  std::shared_ptr<bl::Context> ctx;
  std::unique_ptr<bl::Network> network;
  std::vector<Napi::Reference<Napi::Value>> weight_refs;  // borrowed float32 weights
};

class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<NetworkState> state, std::string entry, std::vector<std::string> names,
            std::vector<TensorArg> inputs)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), state_(std::move(state)),
        entry_(std::move(entry)), names_(std::move(names)), inputs_(std::move(inputs)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    std::lock_guard<std::mutex> lock(state_->ctx->mutex());
    bl::NamedTensors in;
    for (size_t i = 0; i < names_.size(); ++i) in[names_[i]] = inputs_[i].tensor;
    try {
      status_ = state_->network->run(*state_->ctx, entry_, in, &outputs_);
    } catch (const std::bad_alloc&) {
      status_ = bl::Status::runtime_error("out of memory");
    } catch (const std::exception& e) {
      status_ = bl::Status::runtime_error(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (!status_.is_ok()) {
      deferred_.Reject(js_error(env, status_).Value());
      return;
    }
    Napi::Object result = Napi::Object::New(env);
    for (auto& [name, t] : outputs_) {
      Napi::Array shape = Napi::Array::New(env, t.ndim);
      for (int i = 0; i < t.ndim; ++i) shape.Set(i, static_cast<double>(t.shape[i]));
      Napi::Float32Array data = Napi::Float32Array::New(env, static_cast<size_t>(t.numel()));
      std::memcpy(data.Data(), t.data, t.nbytes());
      Napi::Object o = Napi::Object::New(env);
      o.Set("shape", shape);
      o.Set("data", data);
      result.Set(name, o);
    }
    outputs_.clear();  // buffers go back to the network's pool
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<NetworkState> state_;
  std::string entry_;
  std::vector<std::string> names_;
  std::vector<TensorArg> inputs_;
  bl::NamedTensors outputs_;
  bl::Status status_;
};

class NativeNetwork : public Napi::ObjectWrap<NativeNetwork> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeNetwork",
                       {InstanceMethod("run", &NativeNetwork::Run), InstanceMethod("entries", &NativeNetwork::Entries),
                        InstanceMethod("stats", &NativeNetwork::Stats), InstanceMethod("dispose", &NativeNetwork::Dispose)});
  }
  explicit NativeNetwork(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeNetwork>(info) {}
  void attach(std::shared_ptr<NetworkState> state) { state_ = std::move(state); }

 private:
  std::shared_ptr<NetworkState> live(Napi::Env env, const char* op) {
    if (!state_) throw Napi::Error::New(env, std::string("network.") + op + ": network has been disposed");
    return state_;
  }

  // run(entry, { name: { data, shape, dtype } }) -> Promise<{ name: { shape, data } }>
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto state = live(env, "run");
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "network.run: argument 'entry' must be a string");
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "network.run: argument 'inputs' must be an object of tensors");
    std::string entry = info[0].As<Napi::String>().Utf8Value();
    Napi::Object obj = info[1].As<Napi::Object>();
    Napi::Array keys = obj.GetPropertyNames();
    std::vector<std::string> names;
    std::vector<TensorArg> inputs(keys.Length());
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string name = keys.Get(i).As<Napi::String>().Utf8Value();
      parse_tensor(env, obj.Get(name), "network.run", "inputs." + name, false, &inputs[i]);
      names.push_back(name);
    }
    auto* worker = new RunWorker(env, state, entry, std::move(names), std::move(inputs));
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  }

  Napi::Value Entries(const Napi::CallbackInfo& info) {
    auto state = live(info.Env(), "entries");
    std::vector<std::string> e = state->network->entries();
    Napi::Array out = Napi::Array::New(info.Env(), e.size());
    for (size_t i = 0; i < e.size(); ++i) out.Set(i, e[i]);
    return out;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    auto state = live(info.Env(), "stats");
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("bufferAllocations", static_cast<double>(state->network->buffer_allocations()));
    o.Set("bufferBytes", static_cast<double>(state->network->buffer_bytes()));
    return o;
  }

  // Frees the graph once no run holds it any more.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    state_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<NetworkState> state_;
};

}  // namespace

void define_native_network(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NativeNetwork::Define(env);
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(ctor)));
  exports.Set("NativeNetwork", ctor);
}

Napi::Value network_weight_shapes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "networkWeightShapes: argument 'spec' must be a string");
  bl::NetworkSpec spec;
  bl::Status s = bl::parse_network_spec(info[0].As<Napi::String>().Utf8Value(), &spec);
  if (!s.is_ok()) throw js_error(env, s);
  std::vector<bl::WeightStore::Request> requests;
  s = bl::list_network_weights(spec, &requests);
  if (!s.is_ok()) throw js_error(env, s);
  Napi::Array out = Napi::Array::New(env, requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    Napi::Array shape = Napi::Array::New(env, requests[i].shape.size());
    for (size_t d = 0; d < requests[i].shape.size(); ++d) shape.Set(d, Napi::Number::New(env, double(requests[i].shape[d])));
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::String::New(env, requests[i].name));
    pair.Set(1u, shape);
    out.Set(i, pair);
  }
  return out;
}

Napi::Value create_native_network(const Napi::CallbackInfo& info, std::shared_ptr<bl::Context> ctx) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "createNetwork: argument 'spec' must be a string");
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "createNetwork: argument 'weights' must be an array of named tensors");
  bl::NetworkSpec spec;
  bl::Status s = bl::parse_network_spec(info[0].As<Napi::String>().Utf8Value(), &spec);
  if (!s.is_ok()) throw js_error(env, s);

  auto state = std::make_shared<NetworkState>();
  state->ctx = ctx;
  bl::WeightStore store;
  Napi::Array list = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value item = list.Get(i);
    if (!item.IsObject() || !item.As<Napi::Object>().Get("name").IsString())
      throw Napi::TypeError::New(env, "createNetwork: weights[" + std::to_string(i) + "] must be { name, data, shape, dtype }");
    std::string name = item.As<Napi::Object>().Get("name").As<Napi::String>().Utf8Value();
    TensorArg arg;
    parse_tensor(env, item, "createNetwork", "weights '" + name + "'", false, &arg);
    if (arg.tensor.dtype == bl::DType::F32) {
      store.add(name, arg.tensor);
      state->weight_refs.push_back(std::move(arg.keep_alive));
    } else {
      bl::Tensor wide = bl::Tensor::empty(bl::DType::F32, arg.tensor.shape, arg.tensor.ndim);
      {
        std::lock_guard<std::mutex> lock(ctx->mutex());  // the context may be running another op
        s = bl::convert_dtype(*ctx, arg.tensor, wide);
      }
      if (!s.is_ok()) throw js_error(env, s);
      store.add(name, wide);
    }
  }
  s = bl::create_network(spec, store, &state->network);
  if (!s.is_ok()) throw js_error(env, s);
  Napi::Object obj = env.GetInstanceData<Napi::FunctionReference>()->New({});
  NativeNetwork::Unwrap(obj)->attach(std::move(state));
  return obj;
}

}  // namespace bl_napi
