#include "store/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "snapshot/wire.h"
#include "store/journal.h"
#include "store/log_format.h"
#include "store/references.h"

namespace tidemark::store {
namespace {

namespace fs = std::filesystem;
using snapshot::Kind;
constexpr int64_t kSecond = 1'000'000'000;

snapshot::Snapshot MakeSnapshot(const std::string& service, int64_t pid, uint64_t seq, Kind kind,
                                int types = 3) {
  snapshot::Snapshot s;
  s.header.kind = kind;
  s.header.identity = {service, "host-a", pid, 1000 + pid, {{"env", "test"}}};
  s.header.seq = seq;
  s.header.timestamp_ns = static_cast<int64_t>(seq) * kSecond;
  for (int i = 0; i < types; ++i) {
    s.types.push_back({"mod.Type" + std::to_string(i), seq * 10 + i, seq * 100 + i, 64});
  }
  s.header.types = s.types.size();
  if (kind == Kind::kGraph) {
    s.graph.address = {0x1000, 0x2000};
    s.graph.type = {0, 1};
    s.graph.size = {64, 32};
    s.graph.length = {0, 0};
    s.graph.ref_begin = {0, 1, 1};
    s.graph.refs = {1};
  }
  return s;
}

struct Appended {
  std::string message;
  snapshot::Snapshot snapshot;
};

Appended Make(const std::string& service, int64_t pid, uint64_t seq, Kind kind = Kind::kSummary) {
  Appended a{"", MakeSnapshot(service, pid, seq, kind)};
  a.message = *snapshot::Encode(a.snapshot);
  return a;
}

Result<uint64_t> Put(Store& store, const Appended& a, int64_t received_ns) {
  return store.Append(a.message, a.snapshot.header, a.snapshot.types, received_ns);
}

// Fails every write while `full` is set, after writing half of it, as a full disk does.
class FullDiskFileSystem final : public FileSystem {
 public:
  std::atomic<bool> full{false};

  Result<std::unique_ptr<WritableFile>> Create(const std::string& path) override {
    auto file = Default().Create(path);
    if (!file) return file;
    return std::unique_ptr<WritableFile>(new File(std::move(*file), full));
  }
  Result<std::string> Read(const std::string& p, uint64_t o, uint64_t l) override {
    return Default().Read(p, o, l);
  }
  Result<uint64_t> Size(const std::string& p) override { return Default().Size(p); }
  Result<void> Truncate(const std::string& p, uint64_t s) override {
    return Default().Truncate(p, s);
  }
  Result<std::vector<std::string>> List(const std::string& d) override { return Default().List(d); }
  Result<void> CreateDirs(const std::string& d) override { return Default().CreateDirs(d); }
  Result<void> Rename(const std::string& f, const std::string& t) override {
    return Default().Rename(f, t);
  }
  Result<void> SyncDir(const std::string& d) override { return Default().SyncDir(d); }
  Result<bool> RemoveIfUnused(const std::string& p) override { return Default().RemoveIfUnused(p); }
  Result<std::unique_ptr<FileLock>> Lock(const std::string& p) override {
    return Default().Lock(p);
  }

 private:
  class File final : public WritableFile {
   public:
    File(std::unique_ptr<WritableFile> real, std::atomic<bool>& full)
        : real_(std::move(real)), full_(full) {}
    Result<void> Append(std::string_view a, std::string_view b) override {
      if (full_) {
        (void)real_->Append(a.substr(0, a.size() / 2));  // Half reaches the file, then ENOSPC.
        return Fail("write: No space left on device");
      }
      auto r = real_->Append(a, b);
      if (r) size_ += a.size() + b.size();
      return r;
    }
    Result<void> Truncate(uint64_t size) override {
      auto r = real_->Truncate(size);
      if (r) size_ = size;
      return r;
    }
    Result<void> Sync() override { return real_->Sync(); }
    uint64_t size() const override { return size_; }

   private:
    std::unique_ptr<WritableFile> real_;
    std::atomic<bool>& full_;
    uint64_t size_ = 0;
  };
};

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::path(TEST_TMPDIR) /
        ("store_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
  }

  std::unique_ptr<Store> Open(StoreOptions options = {}, int64_t now = 100 * kSecond) {
    options.log = [this](const std::string& line) { log_ += line + "\n"; };
    auto store = Store::Open(dir_, std::move(options), now);
    EXPECT_TRUE(store) << store.error().message;
    return store ? std::move(*store) : nullptr;
  }

