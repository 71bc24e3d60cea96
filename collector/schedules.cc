#include "collector/schedules.h"

#include <algorithm>
#include <ctime>

namespace tidemark::collector {
namespace {
constexpr int64_t kSecondNs = 1'000'000'000;
}  // namespace

int64_t NextScheduledRun(const config::ScheduleConfig& s, int64_t after) {
  if (s.every_ms > 0) return after + s.every_ms * 1'000'000;
  time_t t = static_cast<time_t>(after / kSecondNs);
  std::tm local{};
  localtime_r(&t, &local);
  local.tm_hour = s.at_minute / 60;
  local.tm_min = s.at_minute % 60;
  local.tm_sec = 0;
  local.tm_isdst = -1;
  time_t next = std::mktime(&local);
  if (static_cast<int64_t>(next) * kSecondNs <= after) {
    local.tm_mday += 1;
    local.tm_isdst = -1;
    next = std::mktime(&local);
  }
  return static_cast<int64_t>(next) * kSecondNs;
}

std::vector<config::ScheduleConfig> Scheduler::Due(
    const std::vector<config::ScheduleConfig>& schedules, int64_t now, int64_t not_before) {
  std::vector<config::ScheduleConfig> due;
  for (const config::ScheduleConfig& s : schedules) {
    auto [it, inserted] = next_ns_.try_emplace(s.name, 0);
    if (inserted) it->second = NextScheduledRun(s, std::max(now, not_before));
    if (now < it->second) continue;
    due.push_back(s);
    it->second = NextScheduledRun(s, now);
  }
  return due;
}

}  // namespace tidemark::collector
