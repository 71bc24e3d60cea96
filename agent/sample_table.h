// The allocation sampler's memory: the live sampled allocations by address (SampleTable) and
// the stacks they were allocated from, each kept once (StackTable). No Python here: a frame is
// an opaque code pointer and an instruction offset.
//
// SampleTable is on the path of every free() of the hooked allocator domains, so a lookup of
// an address that was never sampled must cost next to nothing: it reads one byte of a 4 KiB
// counting filter (how many live samples hash to each of 2^12 buckets; it stays in L1) and
// only past it probes the table: open addressing with linear probing, at most half full,
// deletion by backward shift (no tombstones). The counts go down as samples go: a bit filter
// that kept the bits of freed samples would send every later free of the same address (the
// allocator hands freed blocks out again at once) to the table. Its
// array is allocated with calloc, never through the allocator it watches. Both tables are bounded;
// an allocation or stack past the bound is counted, not kept.
//
// Thread-safety: none. The sampler calls them with the GIL held (the hooked domains require
// it), and so do snapshots.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

namespace tidemark::agent {

struct StackFrame {
  const void* code = nullptr;  // The code object (a strong reference, held by the sampler).
  int32_t lasti = -1;          // Byte offset of the instruction being run.
  bool operator==(const StackFrame&) const = default;
};

class StackTable {
 public:
  // The id of a sample whose stack could not be kept (the table is full).
  static constexpr uint32_t kNoStack = UINT32_MAX;

  explicit StackTable(size_t max_stacks) : max_stacks_(max_stacks) {}

  // The id of this stack (innermost frame first), counting one more sample that uses it;
  // `*added` says whether the stack is new (its caller then holds its code objects). kNoStack
  // when the table is full or memory ran out.
  uint32_t Intern(std::span<const StackFrame> frames, bool* added);
  // One sample fewer uses `id`. REQUIRES: id was interned and is still in use.
  void Release(uint32_t id);
  std::span<const StackFrame> Frames(uint32_t id) const { return stacks_[id].frames; }

  // Forgets every stack no sample uses, calling `dropped` for each of its frames (so the
  // caller releases the code objects: do that after this returns, as it may free memory).
  void Sweep(const std::function<void(const StackFrame&)>& dropped);

  size_t size() const { return index_.size(); }
  uint64_t full_count() const { return full_; }

 private:
  struct Hash {
    size_t operator()(const std::vector<StackFrame>& frames) const;
  };
  struct Stack {
    std::vector<StackFrame> frames;
    uint32_t uses = 0;
  };
  size_t max_stacks_;
  std::vector<Stack> stacks_;       // By id; a free id has no frames and no uses.
  std::vector<uint32_t> free_ids_;  // Ids to reuse.
  std::unordered_map<std::vector<StackFrame>, uint32_t, Hash> index_;
  uint64_t full_ = 0;
};

class SampleTable {
 public:
  struct Sample {
    uint64_t address = 0;  // 0: an empty slot.
    uint64_t size = 0;     // Bytes asked of the allocator.
    uint32_t stack = 0;
  };

  explicit SampleTable(size_t max_samples);
  ~SampleTable();
  SampleTable(const SampleTable&) = delete;
  SampleTable& operator=(const SampleTable&) = delete;

  // Adds a sample; false (counted in full_count) when the table holds max_samples already or
  // cannot grow. REQUIRES: address != 0 and not in the table.
  bool Insert(uint64_t address, uint64_t size, uint32_t stack);

  // False when `address` is surely not in the table: the common case, one filter bit.
  bool MayContain(uint64_t address) const { return filter_[Bucket(address)] != 0; }

  // Removes the sample at `address`, if any, into *removed.
  bool Erase(uint64_t address, Sample* removed);

  template <typename F>
  void ForEach(F&& f) const {
    for (size_t i = 0; i < capacity_; ++i)
      if (slots_[i].address != 0) f(slots_[i]);
  }

  // Empties the table, calling `removed` for each sample.
  void Clear(const std::function<void(const Sample&)>& removed);

  size_t size() const { return count_; }
  uint64_t full_count() const { return full_; }
  // Bytes the table's array takes.
  size_t memory_bytes() const { return capacity_ * sizeof(Sample); }

 private:
  size_t Home(uint64_t address) const {
    return static_cast<size_t>(((address >> 4) * 0x9E3779B97F4A7C15ull) >> shift_) & mask_;
  }
  // Blocks are 16-byte aligned; live samples are few and spread over the heap, so the low
  // bits spread them well enough, at the cost of a shift and a mask.
  static size_t Bucket(uint64_t address) {
    return static_cast<size_t>(address >> 4) & ((size_t{1} << kFilterShift) - 1);
  }
  void RemoveAt(size_t i);
  bool Grow();

  static constexpr int kFilterShift = 12;
  // Live samples per bucket; a count that reached 255 stays there (a bucket always probed).
  uint8_t filter_[size_t{1} << kFilterShift] = {};

  size_t max_samples_;
  Sample* slots_ = nullptr;
  size_t capacity_ = 0;  // A power of two; 0 until the first insert.
  size_t mask_ = 0;
  int shift_ = 64;
  size_t count_ = 0;
  uint64_t full_ = 0;
};

}  // namespace tidemark::agent
