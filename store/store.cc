#include "store/store.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <deque>

#include "snapshot/wire.h"
#include "store/log_format.h"
#include "store/record_scan.h"
#include "store/references.h"

namespace tidemark::store {

using snapshot::Kind;

namespace {

constexpr std::string_view kSegmentMagic = "TDMS";
constexpr std::string_view kIndexMagic = "TDMI";
constexpr std::string_view kSeriesMagic = "TDMT";
constexpr size_t kKeepLastLimit = 64;  // Newest snapshots remembered per agent and kind.

const char* KindDir(Kind kind) { return kind == Kind::kGraph ? "graph" : "summary"; }
int KindSlot(Kind kind) { return kind == Kind::kGraph ? 1 : 0; }

std::string FileName(uint64_t id, const char* ext) {
  char name[40];
  std::snprintf(name, sizeof name, "%016" PRIu64 ".%s", id, ext);
  return name;
}

// The id of "<16 digits>.<ext>", or nothing for any other name.
std::optional<uint64_t> FileId(const std::string& name, const std::string& ext) {
  if (name.size() != 17 + ext.size() || name.compare(17, ext.size(), ext) != 0 || name[16] != '.') {
    return std::nullopt;
  }
  if (name.find_first_not_of("0123456789") != 16) return std::nullopt;
  return std::stoull(name.substr(0, 16));
}

std::string EncodeAgent(uint32_t id, const snapshot::Identity& identity) {
  PayloadWriter w;
  w.U8('A').U32(id).Str(identity.service).Str(identity.host).I64(identity.pid);
  w.I64(identity.start_time_ns).U32(static_cast<uint32_t>(identity.labels.size()));
  for (const auto& [key, value] : identity.labels) w.Str(key).Str(value);
  return std::move(w.bytes());
}

std::optional<AgentRecord> DecodeAgent(std::string_view payload) {
  PayloadReader r(payload);
  if (r.U8() != 'A') return std::nullopt;
  AgentRecord agent;
  agent.id = r.U32();
  agent.identity.service = r.Str();
  agent.identity.host = r.Str();
  agent.identity.pid = r.I64();
  agent.identity.start_time_ns = r.I64();
  const uint32_t labels = r.U32();
  for (uint32_t i = 0; i < labels && r.ok(); ++i) {
    std::string key = r.Str();
    agent.identity.labels.emplace_back(std::move(key), r.Str());
  }
  if (!r.ok()) return std::nullopt;
  return agent;
}

std::string EncodeEntry(const IndexEntry& e) {
  PayloadWriter w;
  w.U8('E').U32(e.agent).U64(e.seq).U8(static_cast<uint8_t>(e.kind)).I64(e.timestamp_ns);
  w.I64(e.received_ns).U64(e.segment).U64(e.offset).U32(e.record_bytes).U64(e.message_bytes);
  w.U64(e.raw_body_bytes).U64(e.objects).U64(e.bytes).U64(e.types).U64(e.rss_bytes);
  if (e.crossed_pct > 0) w.U8(static_cast<uint8_t>(std::min<uint32_t>(e.crossed_pct, 100)));
  return std::move(w.bytes());
}

std::optional<IndexEntry> DecodeEntry(std::string_view payload) {
  PayloadReader r(payload);
  if (r.U8() != 'E') return std::nullopt;
  IndexEntry e;
  e.agent = r.U32();
  e.seq = r.U64();
  e.kind = static_cast<Kind>(r.U8());
  e.timestamp_ns = r.I64();
  e.received_ns = r.I64();
  e.segment = r.U64();
  e.offset = r.U64();
  e.record_bytes = r.U32();
  e.message_bytes = r.U64();
  e.raw_body_bytes = r.U64();
  e.objects = r.U64();
  e.bytes = r.U64();
  e.types = r.U64();
  e.rss_bytes = r.U64();
  if (r.ok() && !r.at_end()) e.crossed_pct = r.U8();  // Written since memory thresholds.
  if (!r.ok() || (e.kind != Kind::kSummary && e.kind != Kind::kGraph)) return std::nullopt;
  return e;
}

IndexEntry EntryFor(const snapshot::Header& h, uint64_t message_bytes, uint64_t raw_body_bytes) {
  IndexEntry e;
  e.seq = h.seq;
  e.kind = h.kind;
  e.timestamp_ns = h.timestamp_ns;
  e.message_bytes = message_bytes;
  e.raw_body_bytes = raw_body_bytes;
  e.objects = h.objects;
  e.bytes = h.bytes;
  e.types = h.types;
  e.rss_bytes = h.rss_bytes;
  e.crossed_pct = h.memory.crossed_pct;
  return e;
}

// A segment record's payload: 'S', received time, then the message as received.
constexpr size_t kSegmentPrefix = 9;

std::string SegmentPrefix(int64_t received_ns) {
  PayloadWriter w;
  w.U8('S').I64(received_ns);
  return std::move(w.bytes());
}

// What may start each kind of file's records: checked before a CRC when resynchronizing.
ScanOptions Tagged(std::string_view tags) {
  ScanOptions options;
  options.plausible = TagIs(tags);
  return options;
}

// A segment record: 'S', the received time, then a snapshot message.
ScanOptions SegmentRecords() {
  ScanOptions options;
  options.plausible = [](std::string_view head) {
    return head.size() >= kSegmentPrefix + 4 && head[0] == 'S' &&
           head.substr(kSegmentPrefix, 4) == std::string_view(snapshot::kMagic, 4);
  };
  return options;
}

std::string Describe(const Damage& d) {
  return std::to_string(d.end - d.begin) + " damaged bytes at offset " + std::to_string(d.begin);
}

// Framed records of `file` after a header, in one buffer written by one Append.
std::string Framed(std::initializer_list<std::string_view> payloads) {
  std::string out;
  for (std::string_view p : payloads) out.append(RecordHeader(p)).append(p);
  return out;
}

}  // namespace

std::string IdentityKey(const snapshot::Identity& identity) {
  return identity.service + '\x1f' + identity.host + '\x1f' + std::to_string(identity.pid) +
         '\x1f' + std::to_string(identity.start_time_ns);
}

struct Store::Segment {
  Kind kind = Kind::kSummary;
  uint64_t bytes = 0;  // Segment and index file.
  uint64_t snapshots = 0;
  int64_t newest_received_ns = 0;
};

struct Store::OpenFile {
  uint64_t id = 0;
  int64_t created_ns = 0;
  std::shared_ptr<WritableFile> segment;
  std::shared_ptr<WritableFile> index;
};

struct Store::AgentState {
  std::deque<uint64_t> recent[2];  // Segment ids of the newest snapshots, per kind.
  std::deque<uint64_t> memory[2];  // ...and of the newest taken for a memory threshold.
  // The last kSeqMemory (sequence number, ticket) stored, oldest first.
  std::deque<std::pair<uint64_t, uint64_t>> seqs;
};

Store::Store(std::string dir, StoreOptions options)
    : dir_(std::move(dir)), options_(std::move(options)), fs_(*options_.fs) {}

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir, StoreOptions options,
                                           int64_t now_ns) {
  std::unique_ptr<Store> store(new Store(dir, std::move(options)));
  if (auto r = store->Recover(now_ns); !r) return std::unexpected(r.error());
  store->sync_thread_ = std::thread([s = store.get()] { s->SyncLoop(); });
  return store;
}

