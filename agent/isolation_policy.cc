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

Isolation IsolationPolicy::Decide(Isolation requested, bool sizers, uint64_t rss_bytes,
                                  const Probes& probes, uint64_t* page_table_bytes) {
  *page_table_bytes = 0;
  if (requested == Isolation::kFork) *page_table_bytes = probes.page_table_bytes();
  if (requested != Isolation::kAuto) return requested;
  double last_walk_cpu_ms, fork_cpu_ms_per_mib;
  uint64_t last_walk_rss;
  {
    // The probes run without the mutex: one may wait for the GIL, which a thread asking for
    // figures() holds.
    std::lock_guard lock(mutex_);
    if (unavailable_ || sizers) return Isolation::kInline;
    if (refused_skip_ > 0) {
      --refused_skip_;
      return Isolation::kInline;
    }
    last_walk_cpu_ms = last_walk_cpu_ms_;
    last_walk_rss = last_walk_rss_;
    fork_cpu_ms_per_mib = fork_cpu_ms_per_mib_;
  }
  constexpr double kMiB = 1 << 20;
  double walk_ms;
  if (last_walk_cpu_ms >= 0) {
    walk_ms = last_walk_rss == 0 ? last_walk_cpu_ms
                                 : last_walk_cpu_ms * static_cast<double>(rss_bytes) /
                                       static_cast<double>(last_walk_rss);
  } else if (const int64_t blocks = probes.allocated_blocks(); blocks > 0) {
    walk_ms = kFirstWalkNsPerBlock * static_cast<double>(blocks) / 1e6;
  } else {
    walk_ms = kFirstWalkMsPerMiB * static_cast<double>(rss_bytes) / kMiB;
  }
  if (walk_ms < kMinForkWalkMs) return Isolation::kInline;
  *page_table_bytes = probes.page_table_bytes();
  const double fork_ms = fork_cpu_ms_per_mib * static_cast<double>(*page_table_bytes) / kMiB;
  return 2 * fork_ms <= walk_ms ? Isolation::kFork : Isolation::kInline;
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
