// A fixed pool of worker threads; the calling thread works as worker 0.
// parallel_for splits [0, n) into one contiguous range per thread, so each
// thread walks neighbouring work items and keeps its caches warm.
//
// A forward calls parallel_for hundreds of times, a few hundred microseconds apart, so waking a sleeping thread
// (futex, and on a VM the vCPU) each time cost more than some calls' work. Workers and the caller therefore spin
// on the generation and pending counters for a while (spin_micros) before they sleep on the condition variables,
// as OpenMP runtimes do (KMP_BLOCKTIME, GOMP_SPINCOUNT). A pool idle for longer sleeps and takes no CPU.
// Default-size UNet forward on the 2-core EPYC VM, alternated 4-6 times (bench/RESULTS.md): bf16 148 -> 130 ms,
// fp32 154 -> 144 ms.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bl {

class ThreadPool {
 public:
  // threads <= 0 means one per available core. Idle threads spin spin_micros before they sleep (0: sleep at once).
  static constexpr int64_t kDefaultSpinMicros = 2000;
  explicit ThreadPool(int threads, int64_t spin_micros = kDefaultSpinMicros);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }
  int64_t spin_micros() const { return spin_micros_; }
  // fn(begin, end, thread_index) is called once per thread with a non-empty range.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);
  // The same split into about pieces_per_thread ranges per thread, which the threads take in turn as they finish
  // (an atomic counter), so a thread the OS or hypervisor holds back, or a range that costs more, delays the call
  // less. fn may be called several times per thread; it must give the same results whichever thread runs a range
  // (per-thread scratch only for temporaries), so the bytes do not depend on timing.
  void parallel_for_dynamic(int64_t n, int pieces_per_thread, const std::function<void(int64_t, int64_t, int)>& fn);
  static int available_cores();

 private:
  void worker_loop(int index);
  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);
  void run_share(int index);

  int size_ = 1;
  int64_t spin_micros_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_grain_ = 0;  // 0: one contiguous range per thread; else ranges of this size from next_
  std::atomic<int64_t> next_{0};
  int job_threads_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  bool stopping_ = false;
};

}  // namespace bl