Store::~Store() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  if (sync_thread_.joinable()) sync_thread_.join();
}

void Store::Log(const std::string& line) const {
  if (options_.log) options_.log(line);
}

Result<std::shared_ptr<WritableFile>> Store::CreateFileLocked(const std::string& path,
                                                              std::string_view magic,
                                                              int64_t now_ns) {
  auto file = fs_.Create(path);
  if (!file) return std::unexpected(file.error());
  std::shared_ptr<WritableFile> shared = std::move(*file);
  if (auto r = shared->Append(FileHeader(magic, now_ns)); !r) {
    (void)fs_.RemoveIfUnused(path);
    return std::unexpected(r.error());
  }
  dirty_dirs_.insert(path.substr(0, path.rfind('/')));
  MarkDirtyLocked(shared);
  return shared;
}

void Store::MarkDirtyLocked(const std::shared_ptr<WritableFile>& file) {
  if (std::find(dirty_.begin(), dirty_.end(), file) == dirty_.end()) dirty_.push_back(file);
}

Result<void> Store::Recover(int64_t now_ns) {
  for (const char* sub : {"", "/summary", "/graph", "/series"}) {
    if (auto r = fs_.CreateDirs(dir_ + sub); !r) return r;
  }
  auto lock = fs_.Lock(dir_ + "/LOCK");
  if (!lock) return std::unexpected(lock.error());
  lock_ = std::move(*lock);
  std::lock_guard guard(mutex_);

  auto agents = RecoverAgentsLocked(now_ns);
  if (!agents) return std::unexpected(agents.error());

  // Every file id ever used is below the next one, before recovery creates any file.
  for (const char* sub : {"/summary", "/graph", "/series"}) {
    auto names = fs_.List(dir_ + sub);
    if (!names) return std::unexpected(names.error());
    for (const std::string& name : *names) {
      if (name.size() >= 16 && name.find_first_not_of("0123456789") == 16) {
        next_file_id_ = std::max<uint64_t>(next_file_id_, std::stoull(name.substr(0, 16)) + 1);
      }
    }
  }

  // Every index first: agent ids are never reused, so the next one is past every id any
  // index names, whatever agents.log still holds.
  std::vector<SegmentIndex> indexes;
  for (Kind kind : {Kind::kSummary, Kind::kGraph}) {
    const std::string sub = dir_ + "/" + KindDir(kind);
    auto names = fs_.List(sub);
    if (!names) return std::unexpected(names.error());
    std::set<uint64_t> segment_ids;
    std::set<uint64_t> index_ids;
    for (const std::string& name : *names) {
      if (auto id = FileId(name, "seg")) segment_ids.insert(*id);
      if (auto id = FileId(name, "idx")) index_ids.insert(*id);
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
        (void)fs_.RemoveIfUnused(sub + "/" + name);
      }
    }
    for (uint64_t id : index_ids) {
      if (!segment_ids.count(id)) {
        // Retention removes a segment before its index: finish what it started.
        Log(sub + "/" + FileName(id, "idx") + ": removed, its segment is gone");
        (void)fs_.RemoveIfUnused(sub + "/" + FileName(id, "idx"));
      }
    }
    for (uint64_t id : segment_ids) {
      auto index = LoadIndexLocked(kind, id);
      if (!index) return std::unexpected(index.error());
      for (const IndexEntry& e : index->entries) {
        next_agent_id_ = std::max(next_agent_id_, e.agent + 1);
      }
      indexes.push_back(std::move(*index));
    }
  }
  RecoverLostAgentsLocked(indexes);
  for (SegmentIndex& index : indexes) {
    if (auto r = RecoverSegment(std::move(index)); !r) return r;
  }
  return RecoverSeries();
}

Result<bool> Store::RecoverAgentsLocked(int64_t now_ns) {
  // agents.log is small: it is read and rewritten at every start, so the writer never appends
  // to a file a crash may have torn. A damaged record costs only its own agent, whose
  // identity RecoverLostAgentsLocked reads back from its snapshots.
  std::vector<AgentRecord> agents;
  const std::string agents_path = dir_ + "/agents.log";
  if (auto size = fs_.Size(agents_path); size && *size > 0) {
    auto head = fs_.Read(agents_path, 0, kFileHeaderSize);
    if (!head) return std::unexpected(head.error());
    if (auto header = ReadFileHeader(*head, kIndexMagic); !header) {
      if (head->size() >= kFileHeaderSize) return Fail(agents_path + ": ", header.error());
    } else {
      auto scanned = ScanFile(fs_, agents_path, kFileHeaderSize, *size, Tagged("A"),
                              [&](uint64_t, std::string_view payload) {
                                if (auto a = DecodeAgent(payload)) agents.push_back(*a);
                              });
      if (!scanned) return std::unexpected(scanned.error());
      for (const Damage& d : scanned->damaged) {
        Log(agents_path + ": skipped " + Describe(d) +
            "; the identities there are read back from the snapshots");
      }
      if (scanned->end < *size) {
        Log(agents_path + ": dropped a torn tail of " + std::to_string(*size - scanned->end) +
            " bytes left by a crash");
      }
    }
  }
  const std::string agents_tmp = agents_path + ".tmp";
  (void)fs_.RemoveIfUnused(agents_tmp);
  auto agents_file = CreateFileLocked(agents_tmp, kIndexMagic, now_ns);
  if (!agents_file) return std::unexpected(agents_file.error());
  agents_file_ = *agents_file;
  std::string all;
  for (const AgentRecord& a : agents) {
    all += Framed({EncodeAgent(a.id, a.identity)});
    agent_ids_[IdentityKey(a.identity)] = a.id;
    agent_names_.insert(a.id);
    agent_states_[a.id];
    next_agent_id_ = std::max(next_agent_id_, a.id + 1);
  }
  if (auto r = agents_file_->Append(all); !r) return std::unexpected(r.error());
  if (auto r = agents_file_->Sync(); !r) return std::unexpected(r.error());
  if (auto r = fs_.Rename(agents_tmp, agents_path); !r) return std::unexpected(r.error());
  return true;
}

