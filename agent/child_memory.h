// ChildMemory: the only memory a snapshot child (agent/isolation.h) allocates from. No Python.
//
// A child made with the raw clone() system call, without the host's fork handlers, inherits
// every lock of its parent as it was at that instant: a malloc arena lock held by another
// thread (a C thread inside malloc) stays held forever in the child, and a child that called
// malloc could wait on it forever. So a child never calls malloc. It maps one range of address
// space itself (MAP_NORESERVE: a page costs memory only once touched) and allocates by bumping
// a pointer; a freed block at the top is reused, a freed block of 64 KiB or more gives its
// pages back (madvise), smaller ones are left until the child exits.
//
// Everything that allocates in the child comes here: the agent module's operator new and
// delete (the module links libstdc++ statically and privately, so the standard library's own
// allocations, std::string's included, are ours too), CPython's allocators (the child installs
// them for every domain: agent/isolation.cc) and zstd's (ChildZstdAllocator).
//
// Past the cap an allocation does not fail: the child calls the exhaustion callback, which
// reports and exits. Nothing in a child throws.
//
// Thread-safety: none. Opened once, in a child, which has one thread; in every other process
// it stays closed and the module's operator new is malloc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "snapshot/wire.h"

namespace tidemark::agent {

// Maps the arena in this process: at most `cap_bytes` in use at once. `exhausted` is called
// (and must not return) when an allocation would pass the cap. False if no range could be
// mapped (strict overcommit refusing even `cap_bytes`).
bool OpenChildMemory(size_t cap_bytes, void (*exhausted)(size_t cap_bytes));

// Whether this process is a snapshot child with its arena open.
bool ChildMemoryOpen();

// REQUIRES: ChildMemoryOpen(). Never null: past the cap, `exhausted` runs instead.
// `alignment`: a power of two up to 4096.
void* ChildAllocate(size_t bytes, size_t alignment = 16);

// A block from the arena is freed; any other (made by the parent before the clone) is left:
// it is the parent's memory, and freeing it would take malloc's locks.
void ChildFree(void* block);

// Whether `block` was made by ChildAllocate.
bool FromChildMemory(const void* block);

// The block resized (moved, contents kept). nullptr for a block the arena did not make: its
// size is unknown without asking malloc.
void* ChildReallocate(void* block, size_t bytes);

// The most bytes in use at once so far (blocks, their headers and alignment).
size_t ChildPeakBytes();

// For snapshot::Encode: zstd's working memory from the arena.
snapshot::Allocator ChildZstdAllocator();

}  // namespace tidemark::agent
