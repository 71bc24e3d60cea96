// A heap graph in formats other tools open.
//
// - Callgrind (KCachegrind, callgrind_annotate): one "function" per type, costs Bytes and
//   Objects; a call from type A to type B is an object of type B whose immediate dominator is
//   of type A, its inclusive cost what it retains. Self costs sum to the heap.
// - Folded stacks (flamegraph.pl, inferno, speedscope): one line per dominator-tree path of
//   types ("module;dict;list;Session 2048"), valued by self bytes, so a flame graph's widths
//   are retained bytes. Consecutive objects of one type share a frame; paths deeper than
//   kMaxFrames are cut there.
// - Chrome DevTools .heapsnapshot: nodes (name = type, or a string's value), edges named
//   like EdgeName, a synthetic root pointing at every root; the Memory tab then computes its
//   own dominators and retainers.
//
// Thread-safety: reads its inputs only.
#pragma once

#include <iosfwd>

#include "analysis/dominators.h"
#include "analysis/heap_graph.h"

namespace tidemark::analysis {

inline constexpr size_t kMaxFrames = 64;

void WriteCallgrind(const HeapGraph& g, const Dominators& d, std::ostream& out);
void WriteFoldedStacks(const HeapGraph& g, const Dominators& d, std::ostream& out);
void WriteHeapSnapshot(const HeapGraph& g, std::ostream& out);

}  // namespace tidemark::analysis
