#include "collector/series_rollup.h"

#include <spdlog/spdlog.h>
#include <algorithm>
#include <chrono>
#include <numeric>
#include <set>

#include "store/log_format.h"

namespace tidemark::collector {
namespace {

constexpr uint32_t kBlockSamples = 60;
constexpr int64_t kMinuteNs = int64_t{60} * 1'000'000'000;
constexpr int64_t kMinLookbackNs = 2 * kMinuteNs;
constexpr int64_t kMaxLookbackNs = 60 * kMinuteNs;
constexpr uint32_t kNoSlot = 0;  // In ServiceState::local: slot + 1, or this.

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

void PutVar(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutDelta(std::string& out, uint64_t now, uint64_t before) {
  const int64_t d = static_cast<int64_t>(now - before);
  PutVar(out, (static_cast<uint64_t>(d) << 1) ^ static_cast<uint64_t>(d >> 63));  // Zigzag.
}

// Reads what PutVar and PutDelta wrote; the bytes are the rollup's own, never a file's.
class VarReader {
 public:
  explicit VarReader(std::string_view bytes) : p_(bytes.data()), end_(p_ + bytes.size()) {}
  uint64_t Var() {
    uint64_t v = 0;
    for (int shift = 0; p_ < end_ && shift < 64; shift += 7) {
      const auto b = static_cast<uint8_t>(*p_++);
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) break;
    }
    return v;
  }
  uint64_t Delta(uint64_t before) {
    const uint64_t z = Var();
    return before + ((z >> 1) ^ (~(z & 1) + 1));
  }

 private:
  const char* p_;
  const char* end_;
};

struct Figure {
  uint32_t slot;
  uint64_t count, bytes;
};

// One sample's figures: agents counted, RSS, heap, and each slot's bytes and objects.
struct Sample {
  uint64_t agents = 0, rss = 0, heap = 0;
  std::vector<uint64_t> bytes, count;
};

// A block: samples of consecutive periods from `first`, each delta-encoded against the one
// before (the first against zeros).
struct Block {
  int64_t first = 0;
  uint32_t samples = 0;
  std::string bytes;
};

void Encode(const Sample& s, const Sample& before, std::string& out) {
  PutVar(out, s.agents);
  PutDelta(out, s.rss, before.rss);
  PutDelta(out, s.heap, before.heap);
  PutVar(out, s.bytes.size());
  for (size_t k = 0; k < s.bytes.size(); ++k) {
    PutDelta(out, s.bytes[k], k < before.bytes.size() ? before.bytes[k] : 0);
    PutDelta(out, s.count[k], k < before.count.size() ? before.count[k] : 0);
  }
}

// Decodes the next sample of a block into `s`, which holds the one before.
void Decode(VarReader& in, Sample& s) {
  s.agents = in.Var();
  s.rss = in.Delta(s.rss);
  s.heap = in.Delta(s.heap);
  const size_t n = in.Var();
  if (n > s.bytes.size()) s.bytes.resize(n), s.count.resize(n);
  for (size_t k = 0; k < n; ++k) {
    s.bytes[k] = in.Delta(s.bytes[k]);
    s.count[k] = in.Delta(s.count[k]);
  }
}

struct AgentNow {
  int64_t timestamp_ns = 0;
  int64_t lookback_ns = kMinLookbackNs;
  int64_t until_ns = 0;  // Counted until then: its lookback, or a resolution past its goodbye.
  uint64_t rss = 0;
  std::vector<Figure> figures;
};

}  // namespace

struct SeriesRollup::ServiceState {
  std::vector<std::string> names;  // By slot.
  std::unordered_map<std::string, uint32_t> slots;
  uint64_t file = UINT64_MAX;   // Whose local type ids `local` maps.
  std::vector<uint32_t> local;  // Local type id -> slot + 1.
  std::unordered_map<uint32_t, AgentNow> agents;
  Sample now;                                        // Sums over `agents`.
  int64_t next = INT64_MIN;                          // The first period without a sample.
  Sample encoded;                                    // The last sample in `open`.
  uint32_t other = UINT32_MAX;                       // The slot of kOtherTypes, once there is one.
  uint64_t state_bytes = 0;                          // Of `agents` and `names`.
  std::vector<std::shared_ptr<const Block>> closed;  // Oldest first.
  Block open;

