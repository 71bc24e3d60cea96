// What holds a set of objects: for each member, its nearest dominator that is not a member —
// the outside object whose freeing would free it. A graph diff's set is the new objects
// (analysis/graph_diff.h); a single snapshot's is one type's instances (LargestTypesHeld).
//
// Thread-safety: a Holding only reads its graph; its Of() uses the caller's PathFinder.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "analysis/dominators.h"
#include "analysis/heap_graph.h"
#include "analysis/queries.h"

namespace tidemark::analysis {

struct Holder {
  uint32_t object = kNone;  // kNone: no single outside dominator (the members hang from roots).
  uint64_t count = 0;       // Members of the group it dominates.
  uint64_t bytes = 0;       // Their retained bytes.
  std::string description;  // Describe(holder).
  std::string path;         // From a root to the holder, named where possible.
  // The outermost members under the holder (those no other member dominates) of the type
  // retaining the most: what the group is made of, its contents included. A leak of Records
  // each holding a bytes payload: the bytes group's holder says Record.
  std::string outermost_type;
  uint64_t outermost_count = 0;
  uint64_t outermost_bytes = 0;  // Retained, contents included.
};

class Holding {
 public:
  // REQUIRES: `d` are g's dominators; member.size() == g.size(). Both outlive this.
  Holding(const HeapGraph& g, const Dominators& d, std::vector<bool> member);

  // What holds the members of type `type` (a member inside another member of that type counts
  // with it), largest retained first, at most `max`, each with a path from a root.
  // REQUIRES: g.BuildParents() ran (for the paths).
  std::vector<Holder> Of(uint32_t type, size_t max, PathFinder& finder) const;

 private:
  const HeapGraph& g_;
  const Dominators& d_;
  std::vector<bool> member_;
  std::vector<uint32_t> holder_;  // Nearest non-member dominator of every object.
  // Per holder, its outermost members by type: (count, retained bytes).
  std::unordered_map<uint32_t, std::unordered_map<uint32_t, std::pair<uint64_t, uint64_t>>> outer_;
};

// One type of a single snapshot and what holds its instances.
struct TypeHeld {
  std::string type;
  uint64_t count = 0, bytes = 0;  // Its instances, shallow.
  std::vector<Holder> holders;
};

// The `types` largest types by bytes and what holds each: what a snapshot taken under memory
// pressure is made of. In one snapshot nothing is "new", so the holder is the deepest object in
// the dominator tree that keeps at least half of the type's bytes alive (its own excluded): a
// list of Records each holding a bytes payload holds the bytes, not each Record. When no single
// object keeps half, at most `holders` nearest dominators outside the type (Holding).
// REQUIRES: g.BuildParents() ran; `d` are g's.
std::vector<TypeHeld> LargestTypesHeld(const HeapGraph& g, const Dominators& d, size_t types,
                                       size_t holders);

}  // namespace tidemark::analysis
