#include "agent/address_tables.h"

#include <bit>

#include "agent/walker.h"

namespace tidemark::agent {

GranuleMarks::GranuleMarks() : table_(64) {}
GranuleMarks::~GranuleMarks() = default;

size_t GranuleMarks::Home(uint64_t key) const {
  return (key * 0x9E3779B97F4A7C15ull) >> (64 - std::countr_zero(table_.size()));
}

GranuleMarks::Chunk* GranuleMarks::Find(uint64_t number) const {
  const uint64_t key = number + 1;
  for (size_t slot = Home(key);; slot = (slot + 1) & (table_.size() - 1)) {
    if (table_[slot].key == key) return table_[slot].chunk;
    if (table_[slot].key == 0) return nullptr;
  }
}

GranuleMarks::Chunk* GranuleMarks::Lookup(uint64_t number) {
  Chunk* chunk = Find(number);
  if (chunk == nullptr) {
    if ((chunks_.size() + 1) * 2 > table_.size()) {
      std::vector<Slot> old(table_.size() * 2);
      old.swap(table_);
      for (const Slot& s : old) {
        if (s.key == 0) continue;
        size_t at = Home(s.key);
        while (table_[at].key != 0) at = (at + 1) & (table_.size() - 1);
        table_[at] = s;
      }
    }
    chunks_.push_back(std::make_unique<Chunk>());  // Value-initialized: all marks clear.
    chunk = chunks_.back().get();
    size_t at = Home(number + 1);
    while (table_[at].key != 0) at = (at + 1) & (table_.size() - 1);
    table_[at] = {number + 1, chunk};
  }
  cache_[number & (kCacheSize - 1)] = {number + 1, chunk};
  return chunk;
}

void GranuleMarks::NumberSeen() {
  uint64_t next = 0;
  for (const auto& chunk : chunks_) {
    chunk->first_number = next;
    uint32_t in_chunk = 0;
    for (size_t w = 0; w < kWords; ++w) {
      chunk->seen_before[w] = in_chunk;
      in_chunk += static_cast<uint32_t>(std::popcount(chunk->words[kSeen][w]));
    }
    next += in_chunk;
  }
  seen_count_ = next;
}

bool GranuleMarks::TestAny(uint64_t address, Mark mark) const {
  const Chunk* chunk = Find(address >> kChunkShift);
  return chunk != nullptr && (chunk->words[mark][WordIndex(address)] & Bit(address)) != 0;
}

int64_t GranuleMarks::Rank(uint64_t address) const {
  const Chunk* chunk = Find(address >> kChunkShift);
  if (chunk == nullptr) return -1;
  const size_t w = WordIndex(address);
  const uint64_t word = chunk->words[kSeen][w];
  const uint64_t bit = Bit(address);
  if (!(word & bit)) return -1;
  return static_cast<int64_t>(chunk->first_number + chunk->seen_before[w] +
                              std::popcount(word & (bit - 1)));
}

// Declared with the walk it completes (walker.h); it lives here, away from Python.
void ResolveReferences(UnresolvedReferences&& unresolved, snapshot::Graph* graph) {
  const size_t objects = graph->address.size();
  GranuleMarks& marks = *unresolved.marks;
  marks.NumberSeen();
  constexpr uint32_t kNone = UINT32_MAX;
  std::vector<uint32_t> index_of_number(marks.seen_count(), kNone);
  for (size_t i = 0; i < objects; ++i) {
    index_of_number[marks.Rank(graph->address[i])] = static_cast<uint32_t>(i);
  }
  auto index_of = [&](uint64_t address) -> uint32_t {
    const int64_t number = marks.Rank(address);
    return number < 0 ? kNone : index_of_number[number];
  };

  std::vector<uint32_t>& refs = graph->refs;
  size_t next_seen = 0;
  bool dropped = false;
  for (uint32_t& r : refs) {
    if (r == kSeenBefore) r = index_of(unresolved.seen_ref_addresses[next_seen++]);
    // Objects met but never processed (an abandoned walk) have no index.
    if (r == kNone || r >= objects) {
      r = kNone;
      dropped = true;
    }
  }
  if (dropped) {
    size_t written = 0;
    for (size_t i = 0; i < objects; ++i) {
      const uint64_t begin = graph->ref_begin[i], end = graph->ref_begin[i + 1];
      graph->ref_begin[i] = written;
      for (uint64_t k = begin; k < end; ++k) {
        if (refs[k] != kNone) refs[written++] = refs[k];
      }
    }
    graph->ref_begin[objects] = written;
    refs.resize(written);
  }
  graph->roots.clear();
  for (const auto& [address, kind] : unresolved.roots) {
    const uint32_t target = index_of(address);
    if (target != kNone && target < objects) graph->roots.emplace_back(target, kind);
  }
  graph->ownership_recorded = true;
  // Pairs the walk numbered itself may name objects an abandoned walk cut off.
  std::erase_if(graph->owners,
                [&](const auto& p) { return p.first >= objects || p.second >= objects; });
  for (const auto& [address, owner] : unresolved.owners) {
    const uint32_t dict = index_of(address);
    if (dict != kNone && dict < objects && owner < objects) graph->owners.emplace_back(dict, owner);
  }
  graph->attributes.clear();
  for (const PendingAttribute& a : unresolved.attributes) {
    const uint32_t target = index_of(a.target);
    if (target != kNone && target < objects && a.owner < objects)
      graph->attributes.push_back({a.owner, target, a.name});
  }
  graph->attribute_keys.clear();
  for (const auto& [address, name] : unresolved.attribute_keys) {
    const uint32_t key = index_of(address);
    if (key != kNone && key < objects) graph->attribute_keys.emplace_back(key, name);
  }
  graph->object_sites.clear();
  for (const auto& [address, stack] : unresolved.object_sites) {
    const uint32_t object = index_of(address);
    if (object != kNone && object < objects) graph->object_sites.emplace_back(object, stack);
  }
  unresolved = UnresolvedReferences();
}

}  // namespace tidemark::agent
