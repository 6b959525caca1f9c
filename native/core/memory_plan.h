// Offsets for every buffer a network needs, computed once before the first
// step: buffers whose lifetimes (first..last op index, inclusive) overlap never
// share bytes, others reuse the same arena. Greedy by size, as TFLite's
// arena planner does, which lands within a few percent of optimal on UNets.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "status.h"

namespace bl {

struct BufferLifetime {
  size_t bytes = 0;
  int first_use = 0;
  int last_use = 0;
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // one per request, aligned
  size_t total_bytes = 0;       // arena size
};

Status plan_memory(const std::vector<BufferLifetime>& buffers, size_t alignment, MemoryPlan* out);

// One aligned block sized by a plan (or grown by ops that need scratch). It only
// reallocates when asked for more than it has, so steady-state steps never allocate.
class Arena {
 public:
  Arena() = default;
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  void* reserve(size_t bytes);
  size_t capacity() const { return capacity_; }
  uint64_t allocations() const { return allocations_; }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
  uint64_t allocations_ = 0;
};

}  // namespace bl