void Store::RecoverLostAgentsLocked(const std::vector<SegmentIndex>& indexes) {
  // Agent ids the indexes name but agents.log lost: every record names its agent fully.
  std::map<uint32_t, std::vector<const IndexEntry*>> lost;
  for (const SegmentIndex& index : indexes) {
    for (const IndexEntry& e : index.entries) {
      auto& tries = lost[e.agent];
      if (!agent_names_.count(e.agent) && tries.size() < 4) tries.push_back(&e);
    }
  }
  for (const auto& [agent, entries] : lost) {
    if (entries.empty()) continue;
    std::optional<snapshot::Identity> identity;
    for (const IndexEntry* e : entries) {
      auto message = ReadMessage(dir_, *e, fs_);
      auto header = message ? snapshot::DecodeHeader(*message) : Result<snapshot::Header>();
      if (message && header) {
        identity = header->identity;
        break;
      }
    }
    if (!identity) {
      Log("agent " + std::to_string(agent) +
          ": not in agents.log, and none of its snapshots could be read to name it");
      continue;
    }
    if (auto r = agents_file_->Append(Framed({EncodeAgent(agent, *identity)})); !r) {
      (void)agents_file_->Truncate(agents_file_->size());
      Log("agent " + std::to_string(agent) + ": cannot record its identity: " + r.error().message);
      continue;
    }
    MarkDirtyLocked(agents_file_);
    agent_ids_.try_emplace(IdentityKey(*identity), agent);
    agent_names_.insert(agent);
    agent_states_[agent];
    Log("agent " + std::to_string(agent) + " (" + identity->service + "/" + identity->host + "/" +
        std::to_string(identity->pid) + "): identity read back from its snapshots");
  }
}

Result<Store::SegmentIndex> Store::LoadIndexLocked(Kind kind, uint64_t id) {
  SegmentIndex index;
  index.kind = kind;
  index.id = id;
  const std::string index_path = dir_ + "/" + KindDir(kind) + "/" + FileName(id, "idx");
  auto size = fs_.Size(index_path);
  auto head = size ? fs_.Read(index_path, 0, kFileHeaderSize) : Result<std::string>();
  if (!size || !head || !ReadFileHeader(*head, kIndexMagic)) {
    index.rescan = true;  // No usable index: every record of the segment is indexed again.
    return index;
  }
  auto scanned = ScanFile(fs_, index_path, kFileHeaderSize, *size, Tagged("E"),
                          [&](uint64_t, std::string_view payload) {
                            if (auto e = DecodeEntry(payload)) index.entries.push_back(*e);
                          });
  if (!scanned) return std::unexpected(scanned.error());
  if (!scanned->damaged.empty()) {
    // Entries lost in the middle: the records they listed are found again by a full scan.
    Log(index_path + ": " + Describe(scanned->damaged.front()) +
        "; the segment's records are indexed again");
    index.rescan = true;
  }
  index.rewrite = scanned->end < *size || index.rescan;
  return index;
}

void Store::QuarantineLocked(const std::string& path, const Damage& damage) {
  const std::string dir = dir_ + "/quarantine";
  const std::string name = path.substr(dir_.size() + 1);
  std::string flat = name;
  std::replace(flat.begin(), flat.end(), '/', '-');
  const std::string copy =
      dir + "/" + flat + "." + std::to_string(damage.begin) + "-" + std::to_string(damage.end);
  const uint64_t keep = std::min<uint64_t>(damage.end - damage.begin, kMaxQuarantineBytes);
  auto bytes = fs_.Read(path, damage.begin, keep);
  std::string where = "not copied";
  if (bytes && fs_.CreateDirs(dir) && !fs_.Size(copy)) {
    if (auto file = fs_.Create(copy); file && (*file)->Append(*bytes) && (*file)->Sync()) {
      where = "copied to " + copy.substr(dir_.size() + 1);
    }
  }
  ++quarantined_;
  Log(name + ": skipped " + Describe(damage) + " between intact records (" + where +
      "); every intact record after it is kept");
}

Result<void> Store::RecoverSegment(SegmentIndex index) {
  const Kind kind = index.kind;
  const uint64_t id = index.id;
  const std::string sub = dir_ + "/" + KindDir(kind);
  const std::string segment_path = sub + "/" + FileName(id, "seg");
  const std::string index_path = sub + "/" + FileName(id, "idx");
  auto head = fs_.Read(segment_path, 0, kFileHeaderSize);
  if (!head) return std::unexpected(head.error());
  if (head->size() < kFileHeaderSize) {
    Log(segment_path + ": removed, a crash cut it off inside its file header");
    (void)fs_.RemoveIfUnused(index_path);
    (void)fs_.RemoveIfUnused(segment_path);
    return {};
  }
  if (auto header = ReadFileHeader(*head, kSegmentMagic); !header) {
    return Fail(segment_path + ": ", header.error());
  }
  auto segment_size = fs_.Size(segment_path);
  if (!segment_size) return std::unexpected(segment_size.error());

  std::vector<IndexEntry>& entries = index.entries;
  bool rewrite_index = index.rewrite;
  if (index.rescan) entries.clear();
  // An entry past the end of its segment was written while the segment's tail was lost.
  const size_t listed = entries.size();
  std::erase_if(entries, [&](const IndexEntry& e) {
    return e.offset + kRecordHeaderSize + e.record_bytes > *segment_size;
  });
  if (entries.size() != listed) {
    Log(index_path + ": dropped " + std::to_string(listed - entries.size()) +
        " entries past the end of the segment");
    rewrite_index = true;
  }
  uint64_t indexed_end = kFileHeaderSize;
  for (const IndexEntry& e : entries) {
    indexed_end = std::max(indexed_end, e.offset + kRecordHeaderSize + e.record_bytes);
  }

  // Records written after the last index entry: index them from the messages themselves.
  size_t added = 0;
  std::vector<Damage> undecodable;
  auto scanned =
      ScanFile(fs_, segment_path, indexed_end, *segment_size, SegmentRecords(),
               [&](uint64_t offset, std::string_view payload) {
                 PayloadReader r(payload.substr(0, kSegmentPrefix));
                 r.U8();
                 const int64_t received_ns = r.I64();
                 const std::string_view message = payload.substr(kSegmentPrefix);
                 auto envelope = snapshot::DecodeEnvelope(message);
                 auto header = snapshot::DecodeHeader(message);
                 auto agent = header ? AgentIdLocked(header->identity) : Result<uint32_t>();
                 if (!envelope || !header || header->kind != kind || !agent) {
                   // An intact frame whose message does not read: kept aside, not a torn tail.
                   undecodable.push_back({offset, offset + kRecordHeaderSize + payload.size()});
                   return;
                 }
                 IndexEntry e = EntryFor(*header, message.size(), envelope->raw_body_bytes);
                 e.agent = *agent;
                 e.received_ns = received_ns;
                 e.segment = id;
                 e.offset = offset;
                 e.record_bytes = static_cast<uint32_t>(payload.size());
                 entries.push_back(e);
                 if (kind == Kind::kSummary) {
                   if (auto decoded = snapshot::Decode(message)) {
                     (void)AppendSeriesLocked(*agent, decoded->header, decoded->types, received_ns);
                   }
                 }
                 ++added;
               });
  if (!scanned) return std::unexpected(scanned.error());
  for (const Damage& d : scanned->damaged) QuarantineLocked(segment_path, d);
  for (const Damage& d : undecodable) QuarantineLocked(segment_path, d);
  if (added > 0) {
    Log(segment_path + ": indexed " + std::to_string(added) +
        " snapshots written after their index entries");
    rewrite_index = true;
  }
  const uint64_t valid_end = scanned->end;
  if (valid_end < *segment_size) {
    Log(segment_path + ": truncated a torn tail of " + std::to_string(*segment_size - valid_end) +
        " bytes left by a crash");
    if (auto r = fs_.Truncate(segment_path, valid_end); !r) return r;
  }
  uint64_t index_size = kFileHeaderSize;
  if (rewrite_index) {
    const std::string tmp = index_path + ".tmp";
    auto file = CreateFileLocked(tmp, kIndexMagic, 0);
    if (!file) return std::unexpected(file.error());
    std::string all;
    for (const IndexEntry& e : entries) all += Framed({EncodeEntry(e)});
    if (auto r = (*file)->Append(all); !r) return r;
    if (auto r = (*file)->Sync(); !r) return r;
    if (auto r = fs_.Rename(tmp, index_path); !r) return r;
    index_size = (*file)->size();
  } else if (auto size = fs_.Size(index_path)) {
    index_size = *size;
  }

  Segment& segment = segments_[id];
  segment.kind = kind;
  segment.bytes = valid_end + index_size;
  for (const IndexEntry& e : entries) NoteEntryLocked(e, segment);
  return {};
}

