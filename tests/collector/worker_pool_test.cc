#include "collector/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace tidemark::collector {
namespace {

TEST(WorkerPool, AJobOverTheQueueIsRefusedAndCountedWhileTheWorkersAreBusy) {
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> started{0}, done{0};
  {
    WorkerPool pool(1, 2);
    auto blocking = [&] {
      started.fetch_add(1);
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return release; });
      done.fetch_add(1);
    };
    ASSERT_TRUE(pool.Submit(blocking));
    while (started.load() == 0) std::this_thread::yield();  // The worker holds the first.
    EXPECT_TRUE(pool.Submit(blocking));
    EXPECT_TRUE(pool.Submit(blocking));
    EXPECT_FALSE(pool.Submit(blocking));  // Two wait already.
    EXPECT_EQ(pool.refused(), 1u);
    {
      std::lock_guard lock(mutex);
      release = true;
    }
    cv.notify_all();
    while (done.load() < 3) std::this_thread::yield();
    EXPECT_TRUE(pool.Submit([&] { done.fetch_add(1); }));
    while (done.load() < 4) std::this_thread::yield();
  }
  EXPECT_EQ(done.load(), 4);
}

TEST(WorkerPool, AJobThatThrowsIsCountedAndTheWorkerGoesOn) {
  std::atomic<int> ran{0};
  WorkerPool pool(1, 4);
  ASSERT_TRUE(pool.Submit([] { throw std::runtime_error("boom"); }));
  ASSERT_TRUE(pool.Submit([&] { ran.fetch_add(1); }));
  while (ran.load() == 0) std::this_thread::yield();
  EXPECT_EQ(pool.failed(), 1u);
}

}  // namespace
}  // namespace tidemark::collector
