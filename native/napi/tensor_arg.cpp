#include "tensor_arg.h"

namespace bl_napi {

static std::string where(const std::string& op, const std::string& name) {
  return op + ": argument '" + name + "'";
}

bool parse_tensor(const Napi::Env& env, const Napi::Value& value, const std::string& op, const std::string& name,
                  bool optional, TensorArg* out) {
  if (optional && (value.IsNull() || value.IsUndefined())) return false;
  if (!value.IsObject()) throw Napi::TypeError::New(env, where(op, name) + " must be a tensor object");
  Napi::Object obj = value.As<Napi::Object>();
  Napi::Value data = obj.Get("data");
  Napi::Value shape = obj.Get("shape");
  Napi::Value dtype = obj.Get("dtype");
  if (!data.IsTypedArray()) throw Napi::TypeError::New(env, where(op, name) + ".data must be a typed array");
  if (!shape.IsArray()) throw Napi::TypeError::New(env, where(op, name) + ".shape must be an array");
  if (!dtype.IsNumber()) throw Napi::TypeError::New(env, where(op, name) + ".dtype must be a dtype code");
  int code = dtype.As<Napi::Number>().Int32Value();
  if (code < 0 || code > 2) throw Napi::TypeError::New(env, where(op, name) + " has unknown dtype code " + std::to_string(code));
  auto dt = static_cast<bl::DType>(code);

  Napi::TypedArray ta = data.As<Napi::TypedArray>();
  napi_typedarray_type want = dt == bl::DType::F32 ? napi_float32_array : napi_uint16_array;
  if (ta.TypedArrayType() != want)
    throw Napi::TypeError::New(env, where(op, name) + ".data must be a " +
                                        (dt == bl::DType::F32 ? "Float32Array" : "Uint16Array") + " for dtype " +
                                        bl::dtype_name(dt));
  bool detached = false;
  napi_is_detached_arraybuffer(env, ta.ArrayBuffer(), &detached);
  if (detached) throw Napi::TypeError::New(env, where(op, name) + " is backed by a detached ArrayBuffer");

  Napi::Array dims = shape.As<Napi::Array>();
  if (dims.Length() < 1 || dims.Length() > bl::kMaxDims)
    throw Napi::RangeError::New(env, where(op, name) + " has " + std::to_string(dims.Length()) + " dims, expected 1 to 8");
  int64_t shp[bl::kMaxDims];
  int64_t count = 1;
  for (uint32_t i = 0; i < dims.Length(); ++i) {
    Napi::Value d = dims.Get(i);
    if (!d.IsNumber()) throw Napi::TypeError::New(env, where(op, name) + ".shape must hold numbers");
    double v = d.As<Napi::Number>().DoubleValue();
    if (v < 1 || v != static_cast<double>(static_cast<int64_t>(v)))
      throw Napi::RangeError::New(env, where(op, name) + ".shape must hold integers >= 1");
    shp[i] = static_cast<int64_t>(v);
    count *= shp[i];
  }
  if (static_cast<int64_t>(ta.ElementLength()) != count)
    throw Napi::RangeError::New(env, where(op, name) + " has " + std::to_string(ta.ElementLength()) +
                                         " elements, its shape needs " + std::to_string(count));
  void* ptr = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  out->tensor = bl::Tensor::borrow(ptr, dt, shp, static_cast<int>(dims.Length()));
  out->keep_alive = Napi::Persistent(data);
  return true;
}

std::vector<int> parse_int_triple(const Napi::Env& env, const Napi::Value& value, const std::string& op,
                                  const std::string& name) {
  if (!value.IsArray() || value.As<Napi::Array>().Length() != 3)
    throw Napi::TypeError::New(env, where(op, name) + " must be an array of 3 integers");
  std::vector<int> out(3);
  for (uint32_t i = 0; i < 3; ++i) {
    Napi::Value v = value.As<Napi::Array>().Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, where(op, name) + " must hold integers");
    out[i] = v.As<Napi::Number>().Int32Value();
  }
  return out;
}

}  // namespace bl_napi
