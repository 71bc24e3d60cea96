// Series rollups: what a service's memory looked like at each minute, kept in memory so that
// a series query over a day of a large fleet reads no file (docs/api.md, "series").
//
// A service's value at time T is the sum, over its agents, of each agent's latest summary taken
// before T; an agent counts until a minute after its goodbye (so that a step ending after it
// shows what it said last), or until it has been silent for three of its intervals (at least
// 2 min, at most 1 h; 2 min while it has sent one summary). The rollup holds that value at the
// end of every whole minute with an agent counted (a "sample": agents counted, RSS, Python heap,
// and bytes and objects of each type; a minute with none is a gap between blocks),
// delta-encoded in blocks of up to an hour, and each agent's record locations in the series
// files (an agent's own series reads only its records).
//
// Records are applied in the order of the series files (the store calls Apply under its lock as
// it appends; Rebuild reads the files at start), so what is kept is the same whether it was
// built live or at start. A minute's sample is taken when a record of a later minute arrives
// for that service: a record arriving after that (a clock behind, a resend) counts from the
// next sample on. Everything is bounded: RollupOptions::max_bytes (the oldest hour of every
// service goes first, and with it the time the rollup covers: a query before
// RollupStats::covered_from_ns reads the files), horizon_ns
// and max_types per service (further types are summed as kOtherTypes).
//
// Thread-safety: thread-safe. Queries copy what they need under the lock and decode outside it.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "snapshot/result.h"
#include "store/store.h"

namespace tidemark::collector {

struct RollupOptions {
  uint64_t max_bytes = uint64_t{512} << 20;
  int64_t horizon_ns = int64_t{7} * 24 * 3600 * 1'000'000'000;  // Kept (and rebuilt) this far back.
  int64_t resolution_ns = int64_t{60} * 1'000'000'000;          // A sample per this much time.
  size_t max_types = 10'000;                                    // Per service.
  bool locations = true;  // Keep each agent's record locations.
};

// A series over steps, as a query answers it: the `top` largest types at the last step with
// data, in that order.
struct SeriesTable {
  struct Row {
    std::string type;
    std::vector<uint64_t> bytes, count;
  };
  std::vector<bool> has;  // A step with at least one agent counted.
  std::vector<uint64_t> rss, heap;
  size_t agents = 0;  // The most agents counted at one step.
  std::vector<Row> rows;
};

// The steps of a query: [from + k*step, from + (k+1)*step) for k < steps.
struct StepRange {
  int64_t from_ns = 0;
  int64_t step_ns = 0;
  size_t steps = 0;
};

struct RollupStats {
  uint64_t bytes = 0;
  uint64_t services = 0;
  uint64_t agents = 0;  // Counted now.
  uint64_t blocks_evicted = 0;
  uint64_t records_late = 0;  // Older than their agent's latest: not applied.
  uint64_t types_folded = 0;  // Figures summed as kOtherTypes.
  int64_t covered_from_ns = 0;
  bool live = false;
};

class SeriesRollup {
 public:
  static constexpr char kOtherTypes[] = "(more types than the rollup keeps)";

  explicit SeriesRollup(RollupOptions options);
  ~SeriesRollup();
  SeriesRollup(const SeriesRollup&) = delete;
  SeriesRollup& operator=(const SeriesRollup&) = delete;

  // The store's series observer (store::StoreOptions::on_series). Ignored until live: Rebuild
  // reads what was appended meanwhile from the files.
  void Apply(const store::SeriesRecord& record, std::string_view service);

  // Reads the series files of `dir` taken since now_ns - horizon, then goes live; the store may
  // be written meanwhile (its appends wait for the last few records to be read).
  snapshot::Result<void> Rebuild(const std::string& dir, int64_t now_ns);
  // Rebuild on a thread of its own, its outcome logged; the destructor stops and joins it.
  void StartRebuild(const std::string& dir, int64_t now_ns);

  // For a rollup of one query's records (not fed by a store): applies every record given.
  void ApplyAll(const store::SeriesRecord& record, std::string_view service);

  // The service's series over `range` as of now_ns, or nullopt when the rollup does not hold
  // all of it (not live yet, `range` starts before covered_from(), or a step shorter than the
  // resolution): read the files then.
  std::optional<SeriesTable> Service(const std::string& service, const StepRange& range, size_t top,
                                     int64_t now_ns) const;

  // Where `agent`'s records taken in [from_ns, to_ns) lie, with each file's type names; nullopt
  // as for Service.
  struct Located {
    std::vector<store::SeriesLocation> locations;
    std::map<uint64_t, std::shared_ptr<const std::vector<std::string>>> names;  // By file id.
  };
  std::optional<Located> Agent(uint32_t agent, int64_t from_ns, int64_t to_ns) const;

  RollupStats stats() const;

 private:
  struct ServiceState;
  struct Snapshot;
  void ApplyLocked(const store::SeriesRecord& record, std::string_view service);
  void NoteNamesLocked(const store::SeriesRecord& record);
  void EnforceBoundLocked();
  void TrimLocked();  // Drops locations before covered_from_ns_, and names no location needs.
  snapshot::Result<void> ScanInto(const std::string& dir, int64_t since_ns, bool final_pass);

  const RollupOptions options_;
  mutable std::mutex mutex_;
  bool live_ = false;
  uint64_t applied_file_ = 0, applied_offset_ = 0;  // Next position in file order.
  std::unordered_map<std::string, std::unique_ptr<ServiceState>> services_;
  struct AgentLocation {
    int64_t timestamp_ns;
    store::SeriesLocation at;
  };
  std::unordered_map<uint32_t, std::vector<AgentLocation>> locations_;
  std::map<uint64_t, std::shared_ptr<const std::vector<std::string>>> file_names_;
  int64_t newest_ns_ = INT64_MIN;
  int64_t covered_from_ns_ = INT64_MIN;
  uint64_t location_bytes_ = 0, block_bytes_ = 0, name_bytes_ = 0;
  uint64_t blocks_evicted_ = 0, records_late_ = 0, types_folded_ = 0;
  std::atomic<bool> cancel_{false};
  std::thread rebuild_;
};

}  // namespace tidemark::collector