  Catalog ReadAll() {
    auto catalog = ReadCatalog(dir_);
    EXPECT_TRUE(catalog) << catalog.error().message;
    return catalog ? *catalog : Catalog{};
  }

  std::string FileWith(const std::string& sub, const std::string& ext) {
    for (const auto& e : fs::directory_iterator(dir_ / sub)) {
      if (e.path().extension() == ext) return e.path();
    }
    return "";
  }

  fs::path dir_;
  std::string log_;
};

TEST_F(StoreTest, AppendedSnapshotsAreListedReadBackAndTheirSeriesKept) {
  auto store = Open();
  const auto a1 = Make("api", 1, 1), a2 = Make("api", 1, 2), b1 = Make("worker", 2, 1);
  const auto g = Make("api", 1, 3, Kind::kGraph);
  for (const auto* a : {&a1, &a2, &b1, &g}) ASSERT_TRUE(Put(*store, *a, 5 * kSecond));
  store->Flush();

  const Catalog catalog = ReadAll();
  ASSERT_EQ(catalog.agents.size(), 2u);
  ASSERT_EQ(catalog.entries.size(), 4u);
  for (const IndexEntry& e : catalog.entries) {
    auto message = ReadMessage(dir_, e);
    ASSERT_TRUE(message) << message.error().message;
    auto decoded = snapshot::Decode(*message);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->header.seq, e.seq);
    EXPECT_EQ(decoded->header.kind, e.kind);
    EXPECT_EQ(catalog.agents.at(e.agent).identity.service, decoded->header.identity.service);
  }
  EXPECT_EQ(catalog.agents.begin()->second.identity.labels.at(0).second, "test");

  auto series = ReadSeries(dir_);
  ASSERT_TRUE(series);
  ASSERT_EQ(series->size(), 3u);  // Summaries only.
  EXPECT_EQ(series->at(1).types.at(2).type, "mod.Type2");
  EXPECT_EQ(series->at(1).types.at(2).bytes, 202u);
  EXPECT_EQ(store->stats().summary.snapshots, 3u);
  EXPECT_EQ(store->stats().graph.snapshots, 1u);
}

TEST_F(StoreTest, SeriesReadFromATimeSkipsOlderPoints) {
  auto store = Open();
  for (uint64_t seq = 1; seq <= 5; ++seq)
    ASSERT_TRUE(Put(*store, Make("api", 1, seq), 5 * kSecond));
  store->Flush();
  auto series = ReadSeries(dir_, std::nullopt, 3 * kSecond);
  ASSERT_TRUE(series);
  ASSERT_EQ(series->size(), 3u);
  EXPECT_EQ(series->front().seq, 3u);
  auto agents = ReadAgents(dir_);
  ASSERT_TRUE(agents);
  EXPECT_EQ(agents->at(series->front().agent).identity.service, "api");
}

TEST_F(StoreTest, GoodbyeOfAKnownAgentIsReadBackInTheSeriesAndAnUnknownOneIsNotKept) {
  auto store = Open();
  const auto a = Make("api", 1, 1);
  ASSERT_TRUE(Put(*store, a, 5 * kSecond));
  auto kept = store->AppendGoodbye(a.snapshot.header.identity, 2, 6 * kSecond, 6 * kSecond);
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_TRUE(*kept);
  snapshot::Identity stranger = a.snapshot.header.identity;
  stranger.pid = 99;
  auto ignored = store->AppendGoodbye(stranger, 1, 6 * kSecond, 6 * kSecond);
  ASSERT_TRUE(ignored);
  EXPECT_FALSE(*ignored);
  store->Flush();
  auto series = ReadSeries(dir_);
  ASSERT_TRUE(series);
  ASSERT_EQ(series->size(), 2u);
  EXPECT_FALSE(series->at(0).goodbye);
  EXPECT_TRUE(series->at(1).goodbye);
  EXPECT_EQ(series->at(1).agent, series->at(0).agent);
  EXPECT_EQ(series->at(1).seq, 2u);
  EXPECT_EQ(series->at(1).timestamp_ns, 6 * kSecond);
  EXPECT_TRUE(series->at(1).types.empty());
}

