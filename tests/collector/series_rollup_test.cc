#include "collector/series_rollup.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "collector/api_queries.h"
#include "snapshot/wire.h"

namespace tidemark::collector {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kT0 = int64_t{1'800'000'000} * kSecond;  // A whole minute.

class SeriesRollupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(TEST_TMPDIR) + "/series_rollup_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  // Opens the store feeding `rollup` (made live first: nothing to rebuild) and `also_`.
  void Open(SeriesRollup& rollup) {
    store::StoreOptions options;
    options.sync = false;
    options.on_series = [this, &rollup](const store::SeriesRecord& r, std::string_view service) {
      rollup.Apply(r, service);
      if (also_) also_->Apply(r, service);
    };
    auto opened = store::Store::Open(dir_, options, kT0);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
    ASSERT_TRUE(rollup.Rebuild(dir_, kT0));
  }

  // A summary of `agent` (its pid) of `service` taken at `t`: type "T<k>" has bytes[k] bytes.
  void Put(const std::string& service, int64_t pid, uint64_t seq, int64_t t,
           std::vector<uint64_t> bytes, uint64_t rss = 1000) {
    snapshot::Snapshot s;
    s.header.kind = snapshot::Kind::kSummary;
    s.header.identity = {service, "host", pid, 1, {}};
    s.header.seq = seq;
    s.header.timestamp_ns = t;
    s.header.rss_bytes = rss;
    for (size_t k = 0; k < bytes.size(); ++k) {
      s.types.push_back({"T" + std::to_string(k), bytes[k] / 10, bytes[k], 10});
    }
    s.header.types = s.types.size();
    auto message = snapshot::Encode(s);
    ASSERT_TRUE(message);
    ASSERT_TRUE(store_->Append(*message, s.header, s.types, t));
  }