Result<void> Store::RecoverSeries() {
  const std::string sub = dir_ + "/series";
  auto names = fs_.List(sub);
  if (!names) return std::unexpected(names.error());
  std::set<uint64_t> ids;
  for (const std::string& name : *names) {
    if (auto id = FileId(name, "log"); id && *id != series_id_) ids.insert(*id);  // Not ours.
  }
  for (uint64_t id : ids) {
    const std::string path = sub + "/" + FileName(id, "log");
    auto bytes = fs_.Read(path, 0, id == *ids.rbegin() ? 0 : kFileHeaderSize);
    if (!bytes) return std::unexpected(bytes.error());
    auto created = ReadFileHeader(*bytes, kSeriesMagic);
    if (!created) {
      if (bytes->size() >= kFileHeaderSize) return Fail(path + ": ", created.error());
      Log(path + ": removed, a crash cut it off inside its file header");
      (void)fs_.RemoveIfUnused(path);
      continue;
    }
    series_files_[id] = *created;
    if (id == *ids.rbegin()) {
      const uint64_t end = ScanRecords(std::string_view(*bytes).substr(kFileHeaderSize),
                                       kFileHeaderSize, [](uint64_t, std::string_view) {});
      if (end < bytes->size()) {
        Log(path + ": truncated a torn tail of " + std::to_string(bytes->size() - end) +
            " bytes left by a crash");
        if (auto r = fs_.Truncate(path, end); !r) return r;
      }
      series_bytes_ += end;
    } else if (auto size = fs_.Size(path)) {
      series_bytes_ += *size;
    }
  }
  return {};
}

void Store::NoteEntryLocked(const IndexEntry& entry, Segment& segment) {
  segment.snapshots += 1;
  segment.newest_received_ns = std::max(segment.newest_received_ns, entry.received_ns);
  AgentState& state = agent_states_[entry.agent];
  state.seqs.emplace_back(entry.seq, 0);  // 0: stored before this process opened the store.
  if (state.seqs.size() > kSeqMemory) state.seqs.pop_front();
  const int slot = KindSlot(entry.kind);
  for (auto* recent : {&state.recent[slot], &state.memory[slot]}) {
    if (recent == &state.memory[slot] && entry.crossed_pct == 0) continue;
    recent->push_back(entry.segment);
    if (recent->size() > kKeepLastLimit) recent->pop_front();
  }
}

Result<uint32_t> Store::AgentIdLocked(const snapshot::Identity& identity) {
  const std::string key = IdentityKey(identity);
  if (auto found = agent_ids_.find(key); found != agent_ids_.end()) return found->second;
  const uint32_t id = next_agent_id_;
  if (auto r = agents_file_->Append(Framed({EncodeAgent(id, identity)})); !r) {
    (void)agents_file_->Truncate(agents_file_->size());
    return std::unexpected(r.error());
  }
  MarkDirtyLocked(agents_file_);
  agent_ids_[key] = id;
  agent_names_.insert(id);
  agent_states_[id];
  ++next_agent_id_;
  return id;
}

Result<Store::OpenFile*> Store::ActiveLocked(Kind kind, int64_t now_ns) {
  std::unique_ptr<OpenFile>& active = active_[KindSlot(kind)];
  if (active && active->segment->size() < options_.segment_bytes &&
      now_ns - active->created_ns < options_.segment_age_ns) {
    return active.get();
  }
  active.reset();  // The sync thread still holds it if it has unsynced writes.
  const uint64_t id = next_file_id_++;
  const std::string sub = dir_ + "/" + KindDir(kind);
  auto segment = CreateFileLocked(sub + "/" + FileName(id, "seg"), kSegmentMagic, now_ns);
  if (!segment) return std::unexpected(segment.error());
  auto index = CreateFileLocked(sub + "/" + FileName(id, "idx"), kIndexMagic, now_ns);
  if (!index) {
    (void)fs_.RemoveIfUnused(sub + "/" + FileName(id, "seg"));
    return std::unexpected(index.error());
  }
  active = std::make_unique<OpenFile>(OpenFile{id, now_ns, *segment, *index});
  Segment& meta = segments_[id];
  meta.kind = kind;
  meta.bytes = 2 * kFileHeaderSize;
  return active.get();
}

Result<void> Store::SeriesFileLocked(int64_t now_ns) {
  if (series_file_ && series_file_->size() < options_.segment_bytes) return {};
  const uint64_t id = next_file_id_++;
  auto file = CreateFileLocked(dir_ + "/series/" + FileName(id, "log"), kSeriesMagic, now_ns);
  if (!file) return std::unexpected(file.error());
  series_file_ = *file;
  series_id_ = id;
  series_types_.clear();
  series_names_.clear();
  series_files_[id] = now_ns;
  series_bytes_ += kFileHeaderSize;
  return {};
}

