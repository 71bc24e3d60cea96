// WorkerPool: a fixed number of threads running queued jobs, for work that must not run on the
// I/O thread (the query API's store reads and graph analyses). The queue is bounded: a job
// over it is refused at once, and counted, rather than queued without end.
//
// Thread-safety: Submit and the counters from any thread. Jobs must not throw (an exception
// is caught and counted, never escapes a worker).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tidemark::collector {

class WorkerPool {
 public:
  // REQUIRES: threads >= 1.
  WorkerPool(size_t threads, size_t max_queued);
  ~WorkerPool();  // Jobs still queued are dropped; running ones finish; threads joined.
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False when max_queued jobs already wait (counted in refused()).
  bool Submit(std::function<void()> job);

  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  size_t max_queued() const { return max_queued_; }

 private:
  void Run();

  const size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::atomic<uint64_t> refused_{0}, failed_{0};
  std::vector<std::thread> threads_;
};

}  // namespace tidemark::collector
