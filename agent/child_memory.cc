#include "agent/child_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

namespace tidemark::agent {
namespace {

// Before every block: where its span starts and ends, as offsets from the arena's base.
//
//   span_begin ... [padding] [BlockHeader: 16 bytes] [block: bytes] ... span_end
struct BlockHeader {
  uint64_t span_begin;
  uint64_t span_end;  // Bit 63: freed.
};
constexpr uint64_t kFreed = uint64_t{1} << 63;
constexpr size_t kPage = 4096;
constexpr size_t kReleaseAtLeast = 64 * 1024;

struct Arena {
  char* base = nullptr;
  size_t reserved = 0;
  size_t top = 0;       // Offset of the first byte never handed out.
  size_t released = 0;  // Bytes below `top` given back with madvise.
  size_t cap = 0;
  size_t peak = 0;
  void (*exhausted)(size_t) = nullptr;
};
Arena g_arena;

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) & ~(to - 1); }

BlockHeader* HeaderOf(const void* block) {
  return reinterpret_cast<BlockHeader*>(const_cast<char*>(static_cast<const char*>(block)) -
                                        sizeof(BlockHeader));
}

size_t InUse() { return g_arena.top - g_arena.released; }

void* ZstdAllocate(void*, size_t bytes) { return ChildAllocate(bytes); }
void ZstdFree(void*, void* block) { ChildFree(block); }

}  // namespace

bool OpenChildMemory(size_t cap_bytes, void (*exhausted)(size_t)) {
  // Address space is cheap and untouched pages cost nothing: reserve well past the cap, so
  // that blocks given back never have to be reused. Strict overcommit counts the whole range,
  // hence the smaller tries.
  for (const size_t times : {16, 2, 1}) {
    const size_t bytes = RoundUp(cap_bytes * times, kPage);
    void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) continue;
    g_arena = Arena{.base = static_cast<char*>(base),
                    .reserved = bytes,
                    .cap = cap_bytes,
                    .exhausted = exhausted};
    return true;
  }
  return false;
}

bool ChildMemoryOpen() { return g_arena.base != nullptr; }

bool FromChildMemory(const void* block) {
  const char* p = static_cast<const char*>(block);
  return g_arena.base != nullptr && p >= g_arena.base && p < g_arena.base + g_arena.top;
}

void* ChildAllocate(size_t bytes, size_t alignment) {
  Arena& a = g_arena;
  alignment = std::max<size_t>(alignment, 16);
  const size_t begin = a.top;
  const size_t block = RoundUp(begin + sizeof(BlockHeader), alignment);
  const size_t end = RoundUp(block + std::max<size_t>(bytes, 1), 16);
  if (bytes > a.cap || end > a.reserved || end - a.released > a.cap) a.exhausted(a.cap);
  auto* header = reinterpret_cast<BlockHeader*>(a.base + block - sizeof(BlockHeader));
  *header = {begin, end};
  a.top = end;
  a.peak = std::max(a.peak, InUse());
  return a.base + block;
}

void ChildFree(void* block) {
  if (block == nullptr || !FromChildMemory(block)) return;
  Arena& a = g_arena;
  BlockHeader* h = HeaderOf(block);
  if (h->span_end & kFreed) return;
  if (h->span_end == a.top) {  // The last block: its span is handed out again.
    a.top = h->span_begin;
    return;
  }
  h->span_end |= kFreed;
  const size_t end = h->span_end & ~kFreed;
  const size_t first_page = RoundUp(static_cast<size_t>(static_cast<char*>(block) - a.base), kPage);
  const size_t last_page = end & ~(kPage - 1);
  if (last_page > first_page && last_page - first_page >= kReleaseAtLeast &&
      madvise(a.base + first_page, last_page - first_page, MADV_DONTNEED) == 0) {
    a.released += last_page - first_page;
  }
}

void* ChildReallocate(void* block, size_t bytes) {
  if (block == nullptr) return ChildAllocate(bytes);
  if (!FromChildMemory(block)) return nullptr;
  const BlockHeader* h = HeaderOf(block);
  const size_t old_bytes =
      (h->span_end & ~kFreed) - static_cast<size_t>(static_cast<char*>(block) - g_arena.base);
  void* moved = ChildAllocate(bytes);
  std::memcpy(moved, block, std::min(old_bytes, bytes));
  ChildFree(block);
  return moved;
}

size_t ChildPeakBytes() { return g_arena.peak; }

snapshot::Allocator ChildZstdAllocator() {
  return {.allocate = &ZstdAllocate, .free = &ZstdFree, .opaque = nullptr};
}

}  // namespace tidemark::agent
