// The snapshot store: durable, crash-safe storage of snapshots exactly as received.
//
// Layout under the store directory (every file in store/log_format.h's framing):
//   LOCK                 held (flock) by the one writing process
//   agents.log   "TDMI"  'A' records: agent id, identity, labels; one per agent instance
//   summary/<id>.seg     "TDMS"  'S' records: received time, then the message bytes
//   summary/<id>.idx     "TDMI"  'E' records: one per snapshot in <id>.seg (see IndexEntry)
//   graph/<id>.seg, graph/<id>.idx   the same for graph snapshots
//   series/<id>.log      "TDMT"  'T' type names and 'P' per-type points of each summary
// Payloads (integers little-endian, strings u32 length + bytes, var = LEB128):
//   'A' u32 agent, str service, str host, i64 pid, i64 start_ns, u32 n, n x (str key, str value)
//   'S' i64 received_ns, then the message exactly as received
//   'E' u32 agent, u64 seq, u8 kind, i64 taken_ns, i64 received_ns, u64 segment, u64 offset,
//       u32 record bytes, u64 message bytes, u64 raw body bytes, u64 objects, u64 bytes,
//       u64 types, u64 rss[, u8 crossed: the memory threshold (percent) it was taken for, if any]
//   'T' u32 type id (local to its series file), str name
//   'P' u32 agent, u64 seq, i64 taken_ns, u64 rss, u32 n, n x (var type id, var count, var bytes)
//   'G' u32 agent, u64 seq, i64 said_ns: the agent said goodbye (it stopped; expect nothing more)
// <id> is a 16-digit counter shared by all files: a larger id is a newer file.
//
// The writer appends to one segment and index per kind and one series file, rolls them at a
// size or age, and never reopens a closed file for writing, so a crash can tear only the
// tails of the files that were open. Recovery (Open) truncates those tails with a log line
// and re-indexes segment records written after their index entries were. Anything else that
// fails its checks (a flipped byte, a zeroed block) is damage, not a tail: the records around
// it are kept (store/record_scan.h), a damaged segment region is copied to quarantine/ and
// logged, a damaged or missing index is rebuilt from its segment's records, and an agent whose
// agents.log record is lost is named again from its own snapshots (every message carries its
// full identity); agent ids are never reused. Every read is bounded (a window, or one record),
// whatever size a file claims. No file descriptor is held per agent: an agent is a record in
// agents.log and an id in entries.
//
// Retention works on whole files (a segment and its index): by age of the newest record, by
// total bytes per kind, and always keeping each agent's newest keep_last snapshots and its
// newest keep_memory snapshots taken for a memory threshold, past max_age: what a process looked
// like before the OOM killer took it outlives the usual retention, bounded.
//
// Durability: Append() writes; a sync thread calls fdatasync on every file written since its
// last round (group commit: appends during one sync ride the next) and then reports the
// tickets that are durable. An ack is sent only for a durable ticket.
//
// Thread-safety: Store is thread-safe. Reading functions below work on a store another
// process is writing: they stop at an incomplete record and read segments under a shared lock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "snapshot/snapshot.h"
#include "store/file_system.h"
#include "store/record_scan.h"