TEST_F(StoreTest, JournalKeepsRecordsAcrossReopenAndDropsATornTail) {
  fs::create_directories(dir_);
  const std::string path = dir_ / "alerts.jnl";
  {
    auto journal = Journal::Open(path, "TDMA", kSecond, nullptr);
    ASSERT_TRUE(journal) << journal.error().message;
    ASSERT_TRUE((*journal)->Append("first"));
    ASSERT_TRUE((*journal)->Append("second"));
  }
  {
    std::ofstream torn(path, std::ios::app | std::ios::binary);
    torn << std::string("\x20\0\0\0garbage", 11);
  }
  std::vector<std::string> records;
  auto journal = Journal::Open(path, "TDMA", 2 * kSecond, &records);
  ASSERT_TRUE(journal);
  EXPECT_EQ(records, (std::vector<std::string>{"first", "second"}));
  ASSERT_TRUE((*journal)->Append("third"));
  EXPECT_EQ(*ReadJournal(path, "TDMA"), (std::vector<std::string>{"first", "second", "third"}));
  ASSERT_TRUE((*journal)->Rewrite({"only"}, 3 * kSecond));
  ASSERT_TRUE((*journal)->Append("after"));
  EXPECT_EQ(*ReadJournal(path, "TDMA"), (std::vector<std::string>{"only", "after"}));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_FALSE(ReadJournal(path, "TDMR")) << "the magic is checked";
  EXPECT_TRUE(ReadJournal(dir_ / "none.jnl", "TDMA")->empty());
}

TEST_F(StoreTest, JournalOnAFullDiskKeepsWholeRecordsOnly) {
  fs::create_directories(dir_);
  FullDiskFileSystem disk;
  const std::string path = dir_ / "alerts.jnl";
  auto journal = Journal::Open(path, "TDMA", kSecond, nullptr, disk);
  ASSERT_TRUE(journal);
  ASSERT_TRUE((*journal)->Append("kept"));
  disk.full = true;
  EXPECT_FALSE((*journal)->Append(std::string(4096, 'x')));
  EXPECT_FALSE((*journal)->Rewrite({"kept", "new"}, 2 * kSecond));
  disk.full = false;
  EXPECT_EQ(*ReadJournal(path, "TDMA"), (std::vector<std::string>{"kept"}));
  ASSERT_TRUE((*journal)->Append("later"));
  EXPECT_EQ(*ReadJournal(path, "TDMA"), (std::vector<std::string>{"kept", "later"}));
}

TEST_F(StoreTest, EveryTicketIsReportedDurable) {
  std::mutex m;
  uint64_t durable = 0;
  bool all_ok = true;
  StoreOptions options;
  options.on_durable = [&](uint64_t from, uint64_t to, bool ok) {
    std::lock_guard lock(m);
    EXPECT_EQ(from, durable);
    durable = to;
    all_ok &= ok;
  };
  auto store = Open(options);
  uint64_t last = 0;
  for (uint64_t seq = 1; seq <= 50; ++seq) last = *Put(*store, Make("api", 1, seq), seq);
  store->Flush();
  std::lock_guard lock(m);
  EXPECT_EQ(durable, last);
  EXPECT_TRUE(all_ok);
}

TEST_F(StoreTest, TornSegmentTailIsTruncatedAndEarlierRecordsSurvive) {
  {
    auto store = Open();
    for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(Put(*store, Make("api", 1, seq), seq));
  }
  const std::string segment = FileWith("summary", ".seg");
  const auto intact = fs::file_size(segment);
  std::ofstream(segment, std::ios::app) << std::string("\x40\x00\x00\x00\x11\x22", 6);
  auto store = Open();
  EXPECT_NE(log_.find("truncated a torn tail of 6 bytes"), std::string::npos) << log_;
  EXPECT_EQ(fs::file_size(segment), intact);
  EXPECT_EQ(ReadAll().entries.size(), 3u);
  ASSERT_TRUE(Put(*store, Make("api", 1, 4), 4));  // Into a new segment.
  store->Flush();
  EXPECT_EQ(ReadAll().entries.size(), 4u);
}

// Flips one byte of `path` at `offset`.
void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

