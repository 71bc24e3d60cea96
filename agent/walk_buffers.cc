#include "agent/walk_buffers.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

namespace tidemark::agent {
namespace {

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14.
#endif

// The fewest objects a walk expects; before any walk with no block count, how many are
// faulted in.
constexpr size_t kFewestObjects = 1 << 16;

std::atomic<uint64_t> g_last_objects{0};
std::atomic<uint64_t> g_last_rss{0};

// Faults in the pages of [begin, begin + bytes) for writing; their contents are unchanged
// (fresh pages are zero, and a touched page is written with what it holds).
void FaultIn(void* begin, size_t bytes) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + page - 1) & ~(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(begin) + bytes;
  if (end <= first) return;
  if (madvise(reinterpret_cast<void*>(first), end - first, MADV_POPULATE_WRITE) == 0) return;
  for (uintptr_t p = first; p < end; p += page) {
    auto* byte = reinterpret_cast<volatile char*>(p);
    *byte = *byte;
  }
}

// Room for `room` elements, the first `touched` of them faulted in.
template <typename T>
void Reserve(std::vector<T>& column, size_t room, size_t touched) {
  column.reserve(room);
  FaultIn(column.data() + column.size(), std::min(room, touched) * sizeof(T));
}

}  // namespace

void NoteWalkedObjects(uint64_t objects, uint64_t rss_bytes) {
  g_last_objects.store(objects, std::memory_order_relaxed);
  g_last_rss.store(rss_bytes, std::memory_order_relaxed);
}

bool WalkedBefore() { return g_last_objects.load(std::memory_order_relaxed) != 0; }

size_t ExpectedObjects(uint64_t rss_bytes, uint64_t blocks) {
  const uint64_t last_objects = g_last_objects.load(std::memory_order_relaxed);
  const uint64_t last_rss = g_last_rss.load(std::memory_order_relaxed);
  if (last_objects == 0) {
    const uint64_t n = blocks > 0 ? blocks + blocks / 8 : rss_bytes / 64;
    return std::max<size_t>(kFewestObjects, n);
  }
  double n = static_cast<double>(last_objects);
  if (last_rss > 0 && rss_bytes > last_rss) {
    n *= std::min(8.0, static_cast<double>(rss_bytes) / static_cast<double>(last_rss));
  }
  return std::max<size_t>(kFewestObjects, static_cast<size_t>(n * 1.125));
}

WalkBuffers PrepareWalkBuffers(bool graph, uint64_t rss_bytes, uint64_t blocks) {
  const size_t room = ExpectedObjects(rss_bytes, blocks);
  const size_t last = g_last_objects.load(std::memory_order_relaxed);
  const size_t touched = last > 0 ? 2 * last : blocks > 0 ? room : kFewestObjects;
  WalkBuffers buffers;
  Reserve(buffers.addresses, room, touched);
  if (!graph) return buffers;
  snapshot::Graph& g = buffers.graph;
  Reserve(g.type, room, touched);
  Reserve(g.size, room, touched);
  Reserve(g.length, room, touched);
  Reserve(g.ref_begin, room + 1, touched + 1);
  Reserve(g.refs, room * 3, touched * 3);
  Reserve(buffers.seen_ref_addresses, room * 2, touched * 2);
  return buffers;
}

}  // namespace tidemark::agent
