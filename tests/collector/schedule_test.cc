#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

#include "collector/schedules.h"

namespace tidemark::collector {
namespace {

constexpr int64_t kS = 1'000'000'000;

class LocalTime : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tz = std::getenv("TZ");
    saved_ = tz ? tz : "";
    had_ = tz != nullptr;
    setenv("TZ", "UTC", 1);
    tzset();
  }
  void TearDown() override {
    if (had_) {
      setenv("TZ", saved_.c_str(), 1);
    } else {
      unsetenv("TZ");
    }
    tzset();
  }
  std::string saved_;
  bool had_ = false;
};

TEST_F(LocalTime, DailyScheduleRunsAtItsTimeTodayOrTomorrow) {
  config::ScheduleConfig nightly;
  nightly.at_minute = 3 * 60;
  const int64_t midnight = int64_t{1'795'651'200} * kS;  // 2026-11-26T00:00:00Z
  EXPECT_EQ(NextScheduledRun(nightly, midnight), midnight + 3 * 3600 * kS);
  EXPECT_EQ(NextScheduledRun(nightly, midnight + 3 * 3600 * kS), midnight + 27 * 3600 * kS)
      << "strictly after: a run at 03:00 schedules tomorrow's";
  EXPECT_EQ(NextScheduledRun(nightly, midnight + 5 * 3600 * kS), midnight + 27 * 3600 * kS);
}

TEST_F(LocalTime, PeriodicScheduleRunsEveryPeriod) {
  config::ScheduleConfig often;
  often.every_ms = 6 * 3600 * 1000;
  EXPECT_EQ(NextScheduledRun(often, 1000 * kS), 1000 * kS + 6 * 3600 * kS);
}

TEST_F(LocalTime, ASchedulerRunsEachScheduleOnceWhenDueAndNotBeforeTheStart) {
  config::ScheduleConfig often;
  often.name = "often";
  often.every_ms = 3600 * 1000;
  Scheduler scheduler;
  const int64_t start = 1000 * kS;
  EXPECT_TRUE(scheduler.Due({often}, start, start).empty()) << "first due a period after start";
  EXPECT_TRUE(scheduler.Due({often}, start + 3599 * kS, start).empty());
  ASSERT_EQ(scheduler.Due({often}, start + 3600 * kS, start).size(), 1u);
  EXPECT_TRUE(scheduler.Due({often}, start + 3601 * kS, start).empty()) << "once";
  EXPECT_EQ(scheduler.Due({often}, start + 7200 * kS, start).size(), 1u);
}

TEST_F(LocalTime, ASchedulerResetComputesTheNextRunsFromNow) {
  config::ScheduleConfig often;
  often.name = "often";
  often.every_ms = 3600 * 1000;
  Scheduler scheduler;
  scheduler.Due({often}, 0, 0);
  scheduler.Reset();
  EXPECT_TRUE(scheduler.Due({often}, 3600 * kS, 0).empty())
      << "a reconfigured schedule runs a period after the reconfiguration";
  EXPECT_EQ(scheduler.Due({often}, 7200 * kS, 0).size(), 1u);
}

}  // namespace
}  // namespace tidemark::collector
