// The rolling state: for every agent and every type, the recent history of count and bytes,
// updated as each summary arrives, in memory bounded per series whatever the history length.
//
// Each agent has a ring of kBuckets time buckets of width span / kBucketsPerSpan (the ring
// reaches a little past the span, so a window of `span` is always whole). A bucket holds, for
// every type, the mean count and bytes of the agent's summaries that fell into it (a type
// missing from a summary counts as zero there), and the mean time of those summaries. So:
//   - a window's start is aligned to a bucket: a window of W covers between W and W plus one
//     bucket width; figures over it are those of the bucket means;
//   - values are float: exact below 2^24, else within 6e-8 relative, which is far below any
//     growth worth an alert;
//   - a summary older than the ring is ignored (counted in late()).
// Per series that is kBuckets x 8 bytes of means plus the latest sample and an index slot;
// bench/diff measures it. Type names are interned once for all agents.
//
// Agents are keyed by store::IdentityKey; a restarted process is a new agent. An agent is
// dropped with Forget() (the detector says when), or evicted when the state is at its memory
// bound: a new agent takes the place of the least recently heard one only if that one has gone
// quiet (not heard for 3 of its intervals, or a quarter of the span if it sent once); else the new
// agent is not followed (its summaries counted in refused()). So a collector given more agents
// than fit follows as many as fit, steadily, rather than forgetting each one before its next
// summary (least-recently-heard eviction under a fleet's round-robin arrivals forgets them all).
//
// Thread-safety: none; the collector guards it with a mutex.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "diff/growth.h"
#include "snapshot/snapshot.h"

namespace tidemark::diff {

// Type names, interned: one string per name whatever the number of agents. A name is counted
// once per agent series that uses it and freed with the last one (its id is reused), so the
// table holds only the names of tracked series.
class TypeNames {
 public:
  // The id of `name`, interned if new, with one more user.
  uint32_t Acquire(std::string_view name);
  // One user less; the last one frees the name. REQUIRES: an id from Acquire, still held.
  void Release(uint32_t id);
  // The id of a name already interned, or -1.
  int64_t Find(std::string_view name) const {
    auto it = ids_.find(name);
    return it == ids_.end() ? int64_t{-1} : int64_t{it->second};
  }
  const std::string& Name(uint32_t id) const { return names_[id]; }
  size_t size() const { return names_.size(); }
  size_t memory_bytes() const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> ids_;
  std::vector<std::string> names_;  // By id; "" for a freed id.
  std::vector<uint32_t> users_;     // By id.
  std::vector<uint32_t> free_;      // Freed ids, reused first.
  size_t names_bytes_ = 0;          // What the live names take, kept as they come and go.
  static size_t NameBytes(const std::string& name);
};

class RollingState {
 public:
  static constexpr int kBuckets = 24;
  static constexpr int kBucketsPerSpan = 20;

  // REQUIRES: span_ns >= kBucketsPerSpan. max_types_per_agent bounds the series of one agent:
  // types first seen once an agent has that many are not tracked (counted in untracked()).
  // max_memory_bytes bounds the whole state (see the top of the file); an agent already followed
  // that outgrows it makes the least recently heard ones forgotten (counted in evicted()),
  // never itself. 0: no bound.
  explicit RollingState(int64_t span_ns, size_t max_types_per_agent = 5000,
                        size_t max_memory_bytes = 0);

  struct Agent {
    std::string key;
    snapshot::Identity identity;
    int64_t first_ns = 0;          // Oldest summary folded (taken time).
    int64_t last_ns = 0;           // Newest summary folded (taken time).
    int64_t last_received_ns = 0;  // When the newest arrived (collector clock).
    double interval_ns = 0;        // Typical gap between summaries (moving average).
    uint64_t summaries = 0;
    uint64_t rss_bytes = 0, heap_bytes = 0, heap_objects = 0;  // Newest summary.
    uint64_t memory_bytes = 0, memory_limit = 0;  // Its memory figures (limit 0: none known).

    size_t type_count() const { return slot_type_.size(); }
    uint32_t type_id(size_t slot) const { return slot_type_[slot]; }
    float count_now(size_t slot) const { return latest_[2 * slot]; }
    float bytes_now(size_t slot) const { return latest_[2 * slot + 1]; }
    // The slot of a type, or -1.
    int64_t SlotOf(uint32_t type_id) const;

