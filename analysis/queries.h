// Questions asked of a heap graph: what is there (type tables), what is reachable from an
// object, what refers to what under which name, and why an object is alive (paths to roots).
//
// Thread-safety: functions only read the graph; a PathFinder is used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/heap_graph.h"

namespace tidemark::analysis {

// Per-type table over `objects` (all when empty), sorted by (bytes, count) descending as
// meliae sorts it.
std::vector<snapshot::TypeStat> TypeTable(const HeapGraph& g,
                                          const std::vector<uint32_t>& objects = {});

// Everything reachable from `from` (itself included), each once, not entering `excluding`.
std::vector<uint32_t> Reachable(const HeapGraph& g, uint32_t from,
                                const std::vector<uint32_t>& excluding = {});

// How `parent` refers to its child at position `position` of refs(parent), as it would be
// written in Python where the graph allows: ".attr", "['key']", "[3]"; otherwise a
// description in angle brackets ("<key>", "<ref 4>").
std::string EdgeName(const HeapGraph& g, uint32_t parent, size_t position);
// The first position at which `parent` refers to `child`, or SIZE_MAX.
size_t PositionOf(const HeapGraph& g, uint32_t parent, uint32_t child);

// A short human label: "module app", "function handle", "str 'item-9'", "Session@0x7f...".
std::string Describe(const HeapGraph& g, uint32_t i);

// A chain from a root to an object, root first.
struct Path {
  std::vector<uint32_t> objects;
  RootReason root = RootReason::kUnreferenced;
  std::string text;  // "app.SESSIONS[42]" when every edge has a name, else "a -> b -> c".
};

struct PathOptions {
  size_t max_paths = 5;           // Distinct roots.
  size_t max_depth = 32;          // Edges.
  size_t max_visits = 2'000'000;  // Objects explored before giving up.
};

// Shortest referrer chains from objects to roots, by breadth-first search over parents.
// REQUIRES: g.BuildParents() ran. Reuses its scratch between calls.
class PathFinder {
 public:
  explicit PathFinder(const HeapGraph& g);
  // From any of `targets` (a multi-source search: "why are these alive").
  std::vector<Path> Find(const std::vector<uint32_t>& targets, const PathOptions& options = {});

 private:
  const HeapGraph& g_;
  std::vector<uint32_t> stamp_;
  std::vector<uint32_t> next_;  // Towards the target: the child this object was reached from.
  uint32_t generation_ = 0;
};

std::string FormatPath(const HeapGraph& g, const std::vector<uint32_t>& objects);

// Instances of a type (by exact name), in index order.
std::vector<uint32_t> InstancesOf(const HeapGraph& g, std::string_view type);

}  // namespace tidemark::analysis
