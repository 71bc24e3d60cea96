// The agent's one wall clock: ns since the Unix epoch, as snapshots and identities carry it.
// Thread-safety: reentrant.
#pragma once

#include <chrono>
#include <cstdint>

namespace tidemark::agent {

inline int64_t WallNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace tidemark::agent
