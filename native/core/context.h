// Everything an op needs besides its tensors: the kernel table chosen at
// creation, the thread pool, and a scratch arena reused across calls. One
// context runs one op at a time (its scratch is shared); front ends lock it.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "isa.h"
#include "kernels/bf16.h"
#include "kernels/kernels.h"
#include "memory_plan.h"
#include "status.h"
#include "thread_pool.h"

namespace bl {

struct ContextOptions {
  int threads = 0;          // <= 0: one per available core
  std::string isa = "auto";  // auto, scalar, avx2, avx512, simd128
  std::string precision = "fp32";  // fp32, or bf16: convolution products in bf16 with fp32 sums (AVX512-BF16)
  // How long idle pool threads spin before they sleep, in microseconds (thread_pool.h); < 0: BRAIN_LDM_SPIN_US
  // from the environment, else ThreadPool::kDefaultSpinMicros.
  int64_t spin_micros = -1;
};

class Context {
 public:
  static Status create(const ContextOptions& options, std::unique_ptr<Context>* out);

  const KernelTable& kernels() const { return *kernels_; }
  Isa isa() const { return kernels_->isa; }
  // The bf16 convolution kernels when this context runs at bf16 precision, else null (fp32 everywhere).
  const Bf16Kernels* bf16() const { return bf16_; }
  const char* precision() const { return bf16_ ? "bf16" : "fp32"; }
  ThreadPool& pool() { return pool_; }
  int threads() const { return pool_.size(); }
  int64_t spin_micros() const { return pool_.spin_micros(); }
  // Network::run gives each group of threads its own share of a batch (BRAIN_LDM_SPLIT_BATCH; default on natively,
  // off in wasm).
  bool split_batch() const { return split_batch_; }
  Arena& scratch() { return scratch_; }
  std::mutex& mutex() { return mutex_; }

  // Measured fp32 FMA peak of this context's ISA and threads, in GFLOP/s (best of `repeats`).
  double probe_peak_gflops(double seconds_per_repeat, int repeats);

  // n contexts of `threads` threads each with this one's kernels, precision and spin, for work that groups of this
  // context's threads each run on their own (Network::run's batch shares). Made on first use and kept with their
  // scratch; called by the thread that holds this context, before the work is handed out.
  Status workers(int n, int threads, std::vector<Context*>* out);

 private:
  Context(const KernelTable* kernels, const Bf16Kernels* bf16, int threads, int64_t spin_micros, bool split_batch)
      : kernels_(kernels), bf16_(bf16), pool_(threads, spin_micros), split_batch_(split_batch) {}
  const KernelTable* kernels_;
  const Bf16Kernels* bf16_;
  ThreadPool pool_;
  bool split_batch_;
  Arena scratch_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Context>> workers_;
};

const char* core_version();

}  // namespace bl