Result<bool> Store::AppendGoodbye(const snapshot::Identity& identity, uint64_t seq,
                                  int64_t timestamp_ns, int64_t now_ns) {
  std::lock_guard lock(mutex_);
  auto known = agent_ids_.find(IdentityKey(identity));
  if (known == agent_ids_.end()) return false;
  if (auto opened = SeriesFileLocked(now_ns); !opened) return std::unexpected(opened.error());
  PayloadWriter record;
  record.U8('G').U32(known->second).U64(seq).I64(timestamp_ns);
  const std::string out = Framed({record.bytes()});
  const uint64_t before = series_file_->size();
  if (auto r = series_file_->Append(out); !r) {
    (void)series_file_->Truncate(before);
    return std::unexpected(r.error());
  }
  series_bytes_ += out.size();
  MarkDirtyLocked(series_file_);
  if (options_.on_series) {
    SeriesRecord r;
    r.agent = known->second;
    r.seq = seq;
    r.timestamp_ns = timestamp_ns;
    r.goodbye = true;
    r.names = &series_names_;
    r.file_id = series_id_;
    r.offset = before;
    r.length = static_cast<uint32_t>(out.size());
    options_.on_series(r, identity.service);
  }
  return true;
}

Result<void> Store::AppendSeriesLocked(uint32_t agent, const snapshot::Header& header,
                                       const std::vector<snapshot::TypeStat>& types,
                                       int64_t now_ns) {
  if (auto opened = SeriesFileLocked(now_ns); !opened) return opened;
  std::string out;
  PayloadWriter point;
  point.U8('P').U32(agent).U64(header.seq).I64(header.timestamp_ns).U64(header.rss_bytes);
  point.U32(static_cast<uint32_t>(types.size()));
  std::vector<std::pair<std::string, uint32_t>> added;
  std::vector<SeriesFigures> figures;  // As written, for on_series.
  if (options_.on_series) figures.reserve(types.size());
  for (const snapshot::TypeStat& t : types) {
    auto found = series_types_.find(t.name);
    uint32_t type_id;
    if (found == series_types_.end()) {
      type_id = static_cast<uint32_t>(series_types_.size() + added.size());
      PayloadWriter name;
      name.U8('T').U32(type_id).Str(t.name);
      out += Framed({name.bytes()});
      added.emplace_back(t.name, type_id);
    } else {
      type_id = found->second;
    }
    point.Var(type_id).Var(t.count).Var(t.bytes);
    if (options_.on_series) figures.push_back({type_id, t.count, t.bytes});
  }
  const uint64_t point_at = series_file_->size() + out.size();
  const std::string point_frame = Framed({point.bytes()});
  out += point_frame;
  const uint64_t before = series_file_->size();
  if (auto r = series_file_->Append(out); !r) {
    (void)series_file_->Truncate(before);
    return r;
  }
  for (const auto& [name, id] : added) {
    series_types_.emplace(name, id);
    series_names_.push_back(name);
  }
  series_bytes_ += out.size();
  MarkDirtyLocked(series_file_);
  if (options_.on_series) {
    SeriesRecord r{.agent = agent,
                   .seq = header.seq,
                   .timestamp_ns = header.timestamp_ns,
                   .rss_bytes = header.rss_bytes,
                   .goodbye = false,
                   .types = figures,
                   .names = &series_names_,
                   .file_id = series_id_,
                   .offset = point_at,
                   .length = static_cast<uint32_t>(point_frame.size())};
    options_.on_series(r, header.identity.service);
  }
  return {};
}

Result<uint64_t> Store::Append(std::string_view message, const snapshot::Header& header,
                               const std::vector<snapshot::TypeStat>& types, int64_t received_ns,
                               bool* duplicate) {
  auto envelope = snapshot::DecodeEnvelope(message);
  if (!envelope) return std::unexpected(envelope.error());
  if (message.size() > kMaxRecordBytes - kSegmentPrefix) {
    return Fail(snapshot::Code::kLimit,
                "a message of " + std::to_string(message.size()) + " bytes is too large to store");
  }
  std::lock_guard lock(mutex_);
  auto agent = AgentIdLocked(header.identity);
  if (!agent) return std::unexpected(agent.error());
  if (duplicate) *duplicate = false;
  for (const auto& [seq, ticket] : agent_states_[*agent].seqs) {
    if (seq != header.seq) continue;
    if (duplicate) *duplicate = true;
    return ticket;
  }
  auto active = ActiveLocked(header.kind, received_ns);
  if (!active) return std::unexpected(active.error());
  OpenFile& file = **active;

  const std::string prefix = SegmentPrefix(received_ns);
  PayloadWriter frame;
  frame.U32(static_cast<uint32_t>(prefix.size() + message.size()));
  frame.U32(Crc32cExtend(Crc32c(prefix), message));
  frame.bytes() += prefix;
  IndexEntry entry = EntryFor(header, message.size(), envelope->raw_body_bytes);
  entry.agent = *agent;
  entry.received_ns = received_ns;
  entry.segment = file.id;
  entry.offset = file.segment->size();
  entry.record_bytes = static_cast<uint32_t>(prefix.size() + message.size());
  const uint64_t index_before = file.index->size();

  // All or nothing: on any failure the files are cut back to where they were (the series file
  // cuts itself back), so a full disk leaves no partial record for a reader to trip on.
  Result<void> written = file.segment->Append(frame.bytes(), message);
  if (written) written = file.index->Append(Framed({EncodeEntry(entry)}));
  if (written && header.kind == Kind::kSummary) {
    written = AppendSeriesLocked(*agent, header, types, received_ns);
  }
  if (!written) {
    const bool cut = file.segment->Truncate(entry.offset).has_value() &&
                     file.index->Truncate(index_before).has_value();
    if (!cut) active_[KindSlot(header.kind)].reset();  // Never append after a torn record.
    return std::unexpected(written.error());
  }
  MarkDirtyLocked(file.segment);
  MarkDirtyLocked(file.index);
  Segment& segment = segments_[file.id];
  segment.bytes += file.segment->size() - entry.offset + file.index->size() - index_before;
  NoteEntryLocked(entry, segment);
  const uint64_t ticket = ++appended_;
  agent_states_[*agent].seqs.back().second = ticket;  // NoteEntryLocked pushed it.
  work_.notify_one();
  return ticket;
}

void Store::SyncLoop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_.wait(lock, [&] { return stopping_ || appended_ > durable_; });
    if (appended_ == durable_) break;  // Stopping with nothing left to sync.
    const uint64_t target = appended_;
    std::vector<std::shared_ptr<WritableFile>> files;
    files.swap(dirty_);
    std::set<std::string> dirs;
    dirs.swap(dirty_dirs_);
    lock.unlock();
    bool ok = true;
    if (options_.sync) {
      for (const auto& file : files) {
        if (auto r = file->Sync(); !r) {
          ok = false;
          Log(r.error().message);
        }
      }
      for (const std::string& d : dirs) {
        if (auto r = fs_.SyncDir(d); !r) {
          ok = false;
          Log(r.error().message);
        }
      }
    }
    files.clear();  // Closes rolled files once synced.
    lock.lock();
    const uint64_t from = durable_;
    durable_ = target;
    if (!ok) {
      // What was written may be lost: start new files rather than append after a hole.
      active_[0].reset();
      active_[1].reset();
      series_file_.reset();
    }
    lock.unlock();
    if (options_.on_durable) options_.on_durable(from, target, ok);
    lock.lock();
    synced_.notify_all();
  }
}