   private:
    friend class RollingState;
    int64_t head_ = INT64_MIN;  // Absolute bucket number of the newest bucket.
    uint16_t n_[kBuckets] = {};
    double t_[kBuckets] = {};    // Mean time, ns.
    double rss_[kBuckets] = {};  // Mean RSS and heap bytes: the native-memory series.
    double heap_[kBuckets] = {};
    std::vector<uint32_t> slot_type_;
    std::vector<float> latest_;  // 2 per slot: count, bytes.
    // Bucket-major: row `pos` holds (count, bytes) of every slot, so a fold writes one
    // contiguous row and a new bucket clears one. Rows are `capacity_` slots wide.
    std::vector<float> means_;
    size_t capacity_ = 0;
    std::vector<uint32_t> table_;  // Open addressing: slot + 1, 0 empty.
    // The slot of the i-th type of the previous summary: agents list types in a stable order,
    // so a name compare usually replaces a hash lookup.
    std::vector<uint32_t> order_;
    size_t accounted_ = 0;                 // Its share of memory_bytes().
    std::list<Agent*>::iterator recency_;  // Its place in RollingState::recency_.
    size_t MemoryBytes() const;
    void Rehash();
    void Reserve(size_t slots);
    float* Row(size_t pos) { return means_.data() + pos * 2 * capacity_; }
    const float* Row(size_t pos) const { return means_.data() + pos * 2 * capacity_; }
  };

  // Folds one summary. Returns false if it was ignored: older than the agent's ring, or a new
  // agent with no room (refused()).
  bool Fold(const std::string& agent_key, const snapshot::Header& header,
            std::span<const snapshot::TypeStat> types, int64_t received_ns);
  void Forget(const std::string& agent_key);

  const Agent* Find(const std::string& agent_key) const;
  const std::unordered_map<std::string, std::unique_ptr<Agent>>& agents() const { return agents_; }
  const TypeNames& names() const { return names_; }
  TypeNames& names() { return names_; }

  // A series as samples, oldest bucket first (buckets with no summary skipped).
  void Samples(const Agent& agent, size_t slot, std::vector<Sample>& out) const;
  // RSS minus Python heap bytes (in `bytes`), and the heap bytes alone.
  void NativeSamples(const Agent& agent, std::vector<Sample>& out) const;
  void HeapSamples(const Agent& agent, std::vector<Sample>& out) const;

  // Cheap upper bound on a series' growth over the last `window_ns`: newest bucket mean minus
  // the smallest mean before it. The detector skips series below its thresholds with it.
  float GrowthBound(const Agent& agent, size_t slot, int64_t window_ns) const;

  int64_t span_ns() const { return span_ns_; }
  int64_t bucket_ns() const { return bucket_ns_; }
  uint64_t late() const { return late_; }
  uint64_t untracked() const { return untracked_; }
  uint64_t evicted() const { return evicted_; }
  uint64_t refused() const { return refused_; }
  size_t series() const;
  // What the state holds, as accounted after each fold (agents, their series, type names).
  size_t memory_bytes() const;
  size_t max_memory_bytes() const { return max_memory_bytes_; }

 private:
  void Advance(Agent& agent, int64_t bucket);
  void Compact(Agent& agent);
  void Account(Agent& agent);
  void EvictOver(const Agent& keep);
  // Forgets quiet agents, least recently heard first, until `bytes` more fit. False if they
  // do not.
  bool MakeRoom(size_t bytes, int64_t received_ns);
  template <typename Value>
  void AgentSeries(const Agent& agent, Value value, std::vector<Sample>& out) const;

  int64_t span_ns_;
  int64_t bucket_ns_;
  size_t max_types_per_agent_;
  size_t max_memory_bytes_;
  TypeNames names_;
  std::unordered_map<std::string, std::unique_ptr<Agent>> agents_;
  std::list<Agent*> recency_;  // Least recently folded first.
  size_t agents_bytes_ = 0;    // Sum of the agents' accounted_.
  std::vector<uint8_t> seen_;  // Scratch for Fold: slots present in the summary.
  uint64_t late_ = 0;
  uint64_t untracked_ = 0;
  uint64_t evicted_ = 0;
  uint64_t refused_ = 0;
};

}  // namespace tidemark::diff
