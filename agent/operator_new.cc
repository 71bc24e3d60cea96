// The agent module's operator new and delete: malloc and free, except in a snapshot child,
// where every C++ allocation comes from the child's own memory (agent/child_memory.h).
//
// These replace the global operators for the module alone: it links libstdc++ statically and
// exports nothing but its init function (agent/CMakeLists.txt), so the host's C++ code and
// other extensions keep theirs, and the standard library code inside the module uses these.
#include <cstdlib>
#include <new>

#include "agent/child_memory.h"

namespace {

using tidemark::agent::ChildAllocate;
using tidemark::agent::ChildFree;
using tidemark::agent::ChildMemoryOpen;

void* Allocate(std::size_t bytes, std::size_t alignment) {
  if (ChildMemoryOpen()) return ChildAllocate(bytes, alignment);
  void* p = nullptr;
  if (alignment <= alignof(std::max_align_t)) {
    p = std::malloc(bytes ? bytes : 1);
  } else if (posix_memalign(&p, alignment, bytes ? bytes : 1) != 0) {
    p = nullptr;
  }
  return p;
}

void Free(void* p) {
  if (p == nullptr) return;
  if (ChildMemoryOpen()) {
    ChildFree(p);  // The parent's blocks are left alone (FromChildMemory).
    return;
  }
  std::free(p);
}

void* AllocateOrThrow(std::size_t bytes, std::size_t alignment) {
  void* p = Allocate(bytes, alignment);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

constexpr std::size_t kDefault = alignof(std::max_align_t);

}  // namespace

void* operator new(std::size_t n) { return AllocateOrThrow(n, kDefault); }
void* operator new[](std::size_t n) { return AllocateOrThrow(n, kDefault); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return Allocate(n, kDefault); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return Allocate(n, kDefault);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return AllocateOrThrow(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return AllocateOrThrow(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return Allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return Allocate(n, static_cast<std::size_t>(a));
}

void operator delete(void* p) noexcept { Free(p); }
void operator delete[](void* p) noexcept { Free(p); }
void operator delete(void* p, std::size_t) noexcept { Free(p); }
void operator delete[](void* p, std::size_t) noexcept { Free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { Free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { Free(p); }
void operator delete(void* p, std::align_val_t) noexcept { Free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { Free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { Free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { Free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { Free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { Free(p); }