  // The slot of the file's type `id` (`names`: the file's), added if new and there is room.
  uint32_t Slot(const std::vector<std::string>* file_names, uint32_t id, size_t max_types) {
    const std::string& name = file_names && id < file_names->size() ? (*file_names)[id] : "";
    auto found = slots.find(name);
    if (found != slots.end()) return found->second;
    const bool room = names.size() + 1 < max_types;
    auto [at, added] =
        slots.emplace(room ? name : std::string(kOtherTypes), static_cast<uint32_t>(names.size()));
    if (added) {
      names.push_back(at->first);
      now.bytes.push_back(0);
      now.count.push_back(0);
      state_bytes += 2 * at->first.size() + 96;
      if (!room) other = at->second;
    }
    return at->second;
  }

  void Add(const AgentNow& a, int sign) {
    const uint64_t size = a.figures.size() * sizeof(Figure) + 96;
    state_bytes += sign > 0 ? size : -size;
    const auto apply = [sign](uint64_t& sum, uint64_t v) { sum += sign > 0 ? v : -v; };
    apply(now.rss, a.rss);
    for (const Figure& f : a.figures) {
      apply(now.bytes[f.slot], f.bytes);
      apply(now.count[f.slot], f.count);
      apply(now.heap, f.bytes);
    }
    apply(now.agents, 1);
  }

  // Agents silent for their lookback at `t` are no longer counted.
  void Expire(int64_t t) {
    for (auto it = agents.begin(); it != agents.end();) {
      if (it->second.until_ns < t) {
        Add(it->second, -1);
        it = agents.erase(it);
      } else {
        ++it;
      }
    }
  }
};

// What a query needs of a service, copied under the lock.
struct SeriesRollup::Snapshot {
  std::vector<std::shared_ptr<const Block>> blocks;
  Block open;
  int64_t next = INT64_MIN;
  std::vector<std::string> names;
  std::vector<AgentNow> agents;