namespace tidemark::store {

struct AgentRecord {
  uint32_t id = 0;
  snapshot::Identity identity;
};

// One stored snapshot, as its index entry: listing and seeking never decompress anything.
struct IndexEntry {
  uint32_t agent = 0;
  uint64_t seq = 0;
  snapshot::Kind kind = snapshot::Kind::kSummary;
  int64_t timestamp_ns = 0;  // When the agent took it.
  int64_t received_ns = 0;
  uint64_t segment = 0;  // <id> of the segment file.
  uint64_t offset = 0;   // Of the record in it.
  uint32_t record_bytes = 0;
  uint64_t message_bytes = 0;
  uint64_t raw_body_bytes = 0;
  uint64_t objects = 0;
  uint64_t bytes = 0;
  uint64_t types = 0;
  uint64_t rss_bytes = 0;
  uint32_t crossed_pct = 0;  // Taken for this memory threshold (snapshot::MemoryFigures).
};

struct TypePoint {
  std::string type;
  uint64_t count = 0;
  uint64_t bytes = 0;
};

// One summary's per-type figures, kept apart so growth queries decode no snapshot.
struct SeriesPoint {
  uint32_t agent = 0;
  uint64_t seq = 0;
  int64_t timestamp_ns = 0;
  uint64_t rss_bytes = 0;
  std::vector<TypePoint> types;
  bool goodbye = false;  // The agent's goodbye at timestamp_ns: no figures, nothing after it.
};

// One series record as ScanSeries hands it over, valid during the call only: no type name is
// copied. `types[i].type` is an id local to the series file: `(*names)[id]` (ids past its end or
// empty names: a type whose 'T' record was damaged); `file_id` changes when the next file starts
// (ids of one file mean nothing in another). (file_id, offset, length) is where the record's
// frame lies: ReadSeriesAt reads it again.
struct SeriesFigures {
  uint32_t type = 0;
  uint64_t count = 0;
  uint64_t bytes = 0;
};
struct SeriesRecord {
  uint32_t agent = 0;
  uint64_t seq = 0;
  int64_t timestamp_ns = 0;
  uint64_t rss_bytes = 0;
  bool goodbye = false;
  std::span<const SeriesFigures> types;
  const std::vector<std::string>* names = nullptr;
  uint64_t file_id = 0;
  uint64_t offset = 0;
  uint32_t length = 0;  // Of the frame.
};
struct RetentionPolicy {
  int64_t max_age_ns = 0;  // 0: no age limit.
  uint64_t max_bytes = 0;  // 0: no size limit. Overrides keep_last: disk is the hard limit.
  uint32_t keep_last = 0;  // Each agent's newest N are kept past max_age.
  // Each agent's newest N of this kind taken for a memory threshold are kept past max_age (not
  // past max_bytes). At most 64.
  uint32_t keep_memory = 0;
};

struct RetentionResult {
  uint64_t files_removed = 0;
  uint64_t snapshots_removed = 0;
  uint64_t bytes_removed = 0;
  uint64_t files_in_use = 0;  // Due but held by a reader: removed on a later round.
};

struct KindStats {
  uint64_t snapshots = 0;
  uint64_t bytes = 0;  // Segment and index files.
  uint64_t files = 0;
};

struct StoreStats {
  KindStats summary;
  KindStats graph;
  uint64_t series_bytes = 0;
  uint64_t agents = 0;
  uint64_t quarantined = 0;  // Damaged regions found between intact records at start.
};

// At most this much of a damaged region is copied to <store>/quarantine/.
inline constexpr uint64_t kMaxQuarantineBytes = uint64_t{16} << 20;

struct StoreOptions {
  FileSystem* fs = &FileSystem::Default();
  bool sync = true;  // false: durable once written (survives a crash of this process only).
  uint64_t segment_bytes = uint64_t{64} << 20;
  int64_t segment_age_ns = int64_t{3600} * 1'000'000'000;
  // Called from the sync thread: tickets in (from, to] are durable (ok) or were lost to a
  // failed sync (!ok). Must not call back into the Store.
  std::function<void(uint64_t from, uint64_t to, bool ok)> on_durable;
  std::function<void(const std::string&)> log;  // Recovery and error lines; may be empty.
  // Called with each series record ('P' or 'G') as it is appended, in file order, under the
  // store's lock (so: quick, and never calling back into the Store); `names` are the file's
  // type names so far. `service` is the agent's.
  std::function<void(const SeriesRecord&, std::string_view service)> on_series;
};

class Store {
 public:
  // Opens or creates the store at `dir`, recovering from a crash. Fails with a message naming
  // the path if the directory cannot be created, written or locked.
  static Result<std::unique_ptr<Store>> Open(const std::string& dir, StoreOptions options,
                                             int64_t now_ns);
  ~Store();  // Syncs what was appended, then stops the sync thread.
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Appends one validated message with its decoded header (and type table for summaries).
  // Returns its ticket. On failure nothing of it stays in the store. A message whose (agent,
  // seq) is stored already (an agent resending what it was not sure arrived) is not stored
  // again: `*duplicate` is set and the stored one's ticket returned (0: stored before this
  // Store was opened). Each agent's last kSeqMemory sequence numbers are remembered.
  Result<uint64_t> Append(std::string_view message, const snapshot::Header& header,
                          const std::vector<snapshot::TypeStat>& types, int64_t received_ns,
                          bool* duplicate = nullptr);
  static constexpr size_t kSeqMemory = 64;  // 1 KiB an agent.
  // The last ticket known durable: acknowledgements up to it may be sent.
  uint64_t durable_ticket() const;

