#include "agent/sample_table.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <new>

namespace tidemark::agent {

size_t StackTable::Hash::operator()(const std::vector<StackFrame>& frames) const {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const StackFrame& f : frames) {
    h = (h ^ reinterpret_cast<uintptr_t>(f.code)) * 0x100000001b3ull;
    h = (h ^ static_cast<uint32_t>(f.lasti)) * 0x100000001b3ull;
  }
  return static_cast<size_t>(h);
}

uint32_t StackTable::Intern(std::span<const StackFrame> frames, bool* added) {
  *added = false;
  try {
    std::vector<StackFrame> key(frames.begin(), frames.end());
    auto found = index_.find(key);
    if (found != index_.end()) {
      ++stacks_[found->second].uses;
      return found->second;
    }
    if (index_.size() >= max_stacks_) {
      ++full_;
      return kNoStack;
    }
    uint32_t id;
    if (!free_ids_.empty()) {
      id = free_ids_.back();
      free_ids_.pop_back();
    } else {
      id = static_cast<uint32_t>(stacks_.size());
      stacks_.emplace_back();
      free_ids_.reserve(stacks_.size());  // So that Sweep never allocates.
    }
    stacks_[id].frames = key;
    stacks_[id].uses = 1;
    index_.emplace(std::move(key), id);
    *added = true;
    return id;
  } catch (const std::bad_alloc&) {
    ++full_;
    return kNoStack;
  }
}

void StackTable::Release(uint32_t id) { --stacks_[id].uses; }

void StackTable::Sweep(const std::function<void(const StackFrame&)>& dropped) {
  for (auto it = index_.begin(); it != index_.end();) {
    Stack& stack = stacks_[it->second];
    if (stack.uses != 0) {
      ++it;
      continue;
    }
    for (const StackFrame& f : stack.frames) dropped(f);
    stack.frames = {};
    free_ids_.push_back(it->second);  // Reserved when the id was made: never throws here.
    it = index_.erase(it);
  }
}

SampleTable::SampleTable(size_t max_samples) : max_samples_(max_samples) {}

SampleTable::~SampleTable() { std::free(slots_); }

bool SampleTable::Insert(uint64_t address, uint64_t size, uint32_t stack) {
  if (count_ >= max_samples_ || ((count_ + 1) * 2 > capacity_ && !Grow())) {
    ++full_;
    return false;
  }
  size_t i = Home(address);
  while (slots_[i].address != 0) i = (i + 1) & mask_;
  slots_[i] = {address, size, stack};
  ++count_;
  uint8_t& bucket = filter_[Bucket(address)];
  if (bucket != UINT8_MAX) ++bucket;
  return true;
}

bool SampleTable::Erase(uint64_t address, Sample* removed) {
  if (!MayContain(address)) return false;
  for (size_t i = Home(address); slots_[i].address != 0; i = (i + 1) & mask_) {
    if (slots_[i].address == address) {
      *removed = slots_[i];
      RemoveAt(i);
      uint8_t& bucket = filter_[Bucket(address)];
      if (bucket != UINT8_MAX) --bucket;
      return true;
    }
  }
  return false;
}

bool SampleTable::Grow() {
  const size_t capacity = capacity_ == 0 ? 1024 : capacity_ * 2;
  auto* slots = static_cast<Sample*>(std::calloc(capacity, sizeof(Sample)));
  if (slots == nullptr) return false;
  Sample* old = slots_;
  const size_t old_capacity = capacity_;
  slots_ = slots;
  capacity_ = capacity;
  mask_ = capacity - 1;
  shift_ = 64 - __builtin_ctzll(capacity);
  for (size_t k = 0; k < old_capacity; ++k) {
    if (old[k].address == 0) continue;
    size_t i = Home(old[k].address);
    while (slots_[i].address != 0) i = (i + 1) & mask_;
    slots_[i] = old[k];
  }
  std::free(old);
  return true;
}

void SampleTable::RemoveAt(size_t i) {
  // Backward shift: later entries of the probe run move up so that no lookup stops early.
  size_t hole = i;
  for (size_t j = (i + 1) & mask_; slots_[j].address != 0; j = (j + 1) & mask_) {
    const size_t home = Home(slots_[j].address);
    // Movable when its home is not in (hole, j], cyclically.
    const bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = {};
  --count_;
}

void SampleTable::Clear(const std::function<void(const Sample&)>& removed) {
  for (size_t i = 0; i < capacity_; ++i) {
    if (slots_[i].address == 0) continue;
    removed(slots_[i]);
    slots_[i] = {};
  }
  count_ = 0;
  std::fill(std::begin(filter_), std::end(filter_), 0);
}

}  // namespace tidemark::agent
