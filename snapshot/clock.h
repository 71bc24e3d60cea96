// The one wall clock of tidemark: ns since the Unix epoch, as snapshots, identities, the store
// and alerts carry it. Code that decides by time takes `now` as an argument; only the edges
// (the agent's threads, the daemon's loops, the CLI's main) read this.
// Thread-safety: reentrant.
#pragma once

#include <chrono>
#include <cstdint>

namespace tidemark::snapshot {

inline int64_t WallNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace tidemark::snapshot
