#include "diff/rolling.h"

#include <algorithm>
#include <bit>

namespace tidemark::diff {
namespace {

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

size_t Position(int64_t bucket) {
  const int64_t k = RollingState::kBuckets;
  return static_cast<size_t>(((bucket % k) + k) % k);
}

uint32_t HashOf(uint32_t id) { return id * 0x9E3779B1u; }

constexpr int kB = RollingState::kBuckets;
// What a series costs an agent (bench/diff measures it: 219 B with the index's slack).
constexpr size_t kBytesPerSeries =
    2 * kB * sizeof(float) + 2 * sizeof(float) + 4 * sizeof(uint32_t);

}  // namespace

uint32_t TypeNames::Acquire(std::string_view name) {
  if (auto it = ids_.find(name); it != ids_.end()) {
    ++users_[it->second];
    return it->second;
  }
  uint32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
    names_[id] = std::string(name);
    users_[id] = 1;
  } else {
    id = static_cast<uint32_t>(names_.size());
    names_.emplace_back(name);
    users_.push_back(1);
  }
  ids_.emplace(std::string(name), id);
  names_bytes_ += NameBytes(names_[id]);
  return id;
}

void TypeNames::Release(uint32_t id) {
  if (--users_[id] > 0) return;
  names_bytes_ -= NameBytes(names_[id]);
  ids_.erase(names_[id]);
  std::string().swap(names_[id]);
  free_.push_back(id);
}

size_t TypeNames::NameBytes(const std::string& name) {
  // The name twice (vector and map key) when past the small-string buffer, plus a map node.
  const size_t heap = name.size() > 15 ? name.capacity() + 1 : 0;
  return 2 * heap + sizeof(std::string) + sizeof(uint32_t) + 2 * sizeof(void*);
}

size_t TypeNames::memory_bytes() const {
  return names_.capacity() * sizeof(std::string) + ids_.bucket_count() * sizeof(void*) +
         (users_.capacity() + free_.capacity()) * sizeof(uint32_t) + names_bytes_;
}

int64_t RollingState::Agent::SlotOf(uint32_t type_id) const {
  if (table_.empty()) return -1;
  const size_t mask = table_.size() - 1;
  for (size_t i = HashOf(type_id) & mask;; i = (i + 1) & mask) {
    const uint32_t entry = table_[i];
    if (entry == 0) return -1;
    if (slot_type_[entry - 1] == type_id) return entry - 1;
  }
}

void RollingState::Agent::Rehash() {
  const size_t size = std::max<size_t>(16, std::bit_ceil(slot_type_.size() * 2 + 1));
  table_.assign(size, 0);
  const size_t mask = size - 1;
  for (size_t slot = 0; slot < slot_type_.size(); ++slot) {
    size_t i = HashOf(slot_type_[slot]) & mask;
    while (table_[i] != 0) i = (i + 1) & mask;
    table_[i] = static_cast<uint32_t>(slot + 1);
  }
}

RollingState::RollingState(int64_t span_ns, size_t max_types_per_agent, size_t max_memory_bytes)
    : span_ns_(span_ns),
      bucket_ns_(std::max<int64_t>(1, span_ns / kBucketsPerSpan)),
      max_types_per_agent_(max_types_per_agent),
      max_memory_bytes_(max_memory_bytes) {}

void RollingState::Agent::Reserve(size_t slots) {
  if (slots <= capacity_) return;
  std::vector<float> wider(2 * kB * slots, 0.0f);
  for (size_t pos = 0; pos < static_cast<size_t>(kB); ++pos) {
    std::copy(Row(pos), Row(pos) + 2 * slot_type_.size(), wider.data() + pos * 2 * slots);
  }
  means_ = std::move(wider);
  capacity_ = slots;
}

void RollingState::Advance(Agent& a, int64_t bucket) {
  const int64_t from = std::max(a.head_ + 1, bucket - kB + 1);
  for (int64_t k = from; k <= bucket; ++k) {
    const size_t pos = Position(k);
    a.n_[pos] = 0;
    a.t_[pos] = a.rss_[pos] = a.heap_[pos] = 0;
    std::fill(a.Row(pos), a.Row(pos) + 2 * a.capacity_, 0.0f);
  }
  a.head_ = bucket;
  Compact(a);
}

