#include "thread_pool.h"

#if defined(__linux__)
#include <sched.h>
#endif

namespace bl {

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

ThreadPool::ThreadPool(int threads) {
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

static void run_range(const std::function<void(int64_t, int64_t, int)>& fn, int64_t n, int threads, int index) {
  int64_t begin = n * index / threads;
  int64_t end = n * (index + 1) / threads;
  if (begin < end) fn(begin, end, index);
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  int threads = static_cast<int>(n < size_ ? n : size_);
  if (threads <= 1) {
    fn(0, n, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    job_threads_ = threads;
    pending_ = threads - 1;
    ++generation_;
  }
  wake_.notify_all();
  run_range(fn, n, threads, 0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [this] { return pending_ == 0; });
  job_ = nullptr;
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t, int)>* job;
    int64_t n;
    int threads;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      job = job_;
      n = job_n_;
      threads = job_threads_;
    }
    if (index < threads) {
      run_range(*job, n, threads, index);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
}

}  // namespace bl
