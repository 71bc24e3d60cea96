// Walker: one pass over the whole live heap of this interpreter, natively.
//
// The walk starts from the interpreter's roots (sys.modules, every thread's frames) and then
// from every object on the collector's lists (all generations and the permanent one), and
// visits each reachable object exactly once, untracked ones included. It runs no Python
// code, creates no GC object, materializes no __dict__ or frame and fills no str's UTF-8
// cache; docs/agent.md lists how each kind of object is sized and which referents are
// added to what tp_traverse shows.
//
// The walk is breadth-first in discovery order, which doubles as the object numbering: the
// queue is the address column, so no other stack exists and depth is irrelevant. "Seen
// before?" is a bit per 16-byte granule of the address space (GranuleMarks), so the walk
// never probes a large hash table while it holds the GIL. A graph's references are recorded
// as addresses; ResolveReferences() turns them into object indices afterwards, without the
// GIL.
//
// Thread-safety: REQUIRES the GIL for Walk(); ResolveReferences() needs no Python.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/address_tables.h"
#include "agent/walk_buffers.h"
#include "snapshot/snapshot.h"

namespace tidemark::agent {

struct WalkOptions {
  snapshot::Kind kind = snapshot::Kind::kSummary;
  bool values = false;                     // Graph only: short values of str, int, float, bool.
  size_t value_chars = 100;                // Prefix length of str values.
  int64_t max_refs = -1;                   // Graph only: references kept per object; -1 = all.
  std::vector<std::string> exclude_types;  // Not recorded and not entered.
  std::vector<std::string> sized_types;    // Listed for sizers after the walk (by type name).
  uint64_t max_objects = 0;                // Abandon past this many objects; 0 = no limit.
  double max_pause_ms = 0;                 // Abandon once the GIL was held this long; 0 = no limit.
  // The process's RSS as the walk starts, if known (noted for the next walk's buffers, see
  // walk_buffers.h). Not a setting.
  uint64_t rss_bytes = 0;
};

// An object of one of WalkOptions::sized_types: the configured sizer adds to its size once
// the walk is over.
struct SizedObject {
  size_t index;  // Object number (graph column position).
  void* object;  // The PyObject*, alive as long as no Python code ran since the walk.
  uint32_t row;  // Its row in Snapshot::types.
};

struct WalkOutcome {
  bool abandoned = false;
  std::string abandon_reason;
  double pause_ms = 0;
  double cpu_ms = 0;  // The walk's CPU time: pause_ms without the time the thread waited.
  uint64_t references = 0;
  std::vector<SizedObject> needs_sizer;
};

// In Graph::refs after a walk: a reference to an object met earlier, whose index the walk
// does not know (it knows the index of each object it meets for the first time).
inline constexpr uint32_t kSeenBefore = UINT32_MAX - 1;

// An attribute as the walk records it: owner.<attribute_names[name]> is the object at `target`.
struct PendingAttribute {
  uint32_t owner;
  uint64_t target;
  uint32_t name;
};

// What a graph walk leaves for ResolveReferences: the addresses of the kSeenBefore
// references in order, the roots, namespace dicts and attribute values by address, and the
// walk's marks, which number objects.
struct UnresolvedReferences {
  std::vector<uint64_t> seen_ref_addresses;
  std::vector<std::pair<uint64_t, snapshot::RootKind>> roots;
  std::vector<std::pair<uint64_t, uint32_t>> owners;  // (namespace dict's address, owner)
  std::vector<PendingAttribute> attributes;
  std::vector<std::pair<uint64_t, uint32_t>> attribute_keys;  // (str key's address, name)
  std::vector<std::pair<uint64_t, uint32_t>> object_sites;    // (sampled object, stack)
  std::unique_ptr<GranuleMarks> marks;
};

// Appends at most `max_chars` characters of a str as UTF-8, read from its canonical data:
// PyUnicode_AsUTF8 would fill (allocate) the str's UTF-8 cache. Lone surrogates become U+FFFD.
// REQUIRES: the GIL; `str` is a str. (struct _object is PyObject: this header has no Python.h.)
void AppendUtf8(struct _object* str, size_t max_chars, std::string* out);

// Makes the few Python objects every walk uses (interned names), so that no walk allocates.
// REQUIRES: GIL held. Called once, at import.
void PrepareWalks();

// Walks the heap into `out` (header totals, type table, and for graphs every column but
// refs and roots, which go to `unresolved`), writing its columns into `buffers`
// (PrepareWalkBuffers, made before the GIL was taken where the caller could).
// REQUIRES: GIL held; main interpreter; no collection running.
WalkOutcome Walk(const WalkOptions& options, WalkBuffers buffers, snapshot::Snapshot* out,
                 UnresolvedReferences* unresolved);

// Replaces the kSeenBefore references with object indices and fills graph->roots, owners and
// attributes (references to objects the walk did not record, as in an abandoned walk, are
// dropped).
// Needs no GIL.
void ResolveReferences(UnresolvedReferences&& unresolved, snapshot::Graph* graph);

}  // namespace tidemark::agent