// Series that are zero in every bucket and now hold nothing: the type is gone from the agent.
void RollingState::Compact(Agent& a) {
  const size_t slots = a.slot_type_.size();
  std::vector<uint32_t> keep;
  keep.reserve(slots);
  for (size_t slot = 0; slot < slots; ++slot) {
    bool empty = a.latest_[2 * slot] == 0 && a.latest_[2 * slot + 1] == 0;
    for (size_t pos = 0; empty && pos < static_cast<size_t>(kB); ++pos) {
      empty = a.Row(pos)[2 * slot] == 0 && a.Row(pos)[2 * slot + 1] == 0;
    }
    if (!empty) keep.push_back(static_cast<uint32_t>(slot));
  }
  if (keep.size() == slots) return;
  for (size_t slot = 0, k = 0; slot < slots; ++slot) {
    if (k < keep.size() && keep[k] == slot) {
      ++k;
    } else {
      names_.Release(a.slot_type_[slot]);
    }
  }
  for (size_t pos = 0; pos < static_cast<size_t>(kB); ++pos) {
    float* row = a.Row(pos);
    for (size_t i = 0; i < keep.size(); ++i) {
      row[2 * i] = row[2 * keep[i]];
      row[2 * i + 1] = row[2 * keep[i] + 1];
    }
    std::fill(row + 2 * keep.size(), row + 2 * slots, 0.0f);
  }
  for (size_t i = 0; i < keep.size(); ++i) {
    a.slot_type_[i] = a.slot_type_[keep[i]];
    a.latest_[2 * i] = a.latest_[2 * keep[i]];
    a.latest_[2 * i + 1] = a.latest_[2 * keep[i] + 1];
  }
  a.slot_type_.resize(keep.size());
  a.latest_.resize(2 * keep.size());
  a.order_.clear();
  a.Rehash();
}