TEST_F(StoreTest, DamageInTheMiddleOfASegmentCostsOnlyTheRecordsItTouches) {
  std::vector<uint64_t> offsets;
  {
    auto store = Open();
    for (uint64_t seq = 1; seq <= 15; ++seq) ASSERT_TRUE(Put(*store, Make("api", 1, seq), seq));
    store->Flush();
    for (const IndexEntry& e : ReadAll().entries) offsets.push_back(e.offset);
  }
  const std::string segment = FileWith("summary", ".seg");
  const auto size = fs::file_size(segment);
  fs::remove(FileWith("summary", ".idx"));  // The index is gone: records are scanned again.
  FlipByte(segment, offsets[4] + 40);       // Inside record 5 of 15.
  auto store = Open();
  const Catalog catalog = ReadAll();
  ASSERT_EQ(catalog.entries.size(), 14u) << log_;
  std::vector<uint64_t> seqs;
  for (const IndexEntry& e : catalog.entries) seqs.push_back(e.seq);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));
  EXPECT_EQ(fs::file_size(segment), size) << "nothing truncated";
  EXPECT_EQ(store->stats().quarantined, 1u);
  EXPECT_NE(log_.find("every intact record after it is kept"), std::string::npos) << log_;
  EXPECT_EQ(log_.find("torn tail"), std::string::npos) << log_;
  size_t copies = 0;
  for (const auto& e : fs::directory_iterator(dir_ / "quarantine")) copies += e.is_regular_file();
  EXPECT_EQ(copies, 1u);
}

TEST_F(StoreTest, AnIntactRecordWhoseMessageDoesNotDecodeIsNoTornTail) {
  {
    auto store = Open();
    ASSERT_TRUE(Put(*store, Make("api", 1, 1), 1));
    // A summary whose header reads but whose body does not (stored as received).
    Appended bad = Make("api", 1, 2);
    std::string message = bad.message;
    message[message.size() - 8] ^= 0x5a;
    ASSERT_TRUE(store->Append(message, bad.snapshot.header, bad.snapshot.types, 2));
    ASSERT_TRUE(Put(*store, Make("api", 1, 3), 3));
  }
  fs::remove(FileWith("summary", ".idx"));
  auto store = Open();
  EXPECT_EQ(log_.find("torn tail"), std::string::npos) << log_;
  std::vector<uint64_t> seqs;
  for (const IndexEntry& e : ReadAll().entries) seqs.push_back(e.seq);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2, 3})) << log_;  // Listed by its header.
}

TEST_F(StoreTest, ADamagedAgentsLogLosesNoAgentAndAMissingOneReusesNoId) {
  {
    auto store = Open();
    for (int pid = 1; pid <= 6; ++pid)
      ASSERT_TRUE(Put(*store, Make("svc" + std::to_string(pid), pid, 1), 1));
  }
  FlipByte(dir_ / "agents.log", kFileHeaderSize + 12);  // Inside the first agent's record.
  {
    auto store = Open();
    const Catalog catalog = ReadAll();
    ASSERT_EQ(catalog.agents.size(), 6u) << log_;
    for (const IndexEntry& e : catalog.entries) {
      EXPECT_EQ(catalog.agents.at(e.agent).identity.pid, static_cast<int64_t>(e.agent)) << log_;
    }
    EXPECT_NE(log_.find("identity read back from its snapshots"), std::string::npos) << log_;
  }
  fs::remove(dir_ / "agents.log");
  auto store = Open();
  ASSERT_TRUE(Put(*store, Make("newcomer", 99, 1), 1));
  store->Flush();
  const Catalog catalog = ReadAll();
  ASSERT_EQ(catalog.agents.size(), 7u) << log_;
  for (const auto& [id, agent] : catalog.agents) {
    if (agent.identity.service == "newcomer") {
      EXPECT_GT(id, 6u) << "ids are never reused";
    }
  }
  for (const IndexEntry& e : catalog.entries) {
    if (e.agent <= 6) {
      EXPECT_EQ(catalog.agents.at(e.agent).identity.pid, static_cast<int64_t>(e.agent));
    }
  }
}

