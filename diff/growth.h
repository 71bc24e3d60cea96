// Rolling growth of one series (a type's count and bytes in one agent, or a process's RSS)
// over a window, and the tests that tell a leak from normal behaviour.
//
// A series is samples (time, count, bytes), oldest first. A window of length W ends at the
// newest sample; W == 0 means "since the previous sample". The figures:
//   delta        newest - oldest sample in the window
//   rate         least-squares slope of bytes (and count) over time, per hour
//   recent_rate  the same over the newest half of the window: still growing, or levelled off?
//   fit          R^2 of the bytes line: 1 for a straight line, ~0 for noise around a level
//   increasing   share of the steps between samples that went up, among those that moved
//   separated    the lowest sample of the newest third is above the highest of the oldest
//                third: the growth is larger than the noise or the sawtooth riding on it
//
// Pure functions over values. Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace tidemark::diff {

inline constexpr int64_t kNsPerHour = int64_t{3600} * 1'000'000'000;

struct Sample {
  int64_t t_ns = 0;
  double count = 0;
  double bytes = 0;
};

struct Growth {
  int64_t window_ns = 0;   // As asked.
  int64_t covered_ns = 0;  // Newest - oldest sample in the window.
  size_t points = 0;
  double count_now = 0, bytes_now = 0;
  double count_delta = 0, bytes_delta = 0;
  double bytes_per_hour = 0, count_per_hour = 0;
  double recent_bytes_per_hour = 0;
  double fit = 0;
  double increasing = 0;
  bool separated = false;
};

// REQUIRES: samples ordered by t_ns.
Growth ComputeGrowth(std::span<const Sample> samples, int64_t window_ns);

// What a leak rule asks of a series (see diff/detector.h for where the numbers come from).
struct LeakCriteria {
  double min_bytes_per_hour = 0;
  double min_growth_bytes = 0;
  double min_fit = 0;
  int64_t window_ns = kNsPerHour;
  size_t min_points = 6;
  double min_coverage = 0.75;     // covered_ns / window_ns: no verdict on a short history.
  double min_recent_share = 0.5;  // recent_rate >= share * rate: not levelling off.
};

// True when the growth looks like a leak: enough history, fast and large enough, still
// growing in the newest half, above the noise, and (if asked) close to a line.
bool LooksLikeLeak(const Growth& growth, const LeakCriteria& criteria);

// Shell-style glob: '*' any run, '?' one character; everything else literal.
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace tidemark::diff