bool RollingState::Fold(const std::string& agent_key, const snapshot::Header& header,
                        std::span<const snapshot::TypeStat> types, int64_t received_ns) {
  if (max_memory_bytes_ != 0 && !agents_.contains(agent_key) &&
      !MakeRoom(sizeof(Agent) + agent_key.size() + types.size() * kBytesPerSeries, received_ns)) {
    ++refused_;
    return false;
  }
  auto [it, inserted] = agents_.try_emplace(agent_key);
  if (inserted) {
    it->second = std::make_unique<Agent>();
    it->second->key = agent_key;
    it->second->identity = header.identity;
    it->second->first_ns = header.timestamp_ns;
    it->second->recency_ = recency_.insert(recency_.end(), it->second.get());
  }
  Agent& a = *it->second;
  recency_.splice(recency_.end(), recency_, a.recency_);
  const int64_t t = header.timestamp_ns;
  const int64_t bucket = FloorDiv(t, bucket_ns_);
  if (a.head_ == INT64_MIN) {
    a.head_ = bucket;
  } else if (bucket > a.head_) {
    Advance(a, bucket);
  } else if (a.head_ - bucket >= kB) {
    ++late_;
    return false;
  }
  const bool newest = a.summaries == 0 || t >= a.last_ns;
  const size_t pos = Position(bucket);
  const double inv = 1.0 / ++a.n_[pos];
  a.t_[pos] += (static_cast<double>(t) - a.t_[pos]) * inv;
  a.rss_[pos] += (static_cast<double>(header.rss_bytes) - a.rss_[pos]) * inv;
  a.heap_[pos] += (static_cast<double>(header.bytes) - a.heap_[pos]) * inv;
  const float finv = static_cast<float>(inv);

  // Rows exactly as wide as the first summary; later new types widen them by a quarter.
  a.Reserve(std::min(max_types_per_agent_, std::max(a.slot_type_.size(), types.size())));
  seen_.assign(a.slot_type_.size(), 0);
  a.order_.resize(types.size(), UINT32_MAX);
  for (size_t i = 0; i < types.size(); ++i) {
    const snapshot::TypeStat& stat = types[i];
    int64_t slot = -1;
    const uint32_t cached = a.order_[i];
    if (cached < a.slot_type_.size() && names_.Name(a.slot_type_[cached]) == stat.name) {
      slot = cached;
    } else {
      const int64_t known = names_.Find(stat.name);
      slot = known < 0 ? -1 : a.SlotOf(static_cast<uint32_t>(known));
      if (slot < 0) {
        if (a.slot_type_.size() >= max_types_per_agent_) {
          ++untracked_;
          continue;
        }
        const uint32_t id = names_.Acquire(stat.name);
        slot = static_cast<int64_t>(a.slot_type_.size());
        if (a.slot_type_.size() == a.capacity_) {
          a.Reserve(std::min(max_types_per_agent_, a.capacity_ + a.capacity_ / 4 + 4));
        }
        a.slot_type_.push_back(id);
        a.latest_.resize(a.latest_.size() + 2, 0.0f);
        seen_.push_back(0);
        if (a.table_.size() < 2 * a.slot_type_.size() + 1) {
          a.Rehash();
        } else {
          const size_t mask = a.table_.size() - 1;
          size_t j = HashOf(id) & mask;
          while (a.table_[j] != 0) j = (j + 1) & mask;
          a.table_[j] = static_cast<uint32_t>(slot + 1);
        }
      }
      a.order_[i] = static_cast<uint32_t>(slot);
    }
    const size_t s = static_cast<size_t>(slot);
    float* m = a.Row(pos) + 2 * s;
    const float count = static_cast<float>(stat.count), bytes = static_cast<float>(stat.bytes);
    // A type listed twice (it should not be) adds up, as the summary's totals do.
    if (seen_[s]) {
      m[0] += count * finv;
      m[1] += bytes * finv;
      if (newest) {
        a.latest_[2 * s] += count;
        a.latest_[2 * s + 1] += bytes;
      }
      continue;
    }
    seen_[s] = 1;
    m[0] += (count - m[0]) * finv;
    m[1] += (bytes - m[1]) * finv;
    if (newest) {
      a.latest_[2 * s] = count;
      a.latest_[2 * s + 1] = bytes;
    }
  }
  float* row = a.Row(pos);
  for (size_t s = 0; s < a.slot_type_.size(); ++s) {
    if (seen_[s]) continue;
    row[2 * s] -= row[2 * s] * finv;
    row[2 * s + 1] -= row[2 * s + 1] * finv;
    if (newest) a.latest_[2 * s] = a.latest_[2 * s + 1] = 0;
  }

  if (newest) {
    if (a.summaries > 0 && t > a.last_ns) {
      const double gap = static_cast<double>(t - a.last_ns);
      a.interval_ns = a.interval_ns == 0 ? gap : 0.8 * a.interval_ns + 0.2 * gap;
    }
    a.last_ns = t;
    a.identity.labels = header.identity.labels;
    a.rss_bytes = header.rss_bytes;
    a.heap_bytes = header.bytes;
    a.heap_objects = header.objects;
    a.memory_bytes = header.memory.current;
    a.memory_limit = header.memory.limit;
  }
  a.first_ns = std::min(a.first_ns, t);
  a.last_received_ns = std::max(a.last_received_ns, received_ns);
  ++a.summaries;
  Account(a);
  if (inserted && max_memory_bytes_ != 0 && memory_bytes() > max_memory_bytes_) {
    Forget(agent_key);  // Larger than MakeRoom reckoned: it, not a followed agent, goes.
    ++refused_;
    return false;
  }
  EvictOver(a);
  return true;
}

size_t RollingState::Agent::MemoryBytes() const {
  size_t total = sizeof(Agent) + 4 * sizeof(void*) + 2 * (key.capacity() + 1);
  total += slot_type_.capacity() * sizeof(uint32_t) + latest_.capacity() * sizeof(float) +
           means_.capacity() * sizeof(float) + table_.capacity() * sizeof(uint32_t) +
           order_.capacity() * sizeof(uint32_t);
  for (const auto& [k, v] : identity.labels) total += k.capacity() + v.capacity() + 64;
  return total;
}

