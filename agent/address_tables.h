// GranuleMarks: the walker's record of which addresses it has met. No Python here.
//
// A few bits per 16-byte granule of the address space, in 1 MiB chunks made on first touch.
// Two objects never start in the same granule (every object is at least 16 bytes), so a bit
// per granule is a bit per object; the chunks of a 100 MB heap take a few MB and stay in
// cache, which is what makes the walk's "seen before?" cheap. After a graph walk the same
// bits number the objects (Rank), which is how references recorded as addresses become
// object indices without an address-to-index hash table.
//
// Thread-safety: none; one walk owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace tidemark::agent {

class GranuleMarks {
 public:
  // kOwned: a namespace dict whose owner the walk has met (graph walks).
  enum Mark { kSeen = 0, kProcessed = 1, kFolded = 2, kOwned = 3 };

  GranuleMarks();
  ~GranuleMarks();
  GranuleMarks(const GranuleMarks&) = delete;
  GranuleMarks& operator=(const GranuleMarks&) = delete;

  // Sets the mark; returns whether it was already set.
  bool TestAndSet(uint64_t address, Mark mark) {
    uint64_t* word = Word(address, mark);
    const uint64_t bit = Bit(address);
    const bool was = (*word & bit) != 0;
    *word |= bit;
    return was;
  }

  bool Test(uint64_t address, Mark mark) { return (*Word(address, mark) & Bit(address)) != 0; }
  // Test, for any address (makes no chunk where none was marked).
  bool TestAny(uint64_t address, Mark mark) const;

  // Numbers every address marked kSeen, 0 to seen_count() - 1. REQUIRES: no more marks set.
  void NumberSeen();
  size_t seen_count() const { return seen_count_; }
  // The number of a seen address, or -1. REQUIRES: NumberSeen().
  int64_t Rank(uint64_t address) const;

 private:
  static constexpr int kGranuleShift = 4;  // 16-byte granules.
  static constexpr int kChunkShift = 20;   // 1 MiB of address space per chunk.
  static constexpr size_t kWords = (size_t{1} << (kChunkShift - kGranuleShift)) / 64;
  static constexpr size_t kMarks = 4;
  static constexpr size_t kCacheSize = 64;

  struct Chunk {
    uint64_t words[kMarks][kWords];
    uint32_t seen_before[kWords];  // NumberSeen(): kSeen bits in earlier words of the chunk.
    uint64_t first_number;         // NumberSeen(): the number of the chunk's first seen address.
  };
  struct Slot {
    uint64_t key = 0;  // Chunk number + 1; 0 = empty.
    Chunk* chunk = nullptr;
  };

  static uint64_t Bit(uint64_t address) { return uint64_t{1} << ((address >> kGranuleShift) & 63); }
  static size_t WordIndex(uint64_t address) {
    return (address >> (kGranuleShift + 6)) & (kWords - 1);
  }

  uint64_t* Word(uint64_t address, Mark mark) {
    const uint64_t number = address >> kChunkShift;
    Slot& cached = cache_[number & (kCacheSize - 1)];
    Chunk* chunk = cached.key == number + 1 ? cached.chunk : Lookup(number);
    return &chunk->words[mark][WordIndex(address)];
  }

  Chunk* Lookup(uint64_t number);      // Makes the chunk if needed.
  Chunk* Find(uint64_t number) const;  // nullptr if there is none.
  size_t Home(uint64_t key) const;

  std::vector<std::unique_ptr<Chunk>> chunks_;
  std::vector<Slot> table_;
  Slot cache_[kCacheSize] = {};
  size_t seen_count_ = 0;
};

}  // namespace tidemark::agent
