// Activation buffers recycled across forward passes: the first forward
// allocates what it needs, later forwards of the same shapes reuse the same
// blocks, so a denoising step allocates nothing. Buffers return to the pool
// when the last Tensor referring to them goes away.
#pragma once
#include <cstddef>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "../tensor.h"

namespace bl {

class TensorPool {
 public:
  TensorPool();
  ~TensorPool();
  TensorPool(const TensorPool&) = delete;
  TensorPool& operator=(const TensorPool&) = delete;

  Tensor acquire(const std::vector<int64_t>& shape);
  Tensor acquire(std::initializer_list<int64_t> shape) { return acquire(std::vector<int64_t>(shape)); }
  uint64_t allocations() const { return allocations_; }
  size_t bytes_held() const { return bytes_; }

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;  // outlives the pool if a tensor escapes it
  uint64_t allocations_ = 0;
  size_t bytes_ = 0;
};

}  // namespace bl