uint64_t Store::durable_ticket() const {
  std::lock_guard lock(mutex_);
  return durable_;
}

void Store::Flush() {
  std::unique_lock lock(mutex_);
  const uint64_t target = appended_;
  work_.notify_one();
  synced_.wait(lock, [&] { return durable_ >= target; });
}

RetentionResult Store::ApplyRetention(const RetentionPolicy& summary, const RetentionPolicy& graph,
                                      int64_t now_ns) {
  RetentionResult result;
  std::lock_guard lock(mutex_);
  std::set<uint64_t> kept;  // Segments holding an agent's newest keep_last (keep_memory) ones.
  auto keep_newest = [&kept](const std::deque<uint64_t>& recent, uint32_t keep) {
    keep = std::min<uint32_t>(keep, kKeepLastLimit);
    for (size_t i = recent.size() - std::min<size_t>(recent.size(), keep); i < recent.size(); ++i)
      kept.insert(recent[i]);
  };
  for (const auto& [agent, state] : agent_states_) {
    keep_newest(state.recent[0], summary.keep_last);
    keep_newest(state.recent[1], graph.keep_last);
    keep_newest(state.memory[0], summary.keep_memory);
    keep_newest(state.memory[1], graph.keep_memory);
  }
  for (Kind kind : {Kind::kSummary, Kind::kGraph}) {
    const RetentionPolicy& policy = kind == Kind::kGraph ? graph : summary;
    const std::unique_ptr<OpenFile>& active = active_[KindSlot(kind)];
    uint64_t total = 0;
    for (const auto& [id, s] : segments_) total += s.kind == kind ? s.bytes : 0;
    for (auto it = segments_.begin(); it != segments_.end();) {
      const auto& [id, s] = *it;
      const bool writing = active && active->id == id;
      const bool over_bytes = policy.max_bytes > 0 && total > policy.max_bytes;
      const bool too_old = policy.max_age_ns > 0 &&
                           s.newest_received_ns < now_ns - policy.max_age_ns && !kept.count(id);
      if (s.kind != kind || writing || !(over_bytes || too_old)) {
        ++it;
        continue;
      }
      const std::string base = dir_ + "/" + KindDir(kind) + "/";
      auto removed = fs_.RemoveIfUnused(base + FileName(id, "seg"));
      if (!removed || !*removed) {
        result.files_in_use += 1;
        if (!removed) Log(removed.error().message);
        ++it;
        continue;
      }
      (void)fs_.RemoveIfUnused(base + FileName(id, "idx"));
      total -= s.bytes;
      result.files_removed += 2;
      result.snapshots_removed += s.snapshots;
      result.bytes_removed += s.bytes;
      it = segments_.erase(it);
    }
  }
  // A series file holds points up to the creation of the next one.
  if (summary.max_age_ns > 0) {
    for (auto it = series_files_.begin(); it != series_files_.end();) {
      auto next = std::next(it);
      if (next == series_files_.end() || it->first == series_id_ ||
          next->second >= now_ns - summary.max_age_ns) {
        break;
      }
      const std::string path = dir_ + "/series/" + FileName(it->first, "log");
      auto size = fs_.Size(path);
      auto removed = fs_.RemoveIfUnused(path);
      if (!removed || !*removed) break;
      result.files_removed += 1;
      if (size) series_bytes_ -= std::min(series_bytes_, *size);
      it = series_files_.erase(it);
    }
  }
  // Forget agents with nothing stored: their state is all that grows with restarts.
  std::set<uint64_t> live;
  for (const auto& [id, s] : segments_) live.insert(id);
  for (auto& [agent, state] : agent_states_) {
    for (auto* recent : {&state.recent[0], &state.recent[1], &state.memory[0], &state.memory[1]}) {
      std::erase_if(*recent, [&](uint64_t id) { return !live.count(id); });
    }
  }
  return result;
}

StoreStats Store::stats() const {
  std::lock_guard lock(mutex_);
  StoreStats stats;
  for (const auto& [id, s] : segments_) {
    KindStats& k = s.kind == Kind::kGraph ? stats.graph : stats.summary;
    k.snapshots += s.snapshots;
    k.bytes += s.bytes;
    k.files += 2;
  }
  stats.series_bytes = series_bytes_;
  stats.agents = agent_ids_.size();
  stats.quarantined = quarantined_;
  return stats;
}

Result<std::map<uint32_t, AgentRecord>> ReadAgents(const std::string& dir, FileSystem& fs) {
  std::map<uint32_t, AgentRecord> out;
  const std::string path = dir + "/agents.log";
  auto size = fs.Size(path);
  if (!size) return Fail(dir + " is not a tidemark store: ", size.error());
  auto head = fs.Read(path, 0, kFileHeaderSize);
  if (!head) return Fail(dir + " is not a tidemark store: ", head.error());
  if (auto header = ReadFileHeader(*head, kIndexMagic); !header) {
    return Fail(path + ": ", header.error());
  }
  auto scanned = ScanFile(fs, path, kFileHeaderSize, *size, Tagged("A"),
                          [&](uint64_t, std::string_view payload) {
                            if (auto a = DecodeAgent(payload)) out[a->id] = *a;
                          });
  if (!scanned) return std::unexpected(scanned.error());
  return out;
}

