// A fixed pool of worker threads; the calling thread works as worker 0.
// parallel_for splits [0, n) into one contiguous range per thread, so each
// thread walks neighbouring work items and keeps its caches warm.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bl {

class ThreadPool {
 public:
  // threads <= 0 means one per available core.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }
  // fn(begin, end, thread_index) is called once per thread with a non-empty range.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);
  static int available_cores();

 private:
  void worker_loop(int index);

  int size_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_threads_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stopping_ = false;
};

}  // namespace bl