  // Records an agent's goodbye in the series (synced with the next group commit, not
  // acknowledged). False when no snapshot of that agent was ever stored: nothing to record.
  Result<bool> AppendGoodbye(const snapshot::Identity& identity, uint64_t seq, int64_t timestamp_ns,
                             int64_t now_ns);

  // Syncs everything appended so far and waits for it.
  void Flush();

  RetentionResult ApplyRetention(const RetentionPolicy& summary, const RetentionPolicy& graph,
                                 int64_t now_ns);

  StoreStats stats() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Segment;
  struct OpenFile;
  struct AgentState;
  Store(std::string dir, StoreOptions options);
  // A segment's index as read at start, before the segment itself is recovered.
  struct SegmentIndex {
    snapshot::Kind kind = snapshot::Kind::kSummary;
    uint64_t id = 0;
    std::vector<IndexEntry> entries;
    bool rewrite = false;  // The index file must be written anew.
    bool rescan = false;   // Missing or damaged: every record of the segment is indexed again.
  };
  Result<void> Recover(int64_t now_ns);
  Result<bool> RecoverAgentsLocked(int64_t now_ns);
  Result<SegmentIndex> LoadIndexLocked(snapshot::Kind kind, uint64_t id);
  void RecoverLostAgentsLocked(const std::vector<SegmentIndex>& indexes);
  Result<void> RecoverSegment(SegmentIndex index);
  void QuarantineLocked(const std::string& path, const Damage& damage);
  Result<void> RecoverSeries();
  Result<uint32_t> AgentIdLocked(const snapshot::Identity& identity);
  Result<OpenFile*> ActiveLocked(snapshot::Kind kind, int64_t now_ns);
  Result<void> AppendSeriesLocked(uint32_t agent, const snapshot::Header& header,
                                  const std::vector<snapshot::TypeStat>& types, int64_t now_ns);
  Result<void> SeriesFileLocked(int64_t now_ns);  // Opens or rolls series_file_.
  void NoteEntryLocked(const IndexEntry& entry, Segment& segment);
  Result<std::shared_ptr<WritableFile>> CreateFileLocked(const std::string& path,
                                                         std::string_view magic, int64_t now_ns);
  void MarkDirtyLocked(const std::shared_ptr<WritableFile>& file);
  void SyncLoop();
  void Log(const std::string& line) const;

  const std::string dir_;
  const StoreOptions options_;
  FileSystem& fs_;
  std::unique_ptr<FileLock> lock_;

  mutable std::mutex mutex_;
  uint64_t next_file_id_ = 1;
  std::shared_ptr<WritableFile> agents_file_;
  uint32_t next_agent_id_ = 1;
  std::unordered_map<std::string, uint32_t> agent_ids_;  // Identity key -> id.
  std::set<uint32_t> agent_names_;                       // Ids agents.log names.
  uint64_t quarantined_ = 0;                             // Damaged regions skipped at start.
  std::map<uint32_t, AgentState> agent_states_;
  std::map<uint64_t, Segment> segments_;  // By id; both kinds.
  std::unique_ptr<OpenFile> active_[2];   // Per kind: the segment being written.
  std::shared_ptr<WritableFile> series_file_;
  uint64_t series_id_ = 0;
  std::unordered_map<std::string, uint32_t> series_types_;  // In the active series file.
  std::vector<std::string> series_names_;                   // The same, by id.
  std::map<uint64_t, int64_t> series_files_;                // id -> created_ns.
  uint64_t series_bytes_ = 0;

