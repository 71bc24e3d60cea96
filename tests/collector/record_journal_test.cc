// The pipeline's journals: what they keep across a reopen and a compaction.
#include "collector/record_journal.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "diff/json.h"

namespace tidemark::collector {
namespace {

constexpr int64_t kNow = int64_t{1'790'000'000} * 1'000'000'000;

std::string Dir(const std::string& name) {
  std::string dir = TEST_TMPDIR;  // Appended, not a + b + c: GCC 12's -Warray-bounds misfires.
  dir += "/record_journal_";
  dir += name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

diff::Alert Alert(const std::string& id) {
  diff::Alert a;
  a.id = id;
  a.service = "svc";
  a.state = diff::AlertState::kFiring;
  return a;
}

TEST(RecordJournal, RecordsSurviveAReopen) {
  const std::string path = Dir("reopen") + "/reports.jnl";
  {
    auto j = RecordJournal::Open(path, "TDMR", kNow);
    ASSERT_TRUE(j) << j.error().message;
    const auto keep = [](const std::vector<std::string>& r) { return KeepNewest(r, 10); };
    ASSERT_TRUE((*j)->Append("{\"a\":1}", 10, keep, kNow));
    ASSERT_TRUE((*j)->Append("{\"a\":2}", 10, keep, kNow));
  }
  auto j = RecordJournal::Open(path, "TDMR", kNow);
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)->records(), (std::vector<std::string>{"{\"a\":1}", "{\"a\":2}"}));
}

TEST(RecordJournal, ReportsAreCompactedToTheNewestOnceTwiceTheBound) {
  const std::string path = Dir("reports") + "/reports.jnl";
  auto j = RecordJournal::Open(path, "TDMR", kNow);
  ASSERT_TRUE(j);
  const auto keep = [](const std::vector<std::string>& r) { return KeepNewest(r, 3); };
  for (int i = 0; i < 22; ++i) ASSERT_TRUE((*j)->Append(std::to_string(i), 3, keep, kNow));
  EXPECT_EQ((*j)->records().size(), 22u) << "2 * 3 + 16 records are kept as they are";
  ASSERT_TRUE((*j)->Append("22", 3, keep, kNow));
  EXPECT_EQ((*j)->records(), (std::vector<std::string>{"20", "21", "22"}));
  auto reopened = RecordJournal::Open(path, "TDMR", kNow);
  ASSERT_TRUE(reopened);
  EXPECT_EQ((*reopened)->records(), (*j)->records()) << "the file was rewritten, not just memory";
}

TEST(RecordJournal, AlertCompactionKeepsEveryActiveAlertAndTheNewestResolved) {
  std::vector<std::string> records;
  records.push_back(diff::AlertRecord("firing", Alert("leak/r/old-but-firing")));
  for (int i = 0; i < 10; ++i) {
    records.push_back(diff::AlertRecord("firing", Alert("leak/r/" + std::to_string(i))));
    records.push_back(diff::AlertRecord("resolved", Alert("leak/r/" + std::to_string(i))));
  }
  const diff::AlertLog kept = diff::ReplayAlertRecords(KeepAlerts(records, 2));
  ASSERT_EQ(kept.active.size(), 1u);
  EXPECT_EQ(kept.active[0].id, "leak/r/old-but-firing");
  ASSERT_EQ(kept.history.size(), 2u);
  EXPECT_EQ(kept.history[0].id, "leak/r/8");
  EXPECT_EQ(kept.history[1].id, "leak/r/9");
}

}  // namespace
}  // namespace tidemark::collector
