// WalkBuffers: the columns a walk writes into, sized and faulted in before it holds the GIL.
//
// A walk's columns (the address queue, and for a graph every per-object column) are new
// memory at each walk. Sized from the last walk, they rarely grow in place; but the first
// walk after the heap grew needs pages never touched before, and faulting them in with the
// GIL held made it 2.5-6x the next walk (issue 13). PrepareWalkBuffers reserves the columns
// for the objects the walk expects and faults them in, with no Python, so a caller can do it
// before it takes the GIL. No Python here.
//
// Thread-safety: NoteWalkedObjects and PrepareWalkBuffers may run on any threads at once
// (the last walk's figures are atomics); a WalkBuffers belongs to one walk.
#pragma once

#include <cstdint>
#include <vector>

#include "snapshot/snapshot.h"

namespace tidemark::agent {

struct WalkBuffers {
  std::vector<uint64_t> addresses;           // The queue; a graph's address column.
  snapshot::Graph graph;                     // Graphs: type, size, length, ref_begin, refs.
  std::vector<uint64_t> seen_ref_addresses;  // Graphs: references to objects met earlier.
};

// Tells the next walks how many objects the last one met and the RSS as it started (a walk in
// a snapshot child is noted by the parent).
void NoteWalkedObjects(uint64_t objects, uint64_t rss_bytes);

// Whether a walk was noted yet.
bool WalkedBefore();

// The objects the next walk expects, plus an eighth: the last walk's count scaled by how the
// RSS grew since (up to 8x); before any walk, `blocks` (sys.getallocatedblocks(), which counts
// every small object) or if that is 0, one per 64 bytes of RSS; at least 65,536.
size_t ExpectedObjects(uint64_t rss_bytes, uint64_t blocks = 0);

// Columns with room for ExpectedObjects objects (for a graph, 3 references each), of which
// at most twice the last walk's count are faulted in (before any walk: all of them if
// `blocks` gave the estimate, else 65,536): untouched capacity costs no memory, and an RSS
// grown by something other than objects must not cost touched memory.
WalkBuffers PrepareWalkBuffers(bool graph, uint64_t rss_bytes, uint64_t blocks = 0);

}  // namespace tidemark::agent