TEST_F(StoreTest, ReadersListEveryAgentOfADamagedAgentsLogAndSayWhatTheyRepaired) {
  {
    auto store = Open();
    for (int pid = 1; pid <= 6; ++pid)
      ASSERT_TRUE(Put(*store, Make("svc" + std::to_string(pid), pid, 1), 1));
  }
  FlipByte(dir_ / "agents.log", kFileHeaderSize + 12);  // Nobody has recovered it yet.
  const Catalog catalog = ReadAll();
  ASSERT_EQ(catalog.agents.size(), 6u);
  EXPECT_EQ(catalog.agents.at(1).identity.service, "svc1");
  ASSERT_EQ(catalog.problems.size(), 1u);
  EXPECT_NE(catalog.problems[0].find("agent 1: not in agents.log; named from its snapshots"),
            std::string::npos)
      << catalog.problems[0];
}

TEST_F(StoreTest, AHugeSparseSegmentCostsAWindowOfMemoryNotItsSize) {
  {
    auto store = Open();
    ASSERT_TRUE(Put(*store, Make("api", 1, 1), 1));
  }
  const std::string segment = FileWith("summary", ".seg");
  const auto intact = fs::file_size(segment);
  fs::resize_file(segment, uint64_t{40} << 30);  // 40 GB of hole.
  auto store = Open();
  EXPECT_EQ(fs::file_size(segment), intact) << log_;
  EXPECT_EQ(ReadAll().entries.size(), 1u);
}

TEST_F(StoreTest, AReadSaysByItsCodeWhetherTheRecordIsDamagedOrGone) {
  {
    auto store = Open();
    ASSERT_TRUE(Put(*store, Make("api", 1, 1), 1));
    store->Flush();
  }
  const IndexEntry entry = ReadAll().entries.at(0);
  ASSERT_TRUE(ReadMessage(dir_, entry));
  const std::string segment = FileWith("summary", ".seg");
  FlipByte(segment, entry.offset + 40);
  auto damaged = ReadMessage(dir_, entry);
  ASSERT_FALSE(damaged);
  EXPECT_EQ(damaged.error().code, snapshot::Code::kCorrupt) << damaged.error().message;
  fs::remove(segment);
  auto gone = ReadMessage(dir_, entry);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, snapshot::Code::kNotFound) << gone.error().message;
}

TEST_F(StoreTest, RecordCutInTheMiddleIsDroppedWithItsIndexEntry) {
  {
    auto store = Open();
    for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(Put(*store, Make("api", 1, seq), seq));
  }
  const std::string segment = FileWith("summary", ".seg");
  fs::resize_file(segment, fs::file_size(segment) - 10);
  auto store = Open();
  EXPECT_NE(log_.find("past the end of the segment"), std::string::npos) << log_;
  const Catalog catalog = ReadAll();
  ASSERT_EQ(catalog.entries.size(), 2u);
  for (const IndexEntry& e : catalog.entries) EXPECT_TRUE(ReadMessage(dir_, e));
}

TEST_F(StoreTest, RecordsWrittenAfterTheirIndexAreIndexedAgain) {
  {
    auto store = Open();
    for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(Put(*store, Make("api", 1, seq), seq));
  }
  const std::string index = FileWith("summary", ".idx");
  fs::resize_file(index, fs::file_size(index) - 30);  // Last entry torn, so 2 remain.
  auto store = Open();
  EXPECT_NE(log_.find("indexed 1 snapshots"), std::string::npos) << log_;
  const Catalog catalog = ReadAll();
  ASSERT_EQ(catalog.entries.size(), 3u);
  EXPECT_EQ(catalog.entries.back().seq, 3u);
}

TEST_F(StoreTest, FullDiskFailsTheAppendLeavesNoPartialRecordAndResumes) {
  FullDiskFileSystem disk;
  StoreOptions options;
  options.fs = &disk;
  auto store = Open(options);
  ASSERT_TRUE(Put(*store, Make("api", 1, 1), 1));
  disk.full = true;
  auto failed = Put(*store, Make("api", 1, 2), 2);
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message.find("No space left"), std::string::npos);
  disk.full = false;
  ASSERT_TRUE(Put(*store, Make("api", 1, 3), 3));
  store->Flush();
  store.reset();

  store = Open();
  EXPECT_EQ(log_.find("truncated"), std::string::npos) << log_;
  const Catalog catalog = ReadAll();
  ASSERT_EQ(catalog.entries.size(), 2u);
  EXPECT_EQ(catalog.entries[0].seq, 1u);
  EXPECT_EQ(catalog.entries[1].seq, 3u);
  for (const IndexEntry& e : catalog.entries) EXPECT_TRUE(ReadMessage(dir_, e));
}

