// GraphCache: graph snapshots loaded for the query API (with referrers and the dominator
// tree), kept while they fit in `max_bytes`, least recently used out first. A graph larger
// than max_bytes is loaded for its query only. Queries hold a shared_ptr, so eviction never
// frees a graph in use.
//
// Thread-safety: thread-safe. Two queries missing the same graph at once may both load it.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "analysis/dominators.h"
#include "analysis/heap_graph.h"
#include "snapshot/result.h"
#include "store/store.h"

namespace tidemark::collector {

struct LoadedGraph {
  analysis::HeapGraph graph;
  analysis::Dominators dominators;
  uint64_t bytes = 0;  // What it takes in memory (estimate: the graph's own, plus dominators).
};

class GraphCache {
 public:
  explicit GraphCache(uint64_t max_bytes) : max_bytes_(max_bytes) {}

  // The stored graph snapshot `entry` of `store_dir`, loaded if it is not cached.
  snapshot::Result<std::shared_ptr<const LoadedGraph>> Get(const std::string& store_dir,
                                                           const store::IndexEntry& entry);

  uint64_t hits() const { return hits_.load(); }
  uint64_t misses() const { return misses_.load(); }
  uint64_t bytes() const;

 private:
  const uint64_t max_bytes_;
  mutable std::mutex mutex_;
  // Most recently used first: (segment:offset, graph).
  std::list<std::pair<std::string, std::shared_ptr<const LoadedGraph>>> entries_;
  uint64_t bytes_ = 0;
  std::atomic<uint64_t> hits_{0}, misses_{0};
};

}  // namespace tidemark::collector
