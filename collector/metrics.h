// The daemon's counters and the agents it has heard from, rendered as Prometheus text.
//
// Counters are atomics bumped by the ingest thread; the agent table is guarded by a mutex and
// bounded: an agent silent for kAgentForgetAfter leaves it (the store still lists it), swept at
// each scrape and, while the table is full, at most once per kSweepInterval as snapshots come
// (a full table costs a snapshot one lookup, not a scan); a snapshot from an agent that finds no
// room is counted (uncharted), not charted.
// Thread-safety: thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "collector/validate.h"
#include "snapshot/snapshot.h"
#include "store/store.h"

namespace tidemark::collector {

class Metrics {
 public:
  static constexpr int64_t kAgentForgetAfterNs = int64_t{3600} * 1'000'000'000;
  static constexpr size_t kMaxAgents = 10'000;
  static constexpr int64_t kSweepIntervalNs = int64_t{60} * 1'000'000'000;

  void Received(const snapshot::Header& header, uint64_t message_bytes, int64_t now_ns);
  void Acknowledged() { acknowledged_.fetch_add(1, std::memory_order_relaxed); }
  // A resent snapshot the store holds already: acknowledged, not stored again.
  void Duplicate() { duplicates_.fetch_add(1, std::memory_order_relaxed); }
  void Dropped(DropReason reason) {
    drops_[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
  }
  void RetentionRemoved(const store::RetentionResult& r);

  uint64_t dropped(DropReason reason) const {
    return drops_[static_cast<int>(reason)].load(std::memory_order_relaxed);
  }
  uint64_t acknowledged() const { return acknowledged_.load(std::memory_order_relaxed); }

  std::string Render(const store::StoreStats& store, int64_t now_ns);

 private:
  struct AgentSeen {
    snapshot::Identity identity;
    int64_t last_seen_ns = 0;
    snapshot::AgentFigures figures;
    uint64_t rss_bytes = 0;
    uint64_t heap_objects = 0;
    uint64_t heap_bytes = 0;
  };

  std::atomic<uint64_t> snapshots_[2] = {};
  std::atomic<uint64_t> bytes_[2] = {};
  std::atomic<uint64_t> acknowledged_{0};
  std::atomic<uint64_t> duplicates_{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(DropReason::kCount)> drops_ = {};
  std::atomic<uint64_t> retention_snapshots_{0};
  std::atomic<uint64_t> retention_bytes_{0};
  std::atomic<uint64_t> uncharted_{0};

  std::mutex mutex_;
  std::map<std::string, AgentSeen> agents_;  // By service, host and pid: its labels.
  int64_t next_sweep_ns_ = 0;                // While full: no sweep before then.
  void Sweep(int64_t now_ns);                // REQUIRES: mutex_ held.
};

// Writes a Prometheus label value: backslash, double quote and newline escaped.
std::string EscapeLabel(const std::string& value);

}  // namespace tidemark::collector
