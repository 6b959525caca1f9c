#include "thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace bl {

namespace {

// After this long a spinning thread also yields its core each round, so threads of other processes that share the
// cores still get to run.
constexpr int64_t kYieldAfterMicros = 100;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Spins until done() or `limit` microseconds pass; true when done() came true.
template <typename Done>
bool spin_until(int64_t limit, Done done) {
  if (limit == 0) return done();
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    const int64_t spent =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
    if (spent > limit) return done();
    if (spent > kYieldAfterMicros) std::this_thread::yield();
  }
}

}  // namespace

int ThreadPool::available_cores() {
#if defined(__linux__) && !defined(__EMSCRIPTEN__)
  // Respect the affinity mask (containers, taskset), not just the core count.
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

ThreadPool::ThreadPool(int threads, int64_t spin_micros) : spin_micros_(spin_micros) {
#if defined(BL_SINGLE_THREADED)
  (void)threads;
  size_ = 1;
#else
  size_ = threads > 0 ? threads : available_cores();
  try {
    for (int i = 1; i < size_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  } catch (...) {
    // A thread that fails to start (wasm pthread pool too small, resource limits) must not leave
    // joinable threads behind: destroying them would call std::terminate.
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    throw;
  }
#endif
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

// Thread `index`'s share of the current job: its contiguous range, or ranges taken from next_ until none is left.
void ThreadPool::run_share(int index) {
  const int64_t n = job_n_, grain = job_grain_;
  if (grain == 0) {
    const int64_t begin = n * index / job_threads_, end = n * (index + 1) / job_threads_;
    if (begin < end) (*job_)(begin, end, index);
    return;
  }
  for (;;) {
    const int64_t begin = next_.fetch_add(grain, std::memory_order_relaxed);
    if (begin >= n) return;
    (*job_)(begin, std::min(n, begin + grain), index);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) { run(n, 0, fn); }

void ThreadPool::parallel_for_dynamic(int64_t n, int pieces_per_thread,
                                      const std::function<void(int64_t, int64_t, int)>& fn) {
  run(n, std::max<int64_t>(1, n / (int64_t(size_) * std::max(1, pieces_per_thread))), fn);
}

void ThreadPool::run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  const int64_t pieces = grain > 0 ? (n + grain - 1) / grain : n;
  int threads = static_cast<int>(pieces < size_ ? pieces : size_);
  if (threads <= 1) {
    fn(0, n, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    job_grain_ = grain;
    next_.store(0, std::memory_order_relaxed);
    job_threads_ = threads;
    pending_.store(threads - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_share(0);
  if (!spin_until(spin_micros_, [this] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
  }
  job_ = nullptr;
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    int threads;
    spin_until(spin_micros_, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_.load(std::memory_order_acquire) != seen; });
      if (stopping_) return;
      seen = generation_.load(std::memory_order_relaxed);
      threads = job_threads_;
    }
    // The job's fields stay as they are until every thread of it has finished (pending_), so run_share reads them
    // without the lock.
    if (index < threads) {
      run_share(index);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        // The caller may have stopped spinning: take the lock so its predicate check and sleep cannot miss this.
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_one();
      }
    }
  }
}

}  // namespace bl
