// When scheduled reports ([[schedules]]) are due.
//
// Pure: the clock is passed in. Thread-safety: none; the pipeline guards it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"

namespace tidemark::collector {

// When a schedule runs next after `after_ns`: `every` after it, or the next `at` local time
// strictly after it (mktime: daylight-saving changes are the C library's).
int64_t NextScheduledRun(const config::ScheduleConfig& schedule, int64_t after_ns);

class Scheduler {
 public:
  // The schedules due at `now_ns`, each at most once per call. A schedule seen for the first
  // time is first due at its next run after max(now, not_before_ns) (the daemon's start).
  std::vector<config::ScheduleConfig> Due(const std::vector<config::ScheduleConfig>& schedules,
                                          int64_t now_ns, int64_t not_before_ns);
  // New schedules: every next run is computed again from the next Due().
  void Reset() { next_ns_.clear(); }

 private:
  std::map<std::string, int64_t> next_ns_;  // By schedule name.
};

}  // namespace tidemark::collector
