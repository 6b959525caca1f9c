#include "memory_plan.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "tensor.h"

namespace bl {

Status plan_memory(const std::vector<BufferLifetime>& buffers, size_t alignment, MemoryPlan* out) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    return Status::range_error("plan_memory: alignment " + std::to_string(alignment) + " must be a power of two");
  for (size_t i = 0; i < buffers.size(); ++i)
    if (buffers[i].last_use < buffers[i].first_use)
      return Status::range_error("plan_memory: buffer " + std::to_string(i) + " has last_use " +
                                 std::to_string(buffers[i].last_use) + " before first_use " +
                                 std::to_string(buffers[i].first_use));

  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return buffers[a].bytes > buffers[b].bytes; });

  auto align_up = [alignment](size_t v) { return (v + alignment - 1) / alignment * alignment; };
  out->offsets.assign(buffers.size(), 0);
  out->total_bytes = 0;
  std::vector<size_t> placed;
  for (size_t idx : order) {
    const BufferLifetime& b = buffers[idx];
    // Live neighbours sorted by offset; take the first gap that fits.
    std::vector<std::pair<size_t, size_t>> busy;
    for (size_t other : placed) {
      const BufferLifetime& o = buffers[other];
      if (o.first_use <= b.last_use && b.first_use <= o.last_use)
        busy.emplace_back(out->offsets[other], out->offsets[other] + align_up(o.bytes));
    }
    std::sort(busy.begin(), busy.end());
    size_t offset = 0;
    size_t need = align_up(b.bytes);
    for (auto& [start, end] : busy) {
      if (offset + need <= start) break;
      offset = std::max(offset, end);
    }
    out->offsets[idx] = offset;
    out->total_bytes = std::max(out->total_bytes, offset + need);
    placed.push_back(idx);
  }
  return Status::ok();
}

Arena::~Arena() { aligned_free(data_); }

void* Arena::reserve(size_t bytes) {
  if (bytes > capacity_) {
    aligned_free(data_);
    data_ = nullptr;
    capacity_ = 0;
    data_ = aligned_malloc(bytes);
    capacity_ = bytes;
    ++allocations_;
  }
  return data_;
}

}  // namespace bl