void RollingState::Account(Agent& a) {
  const size_t now = a.MemoryBytes();
  agents_bytes_ = agents_bytes_ - a.accounted_ + now;
  a.accounted_ = now;
}

void RollingState::EvictOver(const Agent& keep) {
  if (max_memory_bytes_ == 0) return;
  while (memory_bytes() > max_memory_bytes_ && recency_.front() != &keep) {
    Forget(std::string(recency_.front()->key));
    ++evicted_;
  }
}

bool RollingState::MakeRoom(size_t bytes, int64_t received_ns) {
  while (memory_bytes() + bytes > max_memory_bytes_ && !recency_.empty()) {
    const Agent& oldest = *recency_.front();
    // Heard once, its interval unknown: a quarter of the span (a fleet's first round must not
    // forget its first agents before their second summary).
    const double quiet =
        oldest.interval_ns > 0 ? 3 * oldest.interval_ns : static_cast<double>(span_ns_) / 4;
    if (static_cast<double>(received_ns - oldest.last_received_ns) <= quiet) return false;
    Forget(std::string(oldest.key));
    ++evicted_;
  }
  return memory_bytes() + bytes <= max_memory_bytes_;
}

void RollingState::Forget(const std::string& agent_key) {
  auto it = agents_.find(agent_key);
  if (it == agents_.end()) return;
  Agent& a = *it->second;
  for (uint32_t id : a.slot_type_) names_.Release(id);
  agents_bytes_ -= a.accounted_;
  recency_.erase(a.recency_);
  agents_.erase(it);
}

const RollingState::Agent* RollingState::Find(const std::string& agent_key) const {
  auto it = agents_.find(agent_key);
  return it == agents_.end() ? nullptr : it->second.get();
}

template <typename Value>
void RollingState::AgentSeries(const Agent& a, Value value, std::vector<Sample>& out) const {
  out.clear();
  if (a.head_ == INT64_MIN) return;
  for (int64_t k = a.head_ - kB + 1; k <= a.head_; ++k) {
    const size_t pos = Position(k);
    if (a.n_[pos] == 0) continue;
    Sample s = value(pos);
    s.t_ns = static_cast<int64_t>(a.t_[pos]);
    out.push_back(s);
  }
}

void RollingState::Samples(const Agent& a, size_t slot, std::vector<Sample>& out) const {
  AgentSeries(
      a,
      [&a, slot](size_t pos) {
        const float* m = a.Row(pos) + 2 * slot;
        return Sample{0, m[0], m[1]};
      },
      out);
}

void RollingState::NativeSamples(const Agent& a, std::vector<Sample>& out) const {
  AgentSeries(
      a,
      [&a](size_t pos) {
        return Sample{0, 0, a.rss_[pos] - a.heap_[pos]};
      },
      out);
}

void RollingState::HeapSamples(const Agent& a, std::vector<Sample>& out) const {
  AgentSeries(
      a,
      [&a](size_t pos) {
        return Sample{0, 0, a.heap_[pos]};
      },
      out);
}

float RollingState::GrowthBound(const Agent& a, size_t slot, int64_t window_ns) const {
  const int64_t reach = std::min<int64_t>(kB - 1, window_ns / bucket_ns_ + 1);
  const float newest = a.Row(Position(a.head_))[2 * slot + 1];
  float low = newest;
  for (int64_t k = a.head_ - reach; k < a.head_; ++k) {
    const size_t pos = Position(k);
    if (a.n_[pos] != 0) low = std::min(low, a.Row(pos)[2 * slot + 1]);
  }
  return newest - low;
}

size_t RollingState::series() const {
  size_t n = 0;
  for (const auto& [key, a] : agents_) n += a->slot_type_.size();
  return n;
}

size_t RollingState::memory_bytes() const {
  return names_.memory_bytes() + agents_.bucket_count() * sizeof(void*) + seen_.capacity() +
         agents_bytes_;
}

}  // namespace tidemark::diff
