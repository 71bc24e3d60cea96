#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

#include "collector/pipeline.h"

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

}  // namespace
}  // namespace tidemark::collector
