#include "agent/address_tables.h"

#include "agent/walker.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <new>
#include <utility>

namespace tidemark::agent {

GranuleMarks::GranuleMarks() : table_(64) {}
GranuleMarks::~GranuleMarks() = default;

GranuleMarks::Chunk* GranuleMarks::Lookup(uint64_t number) {
  const uint64_t key = number + 1;
  size_t mask = table_.size() - 1;
  size_t slot = (key * 0x9E3779B97F4A7C15ull) >> (64 - std::countr_zero(table_.size()));
  while (table_[slot].key != 0 && table_[slot].key != key) slot = (slot + 1) & mask;
  if (table_[slot].key == 0) {
    if ((chunks_.size() + 1) * 2 > table_.size()) {
      std::vector<Slot> old(table_.size() * 2);
      old.swap(table_);
      mask = table_.size() - 1;
      for (const Slot& s : old) {
        if (s.key == 0) continue;
        size_t at = (s.key * 0x9E3779B97F4A7C15ull) >> (64 - std::countr_zero(table_.size()));
        while (table_[at].key != 0) at = (at + 1) & mask;
        table_[at] = s;
      }
      return Lookup(number);
    }
    chunks_.push_back(std::make_unique<Chunk>());  // Value-initialized: all marks clear.
    table_[slot] = {key, chunks_.back().get()};
  }
  cache_[number & (kCacheSize - 1)] = table_[slot];
  return table_[slot].chunk;
}

SlotArray::SlotArray(size_t count) : count_(count) {
  constexpr size_t kHugePage = size_t{2} << 20;
  bytes_ = (count * sizeof(uint64_t) + kHugePage - 1) / kHugePage * kHugePage;
  void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  madvise(p, bytes_, MADV_HUGEPAGE);
  data_ = static_cast<uint64_t*>(p);
}

SlotArray& SlotArray::operator=(SlotArray&& other) noexcept {
  std::swap(data_, other.data_);
  std::swap(count_, other.count_);
  std::swap(bytes_, other.bytes_);
  return *this;
}

SlotArray::~SlotArray() {
  if (data_ != nullptr) munmap(data_, bytes_);
}

AddressIndex::AddressIndex(const std::vector<uint64_t>& addresses) : addresses_(addresses) {
  const size_t capacity = std::max<size_t>(64, addresses.size() + addresses.size() / 2);
  slots_ = SlotArray(capacity);
  constexpr size_t kAhead = 16;  // Independent inserts: fetch slots ahead.
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (i + kAhead < addresses.size()) Prefetch(addresses[i + kAhead]);
    const uint64_t h = Hash(addresses[i]);
    const uint64_t entry = (uint64_t{static_cast<uint32_t>(h >> 8)} << 32) | (i + 1);
    size_t slot = Home(h);
    while (slots_[slot] != 0) slot = slot + 1 == capacity ? 0 : slot + 1;
    slots_[slot] = entry;
  }
}

int64_t AddressIndex::Find(uint64_t address) const {
  const uint64_t h = Hash(address);
  const uint32_t fingerprint = static_cast<uint32_t>(h >> 8);
  const size_t capacity = slots_.size();
  for (size_t slot = Home(h);; slot = slot + 1 == capacity ? 0 : slot + 1) {
    const uint64_t entry = slots_[slot];
    if (entry == 0) return -1;
    if ((entry >> 32) == fingerprint) {
      const uint32_t index = static_cast<uint32_t>(entry) - 1;
      if (addresses_[index] == address) return index;
    }
  }
}

// Declared with the walk it completes (walker.h); it lives here, away from Python.
void ResolveReferences(UnresolvedReferences&& unresolved, snapshot::Graph* graph) {
  const size_t objects = graph->address.size();
  std::vector<uint64_t>& addresses = unresolved.ref_addresses;
  size_t written = 0;
  {
    const AddressIndex index(graph->address);
    // In place: target k is written over the address it came from, or an earlier one, and
    // never past what is still to be read. Peak memory is the addresses and the index.
    constexpr size_t kAhead = 16;
    size_t next = 0;
    for (size_t i = 0; i < objects; ++i) {
      const uint64_t end = graph->ref_begin[i + 1];
      graph->ref_begin[i] = written;
      for (; next < end; ++next) {
        if (next + kAhead < addresses.size()) index.Prefetch(addresses[next + kAhead]);
        const int64_t target = index.Find(addresses[next]);
        if (target >= 0) addresses[written++] = static_cast<uint64_t>(target);
      }
    }
    graph->ref_begin.resize(objects + 1);
    graph->ref_begin[objects] = written;
    graph->roots.clear();
    for (const auto& [address, kind] : unresolved.roots) {
      const int64_t target = index.Find(address);
      if (target >= 0) graph->roots.emplace_back(static_cast<uint32_t>(target), kind);
    }
  }  // The index is freed before the narrow copy is made.
  graph->refs.assign(addresses.begin(), addresses.begin() + static_cast<ptrdiff_t>(written));
  std::vector<uint64_t>().swap(addresses);
}

}  // namespace tidemark::agent
