// The walker's address tables. No Python here.
//
// GranuleMarks: a few bits per 16-byte granule of the address space, in 1 MiB chunks made
// on first touch. Two objects never start in the same granule (every object is at least 16
// bytes), so a bit per granule is a bit per object; the chunks of a 100 MB heap take a few
// MB and stay in cache, which is what makes the walk's "seen before?" cheap.
//
// AddressIndex: address -> object index, built after the walk (without the GIL) to turn the
// recorded reference addresses into object indices.
//
// Thread-safety: none; each table belongs to one walk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace tidemark::agent {

class GranuleMarks {
 public:
  enum Mark { kSeen = 0, kProcessed = 1, kFolded = 2 };

  GranuleMarks();
  ~GranuleMarks();
  GranuleMarks(const GranuleMarks&) = delete;
  GranuleMarks& operator=(const GranuleMarks&) = delete;

  // Sets the mark; returns whether it was already set.
  bool TestAndSet(uint64_t address, Mark mark) {
    uint64_t* word = Word(address, mark);
    const uint64_t bit = uint64_t{1} << ((address >> kGranuleShift) & 63);
    const bool was = (*word & bit) != 0;
    *word |= bit;
    return was;
  }

  bool Test(uint64_t address, Mark mark) {
    const uint64_t bit = uint64_t{1} << ((address >> kGranuleShift) & 63);
    return (*Word(address, mark) & bit) != 0;
  }

  size_t memory_bytes() const {
    return chunks_.size() * sizeof(Chunk) + table_.size() * sizeof(Slot);
  }

 private:
  static constexpr int kGranuleShift = 4;  // 16-byte granules.
  static constexpr int kChunkShift = 20;   // 1 MiB of address space per chunk.
  static constexpr size_t kWords = (size_t{1} << (kChunkShift - kGranuleShift)) / 64;
  static constexpr size_t kMarks = 3;
  static constexpr size_t kCacheSize = 64;

  struct Chunk {
    uint64_t words[kMarks][kWords];
  };
  struct Slot {
    uint64_t key = 0;  // Chunk number + 1; 0 = empty.
    Chunk* chunk = nullptr;
  };

  uint64_t* Word(uint64_t address, Mark mark) {
    const uint64_t number = address >> kChunkShift;
    Slot& cached = cache_[number & (kCacheSize - 1)];
    Chunk* chunk = cached.key == number + 1 ? cached.chunk : Lookup(number);
    const size_t word = (address >> (kGranuleShift + 6)) & (kWords - 1);
    return &chunk->words[mark][word];
  }

  Chunk* Lookup(uint64_t number);

  std::vector<std::unique_ptr<Chunk>> chunks_;
  std::vector<Slot> table_;
  Slot cache_[kCacheSize] = {};
};

// A zeroed array of uint64_t in its own mapping, backed by transparent huge pages where the
// kernel allows: AddressIndex probes it at random, and with 4 KiB pages nearly every probe
// would also miss the TLB. Pages never touched cost nothing.
class SlotArray {
 public:
  SlotArray() = default;
  explicit SlotArray(size_t count);
  SlotArray(SlotArray&& other) noexcept { *this = std::move(other); }
  SlotArray& operator=(SlotArray&& other) noexcept;
  ~SlotArray();

  size_t size() const { return count_; }
  uint64_t& operator[](size_t i) { return data_[i]; }
  const uint64_t& operator[](size_t i) const { return data_[i]; }

 private:
  uint64_t* data_ = nullptr;
  size_t count_ = 0;
  size_t bytes_ = 0;
};

// Address -> index of that address in `addresses`, for a fixed set of distinct addresses.
// Each 8-byte slot holds index + 1 and a fingerprint of the address, so a probe touches
// `addresses` only on a likely match. The multiplicative hash mixes the address bits, so
// aligned addresses do not cluster.
class AddressIndex {
 public:
  // REQUIRES: `addresses` distinct, fewer than 2^32, and outliving this index.
  explicit AddressIndex(const std::vector<uint64_t>& addresses);

  // The index of `address`, or -1 if it is not one of the addresses.
  int64_t Find(uint64_t address) const;

  void Prefetch(uint64_t address) const { __builtin_prefetch(&slots_[Home(Hash(address))]); }

 private:
  static uint64_t Hash(uint64_t address) { return (address >> 3) * 0x9E3779B97F4A7C15ull; }
  // Maps the hash onto [0, size) without a power-of-two size, so the table can be sized at
  // 1.5 slots per address (8 B each) rather than 2 to 4.
  size_t Home(uint64_t h) const {
    return static_cast<size_t>((static_cast<unsigned __int128>(h) * slots_.size()) >> 64);
  }

  const std::vector<uint64_t>& addresses_;
  SlotArray slots_;
};

}  // namespace tidemark::agent
