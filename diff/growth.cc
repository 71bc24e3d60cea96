#include "diff/growth.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tidemark::diff {
namespace {

struct Line {
  double slope_count = 0, slope_bytes = 0, r2 = 0;
};

// Least squares over samples, time in hours relative to the first (keeps the sums small).
Line FitLine(std::span<const Sample> s) {
  Line line;
  const size_t n = s.size();
  if (n < 2) return line;
  const int64_t t0 = s.front().t_ns;
  double st = 0, sb = 0, sc = 0;
  for (const Sample& x : s) {
    st += static_cast<double>(x.t_ns - t0) / kNsPerHour;
    sb += x.bytes;
    sc += x.count;
  }
  const double mt = st / n, mb = sb / n, mc = sc / n;
  double stt = 0, stb = 0, stc = 0, sbb = 0;
  for (const Sample& x : s) {
    const double dt = static_cast<double>(x.t_ns - t0) / kNsPerHour - mt;
    const double db = x.bytes - mb;
    stt += dt * dt;
    stb += dt * db;
    stc += dt * (x.count - mc);
    sbb += db * db;
  }
  if (stt <= 0) return line;
  line.slope_bytes = stb / stt;
  line.slope_count = stc / stt;
  line.r2 = sbb > 0 ? (stb * stb) / (stt * sbb) : 0;
  return line;
}

}  // namespace

Growth ComputeGrowth(std::span<const Sample> samples, int64_t window_ns) {
  Growth g;
  g.window_ns = window_ns;
  if (samples.empty()) return g;
  const Sample& newest = samples.back();
  g.count_now = newest.count;
  g.bytes_now = newest.bytes;
  size_t first = samples.size() - 1;
  if (window_ns == 0) {
    first = samples.size() >= 2 ? samples.size() - 2 : 0;
  } else {
    while (first > 0 && newest.t_ns - samples[first - 1].t_ns <= window_ns) --first;
  }
  const std::span<const Sample> w = samples.subspan(first);
  g.points = w.size();
  g.covered_ns = newest.t_ns - w.front().t_ns;
  g.count_delta = newest.count - w.front().count;
  g.bytes_delta = newest.bytes - w.front().bytes;
  if (w.size() < 2) return g;

  const Line all = FitLine(w);
  g.bytes_per_hour = all.slope_bytes;
  g.count_per_hour = all.slope_count;
  g.fit = all.r2;
  // The newest half by time, at least two samples.
  const int64_t middle = newest.t_ns - g.covered_ns / 2;
  size_t recent = w.size() - 1;
  while (recent > 0 && w[recent - 1].t_ns >= middle) --recent;
  recent = std::min(recent, w.size() - 2);
  g.recent_bytes_per_hour = FitLine(w.subspan(recent)).slope_bytes;

  size_t up = 0, moved = 0;
  for (size_t i = 1; i < w.size(); ++i) {
    if (w[i].bytes != w[i - 1].bytes) {
      ++moved;
      if (w[i].bytes > w[i - 1].bytes) ++up;
    }
  }
  g.increasing = moved ? static_cast<double>(up) / moved : 0;

  if (w.size() >= 3) {
    const size_t third = std::max<size_t>(1, w.size() / 3);
    double oldest_max = -std::numeric_limits<double>::infinity();
    double newest_min = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < third; ++i) oldest_max = std::max(oldest_max, w[i].bytes);
    for (size_t i = w.size() - third; i < w.size(); ++i)
      newest_min = std::min(newest_min, w[i].bytes);
    g.separated = newest_min > oldest_max;
  }
  return g;
}

bool LooksLikeLeak(const Growth& g, const LeakCriteria& c) {
  if (g.points < c.min_points) return false;
  if (static_cast<double>(g.covered_ns) < c.min_coverage * static_cast<double>(c.window_ns)) {
    return false;
  }
  if (g.bytes_per_hour <= 0 || g.bytes_per_hour < c.min_bytes_per_hour) return false;
  if (g.bytes_delta < c.min_growth_bytes) return false;
  if (g.recent_bytes_per_hour < c.min_recent_share * g.bytes_per_hour) return false;
  if (!g.separated) return false;
  return g.fit >= c.min_fit;
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  // Iterative with one backtrack point: linear in practice, no recursion.
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace tidemark::diff