  // Group commit.
  std::vector<std::shared_ptr<WritableFile>> dirty_;
  std::set<std::string> dirty_dirs_;
  uint64_t appended_ = 0;  // Last ticket handed out.
  uint64_t durable_ = 0;   // Last ticket reported.
  bool stopping_ = false;
  std::condition_variable work_;
  std::condition_variable synced_;
  std::thread sync_thread_;
};

// Reading a store, from any process, while it is written.
struct Catalog {
  std::map<uint32_t, AgentRecord> agents;
  std::vector<IndexEntry> entries;  // By kind, then segment and offset: arrival order per kind.
  // What a listing alone would not show: agents named from their snapshots (agents.log lost
  // them), damaged index regions, quarantined segment regions. `tidemark verify` reports them.
  std::vector<std::string> problems;
};
Result<Catalog> ReadCatalog(const std::string& dir, FileSystem& fs = FileSystem::Default());
// What listings show of each agent: how many snapshots are stored and the newest (by time
// taken), both kinds.
struct AgentListing {
  uint64_t snapshots = 0;
  IndexEntry newest;
};
// The catalog's per-agent listing, kept per index file so that each Read reads only what was
// appended to the index files since the last (they only grow until retention removes them): a
// listing of a store of millions of snapshots reads one index file's tail. Holds, per index
// file, one AgentListing per agent in it and 8 bytes per snapshot (where its index record
// lies): bounded by the store's own size. Thread-safe.
class ListingCache {
 public:
  // Each agent with a snapshot in the store; agents.log names them (`agents`); an agent it
  // does not name (a lost record: ReadCatalog names it from its snapshots) is in `unnamed`.
  struct Listing {
    std::map<uint32_t, AgentRecord> agents;
    std::map<uint32_t, AgentListing> listed;
    bool unnamed = false;
  };
  Result<Listing> Read(const std::string& dir, FileSystem& fs = FileSystem::Default());

  // A catalog of every agent and of the entries of the agents `refs` name (store/references.h:
  // an agent, AGENT:SEQ, AGENT@TIME; the newest instance of what it matches): what
  // ResolveRef needs for those refs, read from the index records of those agents only. The
  // whole catalog (ReadCatalog) when a ref names no agent agents.log holds.
  Result<Catalog> CatalogFor(const std::string& dir, const std::vector<std::string>& refs,
                             FileSystem& fs = FileSystem::Default());

 private:
  struct File {
    uint64_t scanned_to = 0;
    std::map<uint32_t, AgentListing> agents;
    std::map<uint32_t, std::vector<std::pair<uint32_t, uint32_t>>> records;  // Offset, length.
  };
  std::mutex mutex_;
  std::map<std::string, File> files_;  // By path.
};
// The message of one entry, checked against its CRC. A segment removed by retention since the
// catalog was read is an error saying so.
Result<std::string> ReadMessage(const std::string& dir, const IndexEntry& entry,
                                FileSystem& fs = FileSystem::Default());
// Which records ScanSeries visits: `agent`'s only when given; those taken at or after since_ns
// (whole files older than that are not read); those at or after (after_file, after_offset)
// in file order.
struct SeriesFilter {
  std::optional<uint32_t> agent;
  int64_t since_ns = INT64_MIN;
  uint64_t from_file = 0;
  uint64_t from_offset = 0;
  const std::atomic<bool>* cancel = nullptr;  // Set: the scan stops (and succeeds) soon.
};
// Calls `visit` for each series record in file order (each agent's oldest first) that `filter`
// lets through. For queries over many points: nothing is copied per point.
Result<void> ScanSeries(const std::string& dir, const SeriesFilter& filter,
                        const std::function<void(const SeriesRecord&)>& visit,
                        FileSystem& fs = FileSystem::Default());
// Where one series record's frame lies (SeriesRecord's file_id, offset, length).
struct SeriesLocation {
  uint64_t file_id = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
};
// Reads the records at `locations` again (in that order), each checked against its CRC, and
// calls `visit` for each intact one (`names` null: the caller knows each file's type names). A
// file removed by retention meanwhile, or a damaged record, is skipped.
Result<void> ReadSeriesAt(const std::string& dir, std::span<const SeriesLocation> locations,
                          const std::function<void(const SeriesRecord&)>& visit,
                          FileSystem& fs = FileSystem::Default());
// ScanSeries, kept: series points in file order.
Result<std::vector<SeriesPoint>> ReadSeries(const std::string& dir,
                                            std::optional<uint32_t> agent = std::nullopt,
                                            int64_t since_ns = INT64_MIN,
                                            FileSystem& fs = FileSystem::Default());
// The agents of a store (agents.log only: no index is read).
Result<std::map<uint32_t, AgentRecord>> ReadAgents(const std::string& dir,
                                                   FileSystem& fs = FileSystem::Default());

std::string IdentityKey(const snapshot::Identity& identity);

}  // namespace tidemark::store