Result<ListingCache::Listing> ListingCache::Read(const std::string& dir, FileSystem& fs) {
  Listing out;
  auto agents = ReadAgents(dir, fs);
  if (!agents) return std::unexpected(agents.error());
  out.agents = std::move(*agents);
  std::lock_guard lock(mutex_);
  std::set<std::string> present;
  for (Kind kind : {Kind::kSummary, Kind::kGraph}) {
    const std::string sub = dir + "/" + KindDir(kind);
    auto names = fs.List(sub);
    if (!names) return std::unexpected(names.error());
    for (const std::string& name : *names) {
      if (!FileId(name, "idx")) continue;
      const std::string path = sub + "/" + name;
      auto size = fs.Size(path);
      if (!size) continue;  // Removed meanwhile.
      File& file = files_[path];
      present.insert(path);
      if (file.scanned_to == 0) {
        auto head = fs.Read(path, 0, kFileHeaderSize);
        if (!head || !ReadFileHeader(*head, kIndexMagic)) continue;  // Not yet written.
        file.scanned_to = kFileHeaderSize;
      }
      if (*size > file.scanned_to) {
        auto scanned =
            ScanFile(fs, path, file.scanned_to, *size, Tagged("E"),
                     [&](uint64_t offset, std::string_view payload) {
                       auto e = DecodeEntry(payload);
                       if (!e || offset > UINT32_MAX) return;
                       file.records[e->agent].emplace_back(
                           static_cast<uint32_t>(offset),
                           static_cast<uint32_t>(kRecordHeaderSize + payload.size()));
                       AgentListing& a = file.agents[e->agent];
                       if (a.snapshots++ == 0 || e->timestamp_ns > a.newest.timestamp_ns) {
                         a.newest = *e;
                       }
                     });
        if (scanned) file.scanned_to = scanned->end;
      }
      for (const auto& [agent, a] : file.agents) {
        AgentListing& all = out.listed[agent];
        if (all.snapshots == 0 || a.newest.timestamp_ns > all.newest.timestamp_ns) {
          all.newest = a.newest;
        }
        all.snapshots += a.snapshots;
        if (!out.agents.count(agent)) out.unnamed = true;
      }
    }
  }
  std::erase_if(files_, [&](const auto& f) { return !present.count(f.first); });
  return out;
}

Result<Catalog> ListingCache::CatalogFor(const std::string& dir,
                                         const std::vector<std::string>& refs, FileSystem& fs) {
  auto listing = Read(dir, fs);
  if (!listing) return std::unexpected(listing.error());
  Catalog catalog;
  catalog.agents = std::move(listing->agents);
  std::set<uint32_t> agents;
  for (const std::string& ref : refs) {
    // The agent part as ResolveRef reads it, and the whole ref (an agent standing for its
    // newest snapshot).
    const auto at = AgentPartEnd(ref);
    bool named = false;
    for (const std::string& name : {ref, at == std::string::npos ? ref : ref.substr(0, at)}) {
      auto ids = ResolveAgent(catalog, name);
      if (!ids) continue;
      named = true;
      agents.insert(ids->front());  // The newest instance: the one a reference means.
    }
    if (!named || listing->unnamed) return ReadCatalog(dir, fs);
  }
  std::vector<std::pair<std::string, std::vector<std::pair<uint64_t, uint32_t>>>> reads;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [path, file] : files_) {
      std::vector<std::pair<uint64_t, uint32_t>> ranges;
      for (uint32_t agent : agents) {
        auto found = file.records.find(agent);
        if (found == file.records.end()) continue;
        ranges.insert(ranges.end(), found->second.begin(), found->second.end());
      }
      if (!ranges.empty()) reads.emplace_back(path, std::move(ranges));
    }
  }
  for (const auto& [path, ranges] : reads) {
    auto bytes = fs.ReadRanges(path, ranges);
    if (!bytes) continue;  // Removed by retention since.
    for (size_t k = 0; k < ranges.size(); ++k) {
      (void)ScanBytes((*bytes)[k], ranges[k].first, Tagged("E"),
                      [&](uint64_t, std::string_view payload) {
                        if (auto e = DecodeEntry(payload)) catalog.entries.push_back(*e);
                      });
    }
  }
  std::sort(catalog.entries.begin(), catalog.entries.end(), [](const auto& a, const auto& b) {
    return std::tuple(KindSlot(a.kind), a.segment, a.offset) <
           std::tuple(KindSlot(b.kind), b.segment, b.offset);
  });
  return catalog;
}

Result<Catalog> ReadCatalog(const std::string& dir, FileSystem& fs) {
  Catalog catalog;
  auto agents = ReadAgents(dir, fs);
  if (!agents) return std::unexpected(agents.error());
  catalog.agents = std::move(*agents);
  for (Kind kind : {Kind::kSummary, Kind::kGraph}) {
    const std::string sub = dir + "/" + KindDir(kind);
    auto names = fs.List(sub);
    if (!names) return std::unexpected(names.error());
    std::sort(names->begin(), names->end());
    std::set<uint64_t> indexes;
    for (const std::string& name : *names) {
      if (auto id = FileId(name, "idx")) indexes.insert(*id);
    }
    for (const std::string& name : *names) {  // Snapshots no listing shows.
      const auto id = FileId(name, "seg");
      if (id && !indexes.count(*id)) {
        catalog.problems.push_back(std::string(KindDir(kind)) + "/" + name +
                                   ": a segment without its index " + FileName(*id, "idx") +
                                   " (its snapshots are listed again once tidemarkd restarts)");
      }
    }
    for (const std::string& name : *names) {
      if (!FileId(name, "idx")) continue;
      const std::string path = sub + "/" + name;
      auto size = fs.Size(path);
      auto head = size ? fs.Read(path, 0, kFileHeaderSize) : Result<std::string>();
      if (!size || !head || !ReadFileHeader(*head, kIndexMagic)) continue;  // Removed or new.
      auto scanned = ScanFile(fs, path, kFileHeaderSize, *size, Tagged("E"),
                              [&](uint64_t, std::string_view payload) {
                                if (auto e = DecodeEntry(payload)) catalog.entries.push_back(*e);
                              });
      if (scanned && !scanned->damaged.empty()) {
        catalog.problems.push_back(path.substr(dir.size() + 1) + ": " +
                                   Describe(scanned->damaged.front()) +
                                   " (the snapshots it listed there are listed again once "
                                   "tidemarkd restarts)");
      }
    }
  }
  // Agents the indexes name and agents.log does not: each snapshot names its agent fully.
  for (const IndexEntry& e : catalog.entries) {
    if (catalog.agents.count(e.agent)) continue;
    auto message = ReadMessage(dir, e, fs);
    auto header = message ? snapshot::DecodeHeader(*message) : Result<snapshot::Header>();
    if (!message || !header) continue;  // Another of its snapshots may do.
    catalog.agents[e.agent] = AgentRecord{e.agent, header->identity};
    catalog.problems.push_back("agent " + std::to_string(e.agent) +
                               ": not in agents.log; named from its snapshots");
  }
  for (const IndexEntry& e : catalog.entries) {
    if (!catalog.agents.count(e.agent)) {
      catalog.problems.push_back("agent " + std::to_string(e.agent) +
                                 ": not in agents.log and no snapshot of it reads");
      catalog.agents[e.agent] = AgentRecord{e.agent, {"(unknown)", "", 0, 0, {}}};
    }
  }
  if (auto quarantined = fs.List(dir + "/quarantine")) {
    for (const std::string& name : *quarantined) {
      catalog.problems.push_back("quarantine/" + name + ": damaged bytes skipped at start");
    }
  }
  return catalog;
}

