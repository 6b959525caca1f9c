// Everything an op needs besides its tensors: the kernel table chosen at
// creation, the thread pool, and a scratch arena reused across calls. One
// context runs one op at a time (its scratch is shared); front ends lock it.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include "isa.h"
#include "kernels/kernels.h"
#include "memory_plan.h"
#include "status.h"
#include "thread_pool.h"

namespace bl {

struct ContextOptions {
  int threads = 0;          // <= 0: one per available core
  std::string isa = "auto";  // auto, scalar, avx2, avx512, simd128
};

class Context {
 public:
  static Status create(const ContextOptions& options, std::unique_ptr<Context>* out);

  const KernelTable& kernels() const { return *kernels_; }
  Isa isa() const { return kernels_->isa; }
  ThreadPool& pool() { return pool_; }
  int threads() const { return pool_.size(); }
  Arena& scratch() { return scratch_; }
  std::mutex& mutex() { return mutex_; }

  // Measured fp32 FMA peak of this context's ISA and threads, in GFLOP/s (best of `repeats`).
  double probe_peak_gflops(double seconds_per_repeat, int repeats);

 private:
  Context(const KernelTable* kernels, int threads) : kernels_(kernels), pool_(threads) {}
  const KernelTable* kernels_;
  ThreadPool pool_;
  Arena scratch_;
  std::mutex mutex_;
};

const char* core_version();

}  // namespace bl
