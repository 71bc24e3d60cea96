#include "agent/isolation_policy.h"

#include <cerrno>
#include <cstring>

namespace tidemark::agent {

std::optional<Isolation> ParseIsolation(std::string_view name) {
  if (name == "inline") return Isolation::kInline;
  if (name == "fork") return Isolation::kFork;
  if (name == "auto") return Isolation::kAuto;
  return std::nullopt;
}

const char* IsolationName(Isolation isolation) {
  switch (isolation) {
    case Isolation::kInline:
      return "inline";
    case Isolation::kFork:
      return "fork";
    case Isolation::kAuto:
      break;
  }
  return "auto";
}

double IsolationPolicy::PredictWalkMs(uint64_t rss_bytes, const Probes& probes) const {
  double last_walk_cpu_ms;
  uint64_t last_walk_rss;
  {
    std::lock_guard lock(mutex_);
    last_walk_cpu_ms = last_walk_cpu_ms_;
    last_walk_rss = last_walk_rss_;
  }
  constexpr double kMiB = 1 << 20;
  if (last_walk_cpu_ms >= 0) {
    return last_walk_rss == 0 ? last_walk_cpu_ms
                              : last_walk_cpu_ms * static_cast<double>(rss_bytes) /
                                    static_cast<double>(last_walk_rss);
  }
  if (const int64_t blocks = probes.allocated_blocks(); blocks > 0) {
    return kFirstWalkNsPerBlock * static_cast<double>(blocks) / 1e6;
  }
  return kFirstWalkMsPerMiB * static_cast<double>(rss_bytes) / kMiB;
}

IsolationPolicy::Decision IsolationPolicy::Decide(Isolation requested, bool sizers,
                                                  uint64_t rss_bytes, const Probes& probes) {
  Decision d;
  if (requested == Isolation::kFork) d.page_table_bytes = probes.page_table_bytes();
  if (requested != Isolation::kAuto) {
    d.mode = requested;
    return d;
  }
  bool fallback = false;
  double fork_cpu_ms_per_mib;
  {
    // The probes run without the mutex: one may wait for the GIL, which a thread asking for
    // figures() holds.
    std::lock_guard lock(mutex_);
    if (sizers) return d;
    if (unavailable_) {
      fallback = true;
    } else if (refused_skip_ > 0) {
      --refused_skip_;
      fallback = true;
    }
    fork_cpu_ms_per_mib = fork_cpu_ms_per_mib_;
  }
  const double walk_ms = PredictWalkMs(rss_bytes, probes);
  d.predicted_walk_ms = walk_ms;
  if (fallback || walk_ms < kMinForkWalkMs) {
    d.fallback = fallback;
    return d;
  }
  d.page_table_bytes = probes.page_table_bytes();
  constexpr double kMiB = 1 << 20;
  const double fork_ms = fork_cpu_ms_per_mib * static_cast<double>(d.page_table_bytes) / kMiB;
  d.mode = 2 * fork_ms <= walk_ms ? Isolation::kFork : Isolation::kInline;
  return d;
}

void IsolationPolicy::RecordInline(double walk_cpu_ms, uint64_t rss_bytes, const std::string& why) {
  std::lock_guard lock(mutex_);
  last_walk_cpu_ms_ = walk_cpu_ms;
  last_walk_rss_ = rss_bytes;
  ++figures_.inline_walks;
  figures_.last_isolation = why;
}

void IsolationPolicy::RecordFork(const IsolationFigures& last, uint64_t rss_bytes,
                                 double walk_cpu_ms, double fork_cpu_ms) {
  std::lock_guard lock(mutex_);
  last_walk_cpu_ms_ = walk_cpu_ms;
  last_walk_rss_ = rss_bytes;
  if (last.last_page_table_bytes > 0 && fork_cpu_ms > 0) {
    fork_cpu_ms_per_mib_ =
        fork_cpu_ms / (static_cast<double>(last.last_page_table_bytes) / (1 << 20));
  }
  ++figures_.fork_walks;
  figures_.last_isolation = "fork";
  figures_.last_fork_pause_ms = last.last_fork_pause_ms;
  figures_.last_clone_ms = last.last_clone_ms;
  figures_.last_child_walk_ms = last.last_child_walk_ms;
  figures_.last_child_wall_ms = last.last_child_wall_ms;
  figures_.last_child_peak_bytes = last.last_child_peak_bytes;
  figures_.last_parent_fault_bytes = last.last_parent_fault_bytes;
  figures_.last_page_table_bytes = last.last_page_table_bytes;
}

void IsolationPolicy::RecordRefused(int error_number) {
  std::lock_guard lock(mutex_);
  ++figures_.fork_refused;
  if (error_number == EPERM || error_number == ENOSYS) {
    unavailable_ = true;
  } else {
    refused_skip_ = kRetryRefusedAfter;
  }
}

void IsolationPolicy::RecordChildFailed(const std::string& error) {
  std::lock_guard lock(mutex_);
  ++figures_.child_failed;
  figures_.last_isolation = "fork (failed)";
  figures_.last_child_error = error;
}

void IsolationPolicy::RecordSkippedForPause() {
  std::lock_guard lock(mutex_);
  ++figures_.skipped_for_pause;
  figures_.last_isolation = "skipped (inline over the pause bound)";
}

void IsolationPolicy::RecordChildCancelled() {
  std::lock_guard lock(mutex_);
  ++figures_.child_cancelled;
  refused_skip_ = kRetryRefusedAfter;
}

IsolationFigures IsolationPolicy::figures() const {
  std::lock_guard lock(mutex_);
  return figures_;
}

IsolationPolicy& Policy() {
  static IsolationPolicy policy;
  return policy;
}

}  // namespace tidemark::agent
