#include "tensor.h"

#include <cstdlib>
#include <new>

namespace bl {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
  }
  return "unknown";
}

size_t dtype_size(DType dtype) { return dtype == DType::F32 ? 4 : 2; }

void* aligned_malloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  return p;
}

void aligned_free(void* p) { std::free(p); }

static void set_contiguous_strides(Tensor& t) {
  int64_t stride = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    t.strides[i] = stride;
    stride *= t.shape[i];
  }
}

Tensor Tensor::borrow(void* data, DType dtype, const int64_t* shape, int ndim) {
  Tensor t;
  t.dtype = dtype;
  t.ndim = ndim;
  for (int i = 0; i < ndim; ++i) t.shape[i] = shape[i];
  set_contiguous_strides(t);
  t.data = data;
  return t;
}

Tensor Tensor::borrow(void* data, DType dtype, std::initializer_list<int64_t> shape) {
  return borrow(data, dtype, shape.begin(), static_cast<int>(shape.size()));
}

Tensor Tensor::empty(DType dtype, const int64_t* shape, int ndim) {
  Tensor t = borrow(nullptr, dtype, shape, ndim);
  void* p = aligned_malloc(t.nbytes());
  t.owner = std::shared_ptr<void>(p, aligned_free);
  t.data = p;
  return t;
}

Tensor Tensor::empty(DType dtype, std::initializer_list<int64_t> shape) {
  return empty(dtype, shape.begin(), static_cast<int>(shape.size()));
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t stride = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != stride) return false;
    stride *= shape[i];
  }
  return true;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Status check_tensor(const Tensor& t, const char* op, const char* name, int ndim, DType dtype) {
  std::string where = std::string(op) + ": argument '" + name + "'";
  if (t.dtype != dtype)
    return Status::type_error(where + " has dtype " + dtype_name(t.dtype) + ", expected " + dtype_name(dtype));
  if (ndim >= 0 && t.ndim != ndim)
    return Status::range_error(where + " has shape " + t.shape_string() + " (" + std::to_string(t.ndim) +
                               " dims), expected " + std::to_string(ndim) + " dims");
  for (int i = 0; i < t.ndim; ++i)
    if (t.shape[i] <= 0)
      return Status::range_error(where + " has shape " + t.shape_string() + ": every dimension must be >= 1");
  if (!t.data) return Status::type_error(where + " has no data (detached or null buffer)");
  if (!t.is_contiguous()) return Status::range_error(where + " must be contiguous");
  return Status::ok();
}

Status check_shape(const Tensor& t, const char* op, const char* name, const int64_t* shape, int ndim) {
  Tensor expected = Tensor::borrow(nullptr, t.dtype, shape, ndim);
  bool same = t.ndim == ndim;
  for (int i = 0; same && i < ndim; ++i) same = t.shape[i] == shape[i];
  if (!same)
    return Status::range_error(std::string(op) + ": argument '" + name + "' has shape " + t.shape_string() +
                               ", expected " + expected.shape_string());
  return Status::ok();
}

}  // namespace bl