TEST_F(StoreTest, RetentionByAgeKeepsEachAgentsNewestAndOtherKinds) {
  StoreOptions options;
  options.segment_age_ns = 1;  // One segment per snapshot, so retention can pick each.
  auto store = Open(options);
  for (uint64_t t = 1; t <= 10; ++t)
    ASSERT_TRUE(Put(*store, Make("api", 1, t, Kind::kGraph), t * kSecond));
  ASSERT_TRUE(Put(*store, Make("quiet", 2, 1, Kind::kGraph), 1 * kSecond));
  ASSERT_TRUE(Put(*store, Make("api", 1, 11), 1 * kSecond));
  ASSERT_TRUE(Put(*store, Make("api", 1, 12), 12 * kSecond));  // Active summary segment.
  store->Flush();

  RetentionPolicy graph{.max_age_ns = 5 * kSecond, .max_bytes = 0, .keep_last = 1};
  const RetentionResult r = store->ApplyRetention({}, graph, 12 * kSecond);
  EXPECT_EQ(r.snapshots_removed, 6u);  // api graphs received at 1..6 s; quiet's only one kept.
  std::vector<uint64_t> graphs;
  size_t summaries = 0;
  for (const IndexEntry& e : ReadAll().entries) {
    if (e.kind == Kind::kGraph) graphs.push_back(e.seq);
    summaries += e.kind == Kind::kSummary;
  }
  EXPECT_EQ(graphs, (std::vector<uint64_t>{7, 8, 9, 10, 1}));
  EXPECT_EQ(summaries, 2u);
}

TEST_F(StoreTest, AResentSnapshotIsStoredOnceAndRecognisedAfterAReopen) {
  {
    auto store = Open();
    const Appended a = Make("api", 1, 1), b = Make("api", 1, 2);
    bool duplicate = true;
    auto first = store->Append(a.message, a.snapshot.header, a.snapshot.types, kSecond, &duplicate);
    ASSERT_TRUE(first);
    EXPECT_FALSE(duplicate);
    ASSERT_TRUE(Put(*store, b, kSecond));
    auto again =
        store->Append(a.message, a.snapshot.header, a.snapshot.types, 2 * kSecond, &duplicate);
    ASSERT_TRUE(again);
    EXPECT_TRUE(duplicate);
    EXPECT_EQ(*again, *first);  // Acknowledged with the first copy.
    store->Flush();
    EXPECT_GE(store->durable_ticket(), *first);
  }
  auto store = Open();
  const Appended b = Make("api", 1, 2);
  bool duplicate = false;
  auto again =
      store->Append(b.message, b.snapshot.header, b.snapshot.types, 3 * kSecond, &duplicate);
  ASSERT_TRUE(again);
  EXPECT_TRUE(duplicate);
  EXPECT_EQ(*again, 0u);  // Stored before this Store was opened: durable.
  EXPECT_EQ(ReadAll().entries.size(), 2u);
}

TEST_F(StoreTest, SnapshotsTakenForAMemoryThresholdOutliveMaxAgeUpToKeepMemory) {
  StoreOptions options;
  options.segment_age_ns = 1;  // One segment per snapshot.
  auto store = Open(options);
  for (uint64_t t = 1; t <= 8; ++t) {
    Appended a = Make("api", 1, t, Kind::kGraph);
    if (t <= 3) {  // Three taken for a threshold, long ago.
      a.snapshot.header.memory = {.current = 90,
                                  .limit = 100,
                                  .source = "rss",
                                  .crossed_pct = static_cast<uint32_t>(70 + 10 * t)};
      a.message = *snapshot::Encode(a.snapshot);
    }
    ASSERT_TRUE(Put(*store, a, t * kSecond));
  }
  store->Flush();
  RetentionPolicy graph{
      .max_age_ns = 2 * kSecond, .max_bytes = 0, .keep_last = 0, .keep_memory = 2};
  store->ApplyRetention({}, graph, 10 * kSecond);
  std::vector<std::pair<uint64_t, uint32_t>> kept;
  for (const IndexEntry& e : ReadAll().entries) kept.emplace_back(e.seq, e.crossed_pct);
  // The newest two taken for a threshold (2, 3), and what max_age keeps (8; 7 is too old).
  EXPECT_EQ(kept, (std::vector<std::pair<uint64_t, uint32_t>>{{2, 90}, {3, 100}, {8, 0}}));

  // Re-indexed from the segments, the mark is still there: it comes from the message.
  store.reset();
  for (const auto& entry : fs::directory_iterator(fs::path(dir_) / "graph")) {
    if (entry.path().extension() == ".idx") fs::remove(entry.path());
  }
  store = Open(options);
  kept.clear();
  for (const IndexEntry& e : ReadAll().entries) kept.emplace_back(e.seq, e.crossed_pct);
  EXPECT_EQ(kept, (std::vector<std::pair<uint64_t, uint32_t>>{{2, 90}, {3, 100}, {8, 0}}));
}

