// What is new between two graph snapshots of one process, and what holds it.
//
// An object of the later graph is "new" unless the earlier graph has an object at the same
// address with the same type name. Addresses are reused once freed, so an object freed and
// replaced by another of the same type at the same address counts as old: the count of new
// objects is a lower bound, exact when the allocator did not recycle the address for that
// type in between. (A leak's objects are never freed, so they are never recycled.)
//
// For the largest groups of new objects (by type, by bytes) the holders are the nearest
// dominators that are not new themselves — the old container the new objects hang from —
// with a named path from a root to each.
//
// Thread-safety: reads its inputs only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/dominators.h"
#include "analysis/heap_graph.h"
#include "analysis/holders.h"

namespace tidemark::analysis {

struct NewGroup {
  std::string type;
  uint64_t count = 0;
  uint64_t bytes = 0;
  std::vector<Holder> holders;  // Largest first.
};

struct GraphDiffResult {
  double seconds = 0;  // Between the two snapshots.
  uint64_t new_objects = 0, new_bytes = 0;
  uint64_t gone_objects = 0, gone_bytes = 0;
  std::vector<NewGroup> groups;  // Largest first.
  bool approximate = false;      // A graph was capped: holders and paths may be incomplete.
};

struct GraphDiffOptions {
  size_t groups = 5;
  size_t holders = 3;
  size_t all_groups_listed = 50;  // Groups reported with counts only.
};

// REQUIRES: later.BuildParents() ran; `dominators` are later's.
GraphDiffResult DiffGraphs(const HeapGraph& earlier, const HeapGraph& later,
                           const Dominators& dominators, const GraphDiffOptions& options = {});

}  // namespace tidemark::analysis
