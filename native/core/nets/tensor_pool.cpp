#include "tensor_pool.h"

namespace bl {

struct TensorPool::Shared {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;  // size -> block
  bool closed = false;
};

TensorPool::TensorPool() : shared_(std::make_shared<Shared>()) {}

TensorPool::~TensorPool() {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  for (auto& [size, p] : shared_->free_blocks) aligned_free(p);
  shared_->free_blocks.clear();
  shared_->closed = true;
}

Tensor TensorPool::acquire(const std::vector<int64_t>& shape) {
  Tensor t = Tensor::borrow(nullptr, DType::F32, shape.data(), static_cast<int>(shape.size()));
  size_t bytes = (t.nbytes() + 63) / 64 * 64;
  void* block = nullptr;
  size_t block_size = bytes;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    // The smallest free block that holds it, up to twice its size: a decoder's full-resolution stage alternates
    // 2C- and C-channel maps, and without the 2x a C map never reuses a free 2C block (the SPADE decoder at
    // 96x128x96 held 5.3 GB of blocks for 2.7 GB live). Shapes repeat exactly across steps, so the choices do too.
    auto it = shared_->free_blocks.lower_bound(bytes);
    if (it != shared_->free_blocks.end() && it->first <= 2 * bytes) {
      block = it->second;
      block_size = it->first;
      shared_->free_blocks.erase(it);
    }
  }
  if (!block) {
    block = aligned_malloc(bytes);
    ++allocations_;
    bytes_ += bytes;
  }
  std::shared_ptr<Shared> shared = shared_;
  t.owner = std::shared_ptr<void>(block, [shared, block_size](void* p) {
    std::lock_guard<std::mutex> lock(shared->mutex);
    if (shared->closed) aligned_free(p);
    else shared->free_blocks.emplace(block_size, p);
  });
  t.data = block;
  return t;
}

}  // namespace bl