TEST_F(StoreTest, RetentionByBytesRemovesOldestFirstButNotTheActiveSegment) {
  StoreOptions options;
  options.segment_age_ns = 1;
  auto store = Open(options);
  for (uint64_t t = 1; t <= 6; ++t) ASSERT_TRUE(Put(*store, Make("api", 1, t), t * kSecond));
  store->Flush();
  const uint64_t one = store->stats().summary.bytes / 6;
  RetentionPolicy summary{.max_age_ns = 0, .max_bytes = 2 * one + one / 2, .keep_last = 5};
  store->ApplyRetention(summary, {}, 7 * kSecond);
  std::vector<uint64_t> left;
  for (const IndexEntry& e : ReadAll().entries) left.push_back(e.seq);
  EXPECT_EQ(left, (std::vector<uint64_t>{5, 6}));
  EXPECT_LE(store->stats().summary.bytes, summary.max_bytes);
}

TEST_F(StoreTest, SegmentHeldByAReaderIsRemovedOnlyAfterItIsReleased) {
  StoreOptions options;
  options.segment_age_ns = 1;
  auto store = Open(options);
  ASSERT_TRUE(Put(*store, Make("api", 1, 1), 1 * kSecond));
  ASSERT_TRUE(Put(*store, Make("api", 1, 2), 50 * kSecond));
  store->Flush();
  const std::string oldest = (dir_ / "summary").string() + "/" + [&] {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_ / "summary")) {
      if (e.path().extension() == ".seg") names.push_back(e.path().filename());
    }
    std::sort(names.begin(), names.end());
    return names.front();
  }();
  const int reader = ::open(oldest.c_str(), O_RDONLY);
  ASSERT_EQ(::flock(reader, LOCK_SH), 0);
  RetentionPolicy summary{.max_age_ns = 10 * kSecond};
  EXPECT_EQ(store->ApplyRetention(summary, {}, 60 * kSecond).files_in_use, 1u);
  EXPECT_TRUE(fs::exists(oldest));
  ::close(reader);
  EXPECT_EQ(store->ApplyRetention(summary, {}, 60 * kSecond).snapshots_removed, 1u);
  EXPECT_FALSE(fs::exists(oldest));
}

TEST_F(StoreTest, SecondWriterIsRefused) {
  auto store = Open();
  auto second = Store::Open(dir_, {}, 0);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("another tidemarkd"), std::string::npos);
}

TEST_F(StoreTest, UnusableDirectoryIsAnErrorNamingIt) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "file") << "x";
  auto store = Store::Open((dir_ / "file" / "data").string(), {}, 0);
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("file/data"), std::string::npos) << store.error().message;
}

TEST(LogFormat, VarintsRoundTripAndATruncatedOneIsAnError) {
  PayloadWriter w;
  for (uint64_t v : {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{1} << 40, ~uint64_t{0}}) {
    w.Var(v);
  }
  PayloadReader r(w.bytes());
  EXPECT_EQ(r.Var(), 0u);
  EXPECT_EQ(r.Var(), 127u);
  EXPECT_EQ(r.Var(), 128u);
  EXPECT_EQ(r.Var(), uint64_t{1} << 40);
  EXPECT_EQ(r.Var(), ~uint64_t{0});
  EXPECT_TRUE(r.ok() && r.at_end());
  PayloadReader cut(std::string_view(w.bytes()).substr(0, w.bytes().size() - 1));
  for (int i = 0; i < 5; ++i) cut.Var();
  EXPECT_FALSE(cut.ok());
}

