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

}  // namespace

uint32_t TypeNames::Intern(std::string_view name) {
  if (auto it = ids_.find(name); it != ids_.end()) return it->second;
  const uint32_t id = static_cast<uint32_t>(names_.size());
  names_.emplace_back(name);
  ids_.emplace(std::string(name), id);
  return id;
}

size_t TypeNames::memory_bytes() const {
  size_t total = names_.capacity() * sizeof(std::string) + ids_.bucket_count() * sizeof(void*);
  for (const std::string& n : names_) {
    // The name twice (vector and map key) when past the small-string buffer, plus a map node.
    const size_t heap = n.size() > 15 ? n.capacity() + 1 : 0;
    total += 2 * heap + sizeof(std::string) + sizeof(uint32_t) + 2 * sizeof(void*);
  }
  return total;
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

RollingState::RollingState(int64_t span_ns, size_t max_types_per_agent)
    : span_ns_(span_ns),
      bucket_ns_(std::max<int64_t>(1, span_ns / kBucketsPerSpan)),
      max_types_per_agent_(max_types_per_agent) {}

void RollingState::Advance(Agent& a, int64_t bucket) {
  const int64_t from = std::max(a.head_ + 1, bucket - kB + 1);
  for (int64_t k = from; k <= bucket; ++k) {
    const size_t pos = Position(k);
    a.n_[pos] = 0;
    a.t_[pos] = a.rss_[pos] = a.heap_[pos] = 0;
    for (size_t slot = 0; slot < a.slot_type_.size(); ++slot) {
      float* m = a.Means(slot);
      m[pos] = m[kB + pos] = 0;
    }
  }
  a.head_ = bucket;
  Compact(a);
}

// Series that are zero in every bucket and now hold nothing: the type is gone from the agent.
void RollingState::Compact(Agent& a) {
  size_t kept = 0;
  const size_t slots = a.slot_type_.size();
  for (size_t slot = 0; slot < slots; ++slot) {
    const float* m = a.Means(slot);
    const bool empty = a.latest_[2 * slot] == 0 && a.latest_[2 * slot + 1] == 0 &&
                       std::all_of(m, m + 2 * kB, [](float v) { return v == 0; });
    if (empty) continue;
    if (kept != slot) {
      a.slot_type_[kept] = a.slot_type_[slot];
      a.latest_[2 * kept] = a.latest_[2 * slot];
      a.latest_[2 * kept + 1] = a.latest_[2 * slot + 1];
      std::copy(m, m + 2 * kB, a.Means(kept));
    }
    ++kept;
  }
  if (kept != slots) {
    a.slot_type_.resize(kept);
    a.latest_.resize(2 * kept);
    a.means_.resize(2 * kB * kept);
    a.Rehash();
  }
  // Growth by doubling may leave up to half of the means unused: give it back.
  if (a.means_.capacity() > a.means_.size() + a.means_.size() / 4 + 2 * kB) {
    a.means_.shrink_to_fit();
    a.latest_.shrink_to_fit();
    a.slot_type_.shrink_to_fit();
  }
}

bool RollingState::Fold(const std::string& agent_key, const snapshot::Header& header,
                        std::span<const snapshot::TypeStat> types, int64_t received_ns) {
  auto [it, inserted] = agents_.try_emplace(agent_key);
  if (inserted) {
    it->second = std::make_unique<Agent>();
    it->second->key = agent_key;
    it->second->identity = header.identity;
    it->second->first_ns = header.timestamp_ns;
  }
  Agent& a = *it->second;
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

  if (a.slot_type_.empty()) {
    const size_t expected = std::min(types.size(), max_types_per_agent_);
    a.slot_type_.reserve(expected);
    a.latest_.reserve(2 * expected);
    a.means_.reserve(2 * kB * expected);
  }
  seen_.assign(a.slot_type_.size(), 0);
  for (const snapshot::TypeStat& stat : types) {
    const uint32_t id = names_.Intern(stat.name);
    int64_t slot = a.SlotOf(id);
    if (slot < 0) {
      if (a.slot_type_.size() >= max_types_per_agent_) {
        ++untracked_;
        continue;
      }
      slot = static_cast<int64_t>(a.slot_type_.size());
      a.slot_type_.push_back(id);
      a.latest_.resize(a.latest_.size() + 2, 0.0f);
      a.means_.resize(a.means_.size() + 2 * kB, 0.0f);
      seen_.push_back(0);
      if (a.table_.size() < 2 * a.slot_type_.size() + 1) {
        a.Rehash();
      } else {
        const size_t mask = a.table_.size() - 1;
        size_t i = HashOf(id) & mask;
        while (a.table_[i] != 0) i = (i + 1) & mask;
        a.table_[i] = static_cast<uint32_t>(slot + 1);
      }
    }
    const size_t s = static_cast<size_t>(slot);
    float* m = a.Means(s);
    const float count = static_cast<float>(stat.count), bytes = static_cast<float>(stat.bytes);
    // A type listed twice (it should not be) adds up, as the summary's totals do.
    if (seen_[s]) {
      m[pos] += count * finv;
      m[kB + pos] += bytes * finv;
      if (newest) {
        a.latest_[2 * s] += count;
        a.latest_[2 * s + 1] += bytes;
      }
      continue;
    }
    seen_[s] = 1;
    m[pos] += (count - m[pos]) * finv;
    m[kB + pos] += (bytes - m[kB + pos]) * finv;
    if (newest) {
      a.latest_[2 * s] = count;
      a.latest_[2 * s + 1] = bytes;
    }
  }
  for (size_t s = 0; s < a.slot_type_.size(); ++s) {
    if (seen_[s]) continue;
    float* m = a.Means(s);
    m[pos] -= m[pos] * finv;
    m[kB + pos] -= m[kB + pos] * finv;
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
  }
  a.first_ns = std::min(a.first_ns, t);
  a.last_received_ns = std::max(a.last_received_ns, received_ns);
  ++a.summaries;
  return true;
}

void RollingState::Forget(const std::string& agent_key) { agents_.erase(agent_key); }

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
  const float* m = a.Means(slot);
  AgentSeries(
      a,
      [m](size_t pos) {
        return Sample{0, m[pos], m[kB + pos]};
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
  const float* m = a.Means(slot) + kB;
  const int64_t reach = std::min<int64_t>(kB - 1, window_ns / bucket_ns_ + 1);
  const float newest = m[Position(a.head_)];
  float low = newest;
  for (int64_t k = a.head_ - reach; k < a.head_; ++k) {
    const size_t pos = Position(k);
    if (a.n_[pos] != 0) low = std::min(low, m[pos]);
  }
  return newest - low;
}

size_t RollingState::series() const {
  size_t n = 0;
  for (const auto& [key, a] : agents_) n += a->slot_type_.size();
  return n;
}

size_t RollingState::memory_bytes() const {
  size_t total = names_.memory_bytes() + agents_.bucket_count() * sizeof(void*) + seen_.capacity();
  for (const auto& [key, a] : agents_) {
    total += sizeof(Agent) + 2 * sizeof(void*) + sizeof(key) + 2 * (key.capacity() + 1);
    total += a->slot_type_.capacity() * sizeof(uint32_t) + a->latest_.capacity() * sizeof(float) +
             a->means_.capacity() * sizeof(float) + a->table_.capacity() * sizeof(uint32_t);
    for (const auto& [k, v] : a->identity.labels) total += k.capacity() + v.capacity() + 64;
  }
  return total;
}

}  // namespace tidemark::diff
