// A strided N-d tensor view over owned or borrowed memory.
// Borrowed views wrap memory the caller keeps alive (a JS typed array, the wasm
// heap); owned tensors keep a shared reference to 64-byte aligned storage.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "status.h"

namespace bl {

enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2 };

const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);

constexpr int kMaxDims = 8;

struct Tensor {
  DType dtype = DType::F32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};  // in elements
  void* data = nullptr;
  std::shared_ptr<void> owner;     // null for borrowed views

  // Contiguous (row-major) view of memory owned by someone else.
  static Tensor borrow(void* data, DType dtype, const int64_t* shape, int ndim);
  static Tensor borrow(void* data, DType dtype, std::initializer_list<int64_t> shape);
  // Contiguous tensor with its own aligned storage (uninitialised).
  static Tensor empty(DType dtype, const int64_t* shape, int ndim);
  static Tensor empty(DType dtype, std::initializer_list<int64_t> shape);

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool is_contiguous() const;
  std::string shape_string() const;

  float* f32() const { return static_cast<float*>(data); }
};

// Argument checks used by every op; `name` is the argument name shown to users.
Status check_tensor(const Tensor& t, const char* op, const char* name, int ndim, DType dtype = DType::F32);

// Checks `t` (already checked with check_tensor) has exactly `shape`.
Status check_shape(const Tensor& t, const char* op, const char* name, const int64_t* shape, int ndim);

// 64-byte aligned allocation released with aligned_free.
void* aligned_malloc(size_t bytes);
void aligned_free(void* p);

}  // namespace bl