TEST(LogFormat, Crc32cMatchesTheStandardCheckValue) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32cExtend(Crc32c("1234"), "56789"), 0xE3069283u);
}

}  // namespace
}  // namespace tidemark::store

namespace tidemark::store {
namespace {

TEST_F(StoreTest, AListingReadsWhatTheIndexesGainedAndForgetsWhatRetentionRemoved) {
  StoreOptions options;
  options.segment_age_ns = 1;  // A segment per snapshot: retention can remove some.
  auto store = Open(options);
  ListingCache cache;
  for (uint64_t t = 1; t <= 3; ++t) ASSERT_TRUE(Put(*store, Make("api", 1, t), t * kSecond));
  ASSERT_TRUE(Put(*store, Make("web", 2, 1), 4 * kSecond));
  store->Flush();
  auto first = cache.Read(dir_);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_FALSE(first->unnamed);
  ASSERT_EQ(first->listed.size(), 2u);
  EXPECT_EQ(first->listed.at(1).snapshots, 3u);
  EXPECT_EQ(first->listed.at(1).newest.seq, 3u);
  EXPECT_EQ(first->agents.at(2).identity.service, "web");

  for (uint64_t t = 4; t <= 6; ++t) ASSERT_TRUE(Put(*store, Make("api", 1, t), (t + 1) * kSecond));
  store->Flush();
  store->ApplyRetention(RetentionPolicy{.max_age_ns = 3 * kSecond}, {}, 8 * kSecond);
  auto second = cache.Read(dir_);
  ASSERT_TRUE(second);
  // What the whole catalog says, from the cache's tails.
  std::map<uint32_t, uint64_t> counts;
  for (const IndexEntry& e : ReadAll().entries) counts[e.agent] += 1;
  EXPECT_LT(counts[1], 6u);
  EXPECT_EQ(second->listed.at(1).snapshots, counts[1]);
  EXPECT_EQ(second->listed.at(1).newest.seq, 6u);
  EXPECT_EQ(second->listed.count(2), counts.count(2));

  // A catalog for a reference holds every agent and exactly the entries of the agent it names.
  auto some = cache.CatalogFor(dir_, {"api:last"});
  ASSERT_TRUE(some) << some.error().message;
  std::vector<uint64_t> want, got;
  for (const IndexEntry& e : ReadAll().entries) {
    if (e.agent == 1) want.push_back(e.seq);
  }
  for (const IndexEntry& e : some->entries) got.push_back(e.seq);
  EXPECT_EQ(got, want);
  EXPECT_EQ(some->agents.size(), 2u);
  // A reference naming no agent reads the whole catalog (ResolveRef then says what is wrong).
  auto none = cache.CatalogFor(dir_, {"nobody:last"});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->entries.size(), ReadAll().entries.size());
}

TEST(References, AnAbsoluteTimeIsReadWholeAndTheAgentPartEndsBeforeIt) {
  // The colons of the time are the time's; the '@' of SERVICE/HOST/PID@START is the agent's.
  EXPECT_EQ(AgentPartEnd("web@2026-12-07T21:25:00Z"), 3u);
  EXPECT_EQ(AgentPartEnd("web@-30s"), 3u);
  EXPECT_EQ(AgentPartEnd("web:12"), 3u);
  EXPECT_EQ(AgentPartEnd("web:last"), 3u);
  EXPECT_EQ(AgentPartEnd("web/db/7@1765000000@2026-12-07T21:25:00"), 19u);
  EXPECT_EQ(AgentPartEnd("web/db/7@1765000000:first"), 19u);
  EXPECT_EQ(AgentPartEnd("web/db/7@1765000000"), std::string::npos);
  EXPECT_EQ(AgentPartEnd("web@yesterday"), std::string::npos);
  auto t = ParseTime("2026-12-07T21:25:00Z", 0);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(*t, int64_t{1796678700} * 1'000'000'000);
}

TEST(References, ATimeAgoThatWouldOverflowIsRefusedNotThrown) {
  for (const char* text : {"-9999999999999d", "-99999999999999999999m", "-1x", "-d", "--5m"}) {
    auto t = ParseTime(text, 0);
    EXPECT_FALSE(t) << text;
  }
  EXPECT_EQ(*ParseTime("-2h", 10'000'000'000'000),
            10'000'000'000'000 - int64_t{7200} * 1'000'000'000);
}

}  // namespace
}  // namespace tidemark::store