  // The sums at `t` of the agents then counted (records after the last sample).
  Sample At(int64_t t) const {
    Sample s;
    s.bytes.assign(names.size(), 0);
    s.count.assign(names.size(), 0);
    for (const AgentNow& a : agents) {
      if (a.timestamp_ns >= t || a.until_ns < t) continue;
      s.agents += 1;
      s.rss += a.rss;
      for (const Figure& f : a.figures) {
        s.bytes[f.slot] += f.bytes;
        s.count[f.slot] += f.count;
        s.heap += f.bytes;
      }
    }
    return s;
  }
};

SeriesRollup::SeriesRollup(RollupOptions options) : options_(options) {}
SeriesRollup::~SeriesRollup() {
  cancel_ = true;
  if (rebuild_.joinable()) rebuild_.join();
}

void SeriesRollup::StartRebuild(const std::string& dir, int64_t now_ns) {
  rebuild_ = std::thread([this, dir, now_ns] {
    const auto started = std::chrono::steady_clock::now();
    auto built = Rebuild(dir, now_ns);
    if (cancel_) return;
    if (!built) {
      spdlog::error("series rollups: {} (series queries read the files)", built.error().message);
      return;
    }
    const RollupStats s = stats();
    spdlog::info("series rollups: {} services, {} agents, {} MiB, built in {:.1f} s", s.services,
                 s.agents, s.bytes >> 20,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  });
}

void SeriesRollup::Apply(const store::SeriesRecord& record, std::string_view service) {
  std::lock_guard lock(mutex_);
  if (!live_) return;
  if (std::pair(record.file_id, record.offset) < std::pair(applied_file_, applied_offset_)) return;
  ApplyLocked(record, service);
}

void SeriesRollup::ApplyAll(const store::SeriesRecord& record, std::string_view service) {
  std::lock_guard lock(mutex_);
  live_ = true;
  ApplyLocked(record, service);
}

void SeriesRollup::ApplyLocked(const store::SeriesRecord& r, std::string_view service_name) {
  applied_file_ = r.file_id;
  applied_offset_ = r.offset + r.length;
  newest_ns_ = std::max(newest_ns_, r.timestamp_ns);
  auto& owned = services_[std::string(service_name)];
  if (!owned) owned = std::make_unique<ServiceState>();
  ServiceState& s = *owned;
  const int64_t res = options_.resolution_ns;
  const int64_t period = FloorDiv(r.timestamp_ns, res);
  const int64_t horizon = std::max<int64_t>(1, options_.horizon_ns / res);
  if (s.next == INT64_MIN) s.next = period;
  if (period - s.next > horizon) s.next = period - horizon;  // Nothing to keep before.
  for (; s.next < period; ++s.next) {
    s.Expire((s.next + 1) * res);
    if (s.now.agents == 0) continue;  // No sample: a gap between blocks.
    if (s.open.samples > 0 && s.open.first + s.open.samples != s.next) {
      s.closed.push_back(std::make_shared<const Block>(std::move(s.open)));
      s.open = Block{};
    }
    if (s.open.samples == 0) {
      s.open.first = s.next;
      s.encoded = Sample{};
    }
    const size_t before = s.open.bytes.size();
    Encode(s.now, s.encoded, s.open.bytes);
    block_bytes_ += s.open.bytes.size() - before;
    s.encoded = s.now;
    if (++s.open.samples == kBlockSamples) {
      s.open.bytes.shrink_to_fit();
      s.closed.push_back(std::make_shared<const Block>(std::move(s.open)));
      s.open = Block{};
      EnforceBoundLocked();
    }
  }

  auto found = s.agents.find(r.agent);
  if (found != s.agents.end() && r.timestamp_ns < found->second.timestamp_ns) {
    ++records_late_;
    return;
  }
  if (r.goodbye) {  // Its last summary counts for one more resolution.
    if (found != s.agents.end()) {
      found->second.until_ns = std::min(found->second.until_ns, r.timestamp_ns + res);
    }
    return;
  }
  AgentNow next;
  next.timestamp_ns = r.timestamp_ns;
  next.rss = r.rss_bytes;
  if (found != s.agents.end()) {
    const int64_t interval = r.timestamp_ns - found->second.timestamp_ns;
    next.lookback_ns = interval > 0 ? std::clamp(3 * interval, kMinLookbackNs, kMaxLookbackNs)
                                    : found->second.lookback_ns;
    s.Add(found->second, -1);
  }
  next.until_ns = next.timestamp_ns + next.lookback_ns;
  if (s.file != r.file_id) {
    s.file = r.file_id;
    s.local.clear();
  }
  next.figures.reserve(r.types.size());
  const size_t known = r.names ? r.names->size() : 0;
  for (const store::SeriesFigures& f : r.types) {
    uint32_t slot;
    if (f.type < known) {  // Cached per file; an id past the file's names is damage: unnamed.
      if (f.type >= s.local.size()) s.local.resize(known, kNoSlot);
      if (s.local[f.type] == kNoSlot)
        s.local[f.type] = s.Slot(r.names, f.type, options_.max_types) + 1;
      slot = s.local[f.type] - 1;
    } else {
      slot = s.Slot(nullptr, 0, options_.max_types);
    }
    if (slot == s.other) ++types_folded_;
    next.figures.push_back({slot, f.count, f.bytes});
  }
  s.Add(next, +1);
  s.agents[r.agent] = std::move(next);
  if (options_.locations) {
    locations_[r.agent].push_back({r.timestamp_ns, {r.file_id, r.offset, r.length}});
    location_bytes_ += sizeof(AgentLocation);
    NoteNamesLocked(r);
  }
}

void SeriesRollup::NoteNamesLocked(const store::SeriesRecord& r) {
  if (!r.names) return;
  uint32_t highest = 0;
  for (const store::SeriesFigures& f : r.types) highest = std::max(highest, f.type + 1);
  auto& known = file_names_[r.file_id];
  if (known && known->size() >= highest) return;
  if (known) name_bytes_ -= known->size() * 48;
  known = std::make_shared<const std::vector<std::string>>(*r.names);
  name_bytes_ += known->size() * 48;
}

void SeriesRollup::EnforceBoundLocked() {
  const int64_t res = options_.resolution_ns;
  uint64_t state_bytes = 0;
  for (const auto& [name, s] : services_) state_bytes += s->state_bytes;
  const auto bytes = [&] { return block_bytes_ + location_bytes_ + name_bytes_ + state_bytes; };
  const int64_t too_old = newest_ns_ == INT64_MIN ? INT64_MIN : newest_ns_ - options_.horizon_ns;
  if (too_old > covered_from_ns_) {
    covered_from_ns_ = too_old;
    TrimLocked();
  }
  // An hour at a time, every service's blocks that start in it (and the locations before it).
  for (;;) {
    int64_t oldest = INT64_MAX;
    for (const auto& [name, s] : services_) {
      if (!s->closed.empty()) oldest = std::min(oldest, s->closed.front()->first);
    }
    if (oldest == INT64_MAX) break;
    const bool expired = (oldest + kBlockSamples) * res <= covered_from_ns_;
    if (bytes() <= options_.max_bytes && !expired) break;
    for (auto& [name, s] : services_) {
      while (!s->closed.empty() && s->closed.front()->first < oldest + kBlockSamples) {
        const Block& b = *s->closed.front();
        covered_from_ns_ = std::max(covered_from_ns_, (b.first + b.samples) * res);
        block_bytes_ -= b.bytes.size();
        s->closed.erase(s->closed.begin());
        ++blocks_evicted_;
      }
    }
    TrimLocked();
  }
}

void SeriesRollup::TrimLocked() {
  uint64_t first_file = UINT64_MAX;
  for (auto it = locations_.begin(); it != locations_.end();) {
    auto& list = it->second;
    auto keep = std::find_if(list.begin(), list.end(), [&](const AgentLocation& l) {
      return l.timestamp_ns >= covered_from_ns_;
    });
    location_bytes_ -= (keep - list.begin()) * sizeof(AgentLocation);
    list.erase(list.begin(), keep);
    if (list.empty()) {
      it = locations_.erase(it);
      continue;
    }
    first_file = std::min(first_file, list.front().at.file_id);
    ++it;
  }
  while (!file_names_.empty() && file_names_.begin()->first < first_file) {
    name_bytes_ -= file_names_.begin()->second->size() * 48;
    file_names_.erase(file_names_.begin());
  }
}

snapshot::Result<void> SeriesRollup::ScanInto(const std::string& dir, int64_t since_ns,
                                              bool final_pass) {
  std::unique_lock lock(mutex_);
  store::SeriesFilter filter{std::nullopt, since_ns, applied_file_, applied_offset_, &cancel_};
  if (!final_pass) lock.unlock();
  auto agents = store::ReadAgents(dir);
  if (!agents) return std::unexpected(agents.error());
  std::set<uint32_t> tried;
  auto scanned = store::ScanSeries(dir, filter, [&](const store::SeriesRecord& r) {
    auto named = agents->find(r.agent);
    if (named == agents->end() && tried.insert(r.agent).second) {  // Named since it was read?
      if (auto again = store::ReadAgents(dir)) *agents = std::move(*again);
      named = agents->find(r.agent);
    }
    if (named == agents->end()) return;  // Not named anywhere: no service to count it in.
    if (final_pass) {
      ApplyLocked(r, named->second.identity.service);
    } else {
      std::lock_guard one(mutex_);
      ApplyLocked(r, named->second.identity.service);
    }
  });
  // Live before the lock goes: the next record the store appends is applied by Apply.
  if (final_pass) live_ = !cancel_ && scanned.has_value();
  return scanned;
}

snapshot::Result<void> SeriesRollup::Rebuild(const std::string& dir, int64_t now_ns) {
  const int64_t since = now_ns - options_.horizon_ns;
  {
    std::lock_guard lock(mutex_);
    covered_from_ns_ = std::max(covered_from_ns_, since);
  }
  // Two passes unlocked (the second reads what was appended during the first), then the tail
  // with the store's appends waiting.
  for (int pass = 0; pass < 2; ++pass) {
    if (auto r = ScanInto(dir, since, false); !r) return r;
  }
  return ScanInto(dir, since, true);
}

std::optional<SeriesTable> SeriesRollup::Service(const std::string& service, const StepRange& range,
                                                 size_t top, int64_t now_ns) const {
  const int64_t res = options_.resolution_ns;
  Snapshot snap;
  {
    std::lock_guard lock(mutex_);
    if (!live_ || range.step_ns < res || range.from_ns < covered_from_ns_) return std::nullopt;
    auto found = services_.find(service);
    if (found != services_.end()) {
      const ServiceState& s = *found->second;
      const int64_t first = FloorDiv(range.from_ns, res) - 1;
      for (const auto& b : s.closed) {
        if (b->first + b->samples > first) snap.blocks.push_back(b);
      }
      snap.open = s.open;
      snap.next = s.next;
      snap.names = s.names;
      for (const auto& [id, a] : s.agents) snap.agents.push_back(a);
    }
  }
  if (snap.open.samples > 0) {
    snap.blocks.push_back(std::make_shared<const Block>(std::move(snap.open)));
  }
  // Each step's sample: the last whole period ending at or before T = min(step end, now), or
  // the sums at T of the agents counted now when T is after the last sample (kVirtual); none
  // (kNone) for a step after now.
  constexpr int64_t kNone = INT64_MIN, kVirtual = INT64_MAX;
  std::vector<int64_t> periods(range.steps, kNone);
  for (size_t k = 0; k < range.steps; ++k) {
    const int64_t start = range.from_ns + static_cast<int64_t>(k) * range.step_ns;
    const int64_t t = std::min(start + range.step_ns, now_ns);
    if (start >= now_ns || snap.next == INT64_MIN) continue;
    periods[k] = t > snap.next * res ? kVirtual : FloorDiv(t, res) - 1;
  }
  // Visits each step that has a sample with it, in step order.
  const auto each = [&](const std::function<void(size_t, const Sample&)>& visit) {
    size_t k = 0;
    Sample cur;
    for (const auto& b : snap.blocks) {
      const int64_t last = b->first + b->samples - 1;
      while (k < range.steps && periods[k] < b->first) ++k;  // Before it, or in a gap.
      if (k == range.steps || periods[k] > last) continue;
      cur = Sample{};
      VarReader in(b->bytes);
      for (int64_t p = b->first; p <= last && k < range.steps && periods[k] <= last; ++p) {
        Decode(in, cur);
        while (k < range.steps && periods[k] == p) visit(k++, cur);
      }
    }
    for (; k < range.steps; ++k) {
      if (periods[k] != kVirtual) continue;  // In a gap, or a step after now.
      const int64_t end = range.from_ns + static_cast<int64_t>(k + 1) * range.step_ns;
      visit(k, snap.At(std::min(end, now_ns)));
    }
  };
  SeriesTable table;
  table.has.assign(range.steps, false);
  table.rss.assign(range.steps, 0);
  table.heap.assign(range.steps, 0);
  std::vector<uint64_t> last_bytes;
  each([&](size_t k, const Sample& s) {
    if (s.agents == 0) return;
    table.has[k] = true;
    table.rss[k] = s.rss;
    table.heap[k] = s.heap;
    table.agents = std::max<size_t>(table.agents, s.agents);
    last_bytes = s.bytes;
  });
  last_bytes.resize(snap.names.size(), 0);
  std::vector<uint32_t> order(snap.names.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return last_bytes[a] != last_bytes[b] ? last_bytes[a] > last_bytes[b]
                                          : snap.names[a] < snap.names[b];
  });
  order.resize(std::min(order.size(), top));
  for (uint32_t slot : order) {
    table.rows.push_back({snap.names[slot], std::vector<uint64_t>(range.steps, 0),
                          std::vector<uint64_t>(range.steps, 0)});
  }
  each([&](size_t k, const Sample& s) {
    if (s.agents == 0) return;
    for (size_t i = 0; i < order.size(); ++i) {
      if (order[i] >= s.bytes.size()) continue;
      table.rows[i].bytes[k] = s.bytes[order[i]];
      table.rows[i].count[k] = s.count[order[i]];
    }
  });
  return table;
}

std::optional<SeriesRollup::Located> SeriesRollup::Agent(uint32_t agent, int64_t from_ns,
                                                         int64_t to_ns) const {
  std::lock_guard lock(mutex_);
  if (!live_ || !options_.locations || from_ns < covered_from_ns_) return std::nullopt;
  Located out;
  auto found = locations_.find(agent);
  if (found == locations_.end()) return out;
  for (const AgentLocation& l : found->second) {
    if (l.timestamp_ns < from_ns || l.timestamp_ns >= to_ns) continue;
    out.locations.push_back(l.at);
    auto names = file_names_.find(l.at.file_id);
    if (names != file_names_.end()) out.names.emplace(l.at.file_id, names->second);
  }
  return out;
}

RollupStats SeriesRollup::stats() const {
  std::lock_guard lock(mutex_);
  RollupStats out;
  out.bytes = block_bytes_ + location_bytes_ + name_bytes_;
  out.services = services_.size();
  for (const auto& [name, s] : services_) {
    out.agents += s->agents.size();
    out.bytes += s->state_bytes;
  }
  out.blocks_evicted = blocks_evicted_;
  out.records_late = records_late_;
  out.types_folded = types_folded_;
  out.covered_from_ns = covered_from_ns_;
  out.live = live_;
  return out;
}

}  // namespace tidemark::collector