Result<std::string> ReadMessage(const std::string& dir, const IndexEntry& entry, FileSystem& fs) {
  const std::string path = dir + "/" + KindDir(entry.kind) + "/" + FileName(entry.segment, "seg");
  auto bytes = fs.Read(path, entry.offset, kRecordHeaderSize + entry.record_bytes);
  if (!bytes) {
    return Fail("snapshot seq " + std::to_string(entry.seq) +
                    " is no longer stored (removed by retention?): ",
                bytes.error());
  }
  std::optional<std::string_view> payload;
  ScanRecords(*bytes, entry.offset, [&](uint64_t, std::string_view p) {
    if (!payload) payload = p;
  });
  if (!payload || payload->size() != entry.record_bytes || payload->size() < kSegmentPrefix) {
    return Fail(snapshot::Code::kCorrupt, path + ": record at offset " +
                                              std::to_string(entry.offset) +
                                              " is damaged (length or CRC mismatch)");
  }
  return std::string(payload->substr(kSegmentPrefix));
}

namespace {

// Decodes a 'P' or 'G' payload into `r` (figures into `figures`); false if it is neither or
// does not decode. Only the agent is read when `agent` filters it out.
bool DecodeSeries(std::string_view payload, std::optional<uint32_t> agent, SeriesRecord& r,
                  std::vector<SeriesFigures>& figures) {
  PayloadReader in(payload);
  const uint8_t tag = in.U8();
  if (tag != 'P' && tag != 'G') return false;  // Unknown tags: later additions.
  r.agent = in.U32();
  if (agent && r.agent != *agent) return false;
  r.seq = in.U64();
  r.timestamp_ns = in.I64();
  r.goodbye = tag == 'G';
  figures.clear();
  if (!r.goodbye) {
    r.rss_bytes = in.U64();
    const uint32_t n = in.U32();
    for (uint32_t k = 0; k < n && in.ok(); ++k) {
      const uint32_t id = static_cast<uint32_t>(in.Var());
      const uint64_t count = in.Var();
      figures.push_back({id, count, in.Var()});
    }
  }
  r.types = figures;
  return in.ok();
}

// A 'T' record's id beyond this many past the names so far is damage, not a name.
constexpr uint32_t kMaxTypeIdGap = 1 << 16;

}  // namespace

Result<void> ScanSeries(const std::string& dir, const SeriesFilter& filter,
                        const std::function<void(const SeriesRecord&)>& visit, FileSystem& fs) {
  auto names = fs.List(dir + "/series");
  if (!names) return std::unexpected(names.error());
  std::erase_if(*names, [](const std::string& name) { return !FileId(name, "log"); });
  std::sort(names->begin(), names->end());
  std::vector<SeriesFigures> figures;  // Reused: one allocation for the whole scan.
  for (size_t i = 0; i < names->size(); ++i) {
    const std::string& name = (*names)[i];
    const uint64_t file_id = *FileId(name, "log");
    if (filter.cancel && filter.cancel->load()) break;
    if (file_id < filter.from_file) continue;
    // A file holds points up to the creation of the next one.
    if (i + 1 < names->size() && filter.since_ns != INT64_MIN) {
      auto next = fs.Read(dir + "/series/" + (*names)[i + 1], 0, kFileHeaderSize);
      auto next_created = next ? ReadFileHeader(*next, kSeriesMagic) : Result<int64_t>(0);
      if (next_created && *next_created < filter.since_ns) continue;
    }
    const std::string path = dir + "/series/" + name;
    auto size = fs.Size(path);
    auto head = size ? fs.Read(path, 0, kFileHeaderSize) : Result<std::string>();
    if (!size || !head || !ReadFileHeader(*head, kSeriesMagic)) continue;
    const uint64_t skip_before = file_id == filter.from_file ? filter.from_offset : 0;
    std::vector<std::string> types;
    (void)ScanFile(fs, path, kFileHeaderSize, *size, Tagged("TPG"),
                   [&](uint64_t offset, std::string_view payload) {
                     if (!payload.empty() && payload[0] == 'T') {
                       PayloadReader r(payload.substr(1));
                       const uint32_t id = r.U32();
                       std::string type = r.Str();
                       if (!r.ok() || id >= types.size() + kMaxTypeIdGap) return;
                       if (id >= types.size()) types.resize(id + 1);
                       types[id] = std::move(type);
                       return;
                     }
                     if (offset < skip_before || (filter.cancel && filter.cancel->load())) return;
                     SeriesRecord p;
                     if (!DecodeSeries(payload, filter.agent, p, figures)) return;
                     if (p.timestamp_ns < filter.since_ns) return;
                     p.names = &types;
                     p.file_id = file_id;
                     p.offset = offset;
                     p.length = static_cast<uint32_t>(kRecordHeaderSize + payload.size());
                     visit(p);
                   });
  }
  return {};
}

Result<void> ReadSeriesAt(const std::string& dir, std::span<const SeriesLocation> locations,
                          const std::function<void(const SeriesRecord&)>& visit, FileSystem& fs) {
  std::vector<SeriesFigures> figures;
  std::vector<std::pair<uint64_t, uint32_t>> ranges;
  for (size_t i = 0; i < locations.size();) {
    const uint64_t file_id = locations[i].file_id;
    ranges.clear();
    for (; i < locations.size() && locations[i].file_id == file_id; ++i) {
      ranges.emplace_back(locations[i].offset, locations[i].length);
    }
    auto read = fs.ReadRanges(dir + "/series/" + FileName(file_id, "log"), ranges);
    if (!read) continue;  // Removed by retention since.
    for (size_t k = 0; k < ranges.size(); ++k) {
      (void)ScanBytes((*read)[k], ranges[k].first, ScanOptions{},
                      [&](uint64_t offset, std::string_view payload) {
                        SeriesRecord r;
                        if (offset != ranges[k].first) return;
                        if (!DecodeSeries(payload, std::nullopt, r, figures)) return;
                        r.file_id = file_id;
                        r.offset = offset;
                        r.length = ranges[k].second;
                        visit(r);
                      });
    }
  }
  return {};
}

Result<std::vector<SeriesPoint>> ReadSeries(const std::string& dir, std::optional<uint32_t> agent,
                                            int64_t since_ns, FileSystem& fs) {
  std::vector<SeriesPoint> points;
  auto scanned = ScanSeries(
      dir, SeriesFilter{agent, since_ns},
      [&](const SeriesRecord& r) {
        SeriesPoint p{r.agent, r.seq, r.timestamp_ns, r.rss_bytes, {}, r.goodbye};
        p.types.reserve(r.types.size());
        for (const SeriesFigures& f : r.types) {
          p.types.push_back(TypePoint{f.type < r.names->size() ? (*r.names)[f.type] : std::string(),
                                      f.count, f.bytes});
        }
        points.push_back(std::move(p));
      },
      fs);
  if (!scanned) return std::unexpected(scanned.error());
  return points;
}

}  // namespace tidemark::store
