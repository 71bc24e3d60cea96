// The daemon's wall clock, in one place: ns since the Unix epoch (what snapshots, the store
// and alerts use). Thread-safety: reentrant.
#pragma once

#include <chrono>
#include <cstdint>

namespace tidemark::collector {

inline int64_t WallNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace tidemark::collector