  void Goodbye(const std::string& service, int64_t pid, uint64_t seq, int64_t t) {
    ASSERT_TRUE(store_->AppendGoodbye({service, "host", pid, 1, {}}, seq, t, t));
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  SeriesRollup* also_ = nullptr;
};

// Heap bytes of each step, -1 where a step has no data.
std::vector<int64_t> Heap(const SeriesTable& t) {
  std::vector<int64_t> out;
  for (size_t k = 0; k < t.has.size(); ++k) out.push_back(t.has[k] ? int64_t(t.heap[k]) : -1);
  return out;
}

TEST_F(SeriesRollupTest, AServiceIsTheSumOfEachAgentsLatestSummaryAtEachMinute) {
  SeriesRollup rollup(RollupOptions{});
  Open(rollup);
  // Agent 1 every minute at :10, agent 2 every minute at :40; agent 3 is another service.
  for (int m = 0; m < 5; ++m) {
    Put("shop", 1, m + 1, kT0 + m * kMinute + 10 * kSecond, {100u * (m + 1), 5});
    Put("shop", 2, m + 1, kT0 + m * kMinute + 40 * kSecond, {1000, 7});
    Put("other", 3, m + 1, kT0 + m * kMinute + 20 * kSecond, {99999});
  }
  const StepRange range{kT0, kMinute, 6};
  auto t = rollup.Service("shop", range, 10, kT0 + 10 * kMinute);
  ASSERT_TRUE(t);
  // At the end of minute m: agent 1's (m+1)*100 + 5, agent 2's 1007. The last step, after the
  // last summaries, holds what they said last (counted for three intervals: 3 min).
  EXPECT_EQ(Heap(*t), (std::vector<int64_t>{1112, 1212, 1312, 1412, 1512, 1512}));
  // Agent 1 until 7:10, agent 2 until 7:40.
  auto later = rollup.Service("shop", StepRange{kT0 + 7 * kMinute, kMinute, 1}, 10,
                              kT0 + 7 * kMinute + 20 * kSecond);
  ASSERT_TRUE(later);
  EXPECT_EQ(Heap(*later), (std::vector<int64_t>{1007}));
  EXPECT_EQ(t->agents, 2u);
  EXPECT_EQ(t->rss[0], 2000u);
  ASSERT_EQ(t->rows.size(), 2u);
  EXPECT_EQ(t->rows[0].type, "T0");
  EXPECT_EQ(t->rows[0].bytes[4], 1500u);
  EXPECT_EQ(t->rows[1].type, "T1");
  EXPECT_EQ(t->rows[1].count[0], 0u + 0u);  // 5/10 and 7/10 objects: 0 each.

  // The step holding now is the sums now.
  auto now = rollup.Service("shop", StepRange{kT0 + 4 * kMinute, kMinute, 1}, 1,
                            kT0 + 4 * kMinute + 50 * kSecond);
  ASSERT_TRUE(now);
  EXPECT_EQ(Heap(*now), (std::vector<int64_t>{1512}));
  EXPECT_EQ(now->rows.size(), 1u);
}

TEST_F(SeriesRollupTest, AnAgentStopsCountingAtItsGoodbyeOrAfterThreeSilentIntervals) {
  SeriesRollup rollup(RollupOptions{});
  Open(rollup);
  // Agent 3 keeps the minutes going while agent 1 is silent after kT0 + 2 min.
  for (int m = 0; m < 10; ++m) {
    if (m < 3) {
      Put("shop", 1, m + 1, kT0 + m * kMinute, {100});
      Put("shop", 2, m + 1, kT0 + m * kMinute + kSecond, {10});
    }
    if (m == 2) Goodbye("shop", 2, 4, kT0 + 2 * kMinute + 2 * kSecond);
    Put("shop", 3, m + 1, kT0 + m * kMinute + 30 * kSecond, {1});
  }
  auto t = rollup.Service("shop", StepRange{kT0, kMinute, 9}, 10, kT0 + 20 * kMinute);
  ASSERT_TRUE(t);
  // Agent 2 counts until a minute after its goodbye (kT0 + 3:02); agent 1's interval is 1 min,
  // its lookback 3 min: counted until kT0 + 5 min.
  EXPECT_EQ(Heap(*t), (std::vector<int64_t>{111, 111, 111, 101, 101, 1, 1, 1, 1}));
  EXPECT_EQ(rollup.stats().agents, 1u);
}

TEST_F(SeriesRollupTest, RebuiltFromTheFilesWhileWrittenItHoldsWhatTheLiveOneHolds) {
  SeriesRollup live(RollupOptions{});
  Open(live);
  auto put_minutes = [&](int from, int to) {
    for (int m = from; m < to; ++m) {
      for (int a = 1; a <= 4; ++a) {
        Put("svc" + std::to_string(a % 2), a, m + 1, kT0 + m * kMinute + a * kSecond,
            {uint64_t(m * a), uint64_t(a), uint64_t(m)});
      }
    }
  };
  put_minutes(0, 100);
  // The store feeds `rebuilt` too, which takes what is appended only once it is live: before
  // that it reads it from the files.
  SeriesRollup rebuilt(RollupOptions{});
  also_ = &rebuilt;
  std::thread writer([&] { put_minutes(100, 400); });
  auto built = rebuilt.Rebuild(dir_, kT0 + 400 * kMinute);
  writer.join();
  ASSERT_TRUE(built) << built.error().message;
  EXPECT_TRUE(rebuilt.stats().live);
  const int64_t now = kT0 + 400 * kMinute;
  for (const char* service : {"svc0", "svc1"}) {
    auto a = live.Service(service, StepRange{kT0, kMinute, 400}, 3, now);
    auto b = rebuilt.Service(service, StepRange{kT0, kMinute, 400}, 3, now);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->has, b->has);
    EXPECT_EQ(a->heap, b->heap);
    EXPECT_EQ(a->rss, b->rss);
    ASSERT_EQ(a->rows.size(), b->rows.size());
    for (size_t r = 0; r < a->rows.size(); ++r) EXPECT_EQ(a->rows[r].bytes, b->rows[r].bytes);
  }
}

TEST_F(SeriesRollupTest, AtItsMemoryBoundItDropsTheOldestHoursAndSaysItNoLongerHoldsThem) {
  SeriesRollup rollup(RollupOptions{.max_bytes = 64 << 10});
  Open(rollup);
  std::vector<uint64_t> bytes(50);
  for (int m = 0; m < 600; ++m) {
    for (size_t k = 0; k < bytes.size(); ++k) bytes[k] = m * 1000 + k;
    Put("shop", 1, m + 1, kT0 + m * kMinute, bytes);
  }
  const RollupStats s = rollup.stats();
  EXPECT_GT(s.blocks_evicted, 0u);
  EXPECT_LE(s.bytes, (64u << 10) + (4u << 10));  // And the hour being filled.
  EXPECT_GT(s.covered_from_ns, kT0);
  const int64_t now = kT0 + 600 * kMinute;
  EXPECT_FALSE(rollup.Service("shop", StepRange{kT0, kMinute, 60}, 5, now));
  EXPECT_FALSE(rollup.Agent(1, kT0, now));
  auto recent = rollup.Service("shop", StepRange{s.covered_from_ns, kMinute, 10}, 5, now);
  ASSERT_TRUE(recent);
  EXPECT_TRUE(recent->has[0]);
}

TEST_F(SeriesRollupTest, AServiceWithMoreTypesThanItKeepsSumsTheRestInOneRow) {
  SeriesRollup rollup(RollupOptions{.max_types = 4});
  Open(rollup);
  Put("shop", 1, 1, kT0, {1, 2, 3, 4, 5, 6});
  Put("shop", 1, 2, kT0 + kMinute, {1, 2, 3, 4, 5, 6});
  auto t = rollup.Service("shop", StepRange{kT0, kMinute, 1}, 10, kT0 + 5 * kMinute);
  ASSERT_TRUE(t);
  ASSERT_EQ(t->rows.size(), 4u);
  EXPECT_EQ(t->rows[0].type, SeriesRollup::kOtherTypes);
  EXPECT_EQ(t->rows[0].bytes[0], 4u + 5 + 6);
  EXPECT_EQ(rollup.stats().types_folded, 6u);
}

// The query API answers a series the same from the rollup as from the files.
TEST_F(SeriesRollupTest, ASeriesQueryAnswersTheSameFromTheRollupAsFromTheFiles) {
  SeriesRollup rollup(RollupOptions{});
  Open(rollup);
  for (int m = 0; m < 90; ++m) {
    Put("shop", 1, m + 1, kT0 + m * kMinute + 7 * kSecond, {uint64_t(m) * 10, 3, 4});
    if (m % 3 == 0) Put("shop", 2, m / 3 + 1, kT0 + m * kMinute + 50 * kSecond, {5, 500});
  }
  const int64_t now = kT0 + 90 * kMinute + 30 * kSecond;
  for (const std::string query :
       {"service=shop&from=-95m&step=5m", "service=shop&step=60", "service=shop&step=7m&types=2",
        "agent=shop/host/1@0&step=2m", "agent=shop/host/2@0&from=-30m"}) {
    auto params = QueryParams::Parse(query);
    ASSERT_TRUE(params) << query;
    auto fast = Series(dir_, &rollup, *params, now);
    auto slow = Series(dir_, nullptr, *params, now);
    ASSERT_TRUE(fast) << query << ": " << fast.error().message;
    ASSERT_TRUE(slow) << query << ": " << slow.error().message;
    EXPECT_EQ(fast->dump(), slow->dump()) << query;
    EXPECT_GT((*fast)["agents"].get<int>(), 0) << query;
  }
}

}  // namespace
}  // namespace tidemark::collector
