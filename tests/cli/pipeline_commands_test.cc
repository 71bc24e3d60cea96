// `tidemark growth`, `alerts` and `reports` on a real store and real journals.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "diff/json.h"
#include "snapshot/wire.h"
#include "store/journal.h"
#include "store/store.h"
#include "tests/cli/run_cli.h"

namespace tidemark::cli {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kS = 1'000'000'000;

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using testing::RunCli;

class PipelineCommands : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(TEST_TMPDIR) /
           ("pipeline_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
  }

  // 61 summaries a minute apart ending now: app.Leak grows 6 MiB/h, dict stays.
  void StoreAnHourOfALeak() {
    auto store = store::Store::Open(dir_, {}, Now());
    ASSERT_TRUE(store) << store.error().message;
    const int64_t now = Now();
    for (int i = 0; i <= 60; ++i) {
      snapshot::Snapshot s;
      s.header.identity = {"api", "host-1", 42, now - 2 * 3600 * kS, {{"env", "test"}}};
      s.header.seq = static_cast<uint64_t>(i + 1);
      s.header.timestamp_ns = now - (60 - i) * 60 * kS;
      s.header.rss_bytes = 100 << 20;
      s.types = {{"app.Leak", static_cast<uint64_t>(1000 * i),
                  static_cast<uint64_t>(i) * (100 << 10), 100},
                 {"dict", 500, 64000, 128}};
      const std::string message = *snapshot::Encode(s);
      ASSERT_TRUE((*store)->Append(message, s.header, s.types, s.header.timestamp_ns));
    }
    (*store)->Flush();
  }

  fs::path dir_;
};

TEST_F(PipelineCommands, GrowthListsTheGrowingTypeWithItsRate) {
  StoreAnHourOfALeak();
  std::string out, err;
  ASSERT_EQ(RunCli({"growth", "--store", dir_, "--window", "1h", "--json"}, out, err), 0) << err;
  const auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["service"], "api");
  ASSERT_EQ(j[0]["types"].size(), 1u) << "only growing types without --all";
  const auto& row = j[0]["types"][0];
  EXPECT_EQ(row["type"], "app.Leak");
  EXPECT_NEAR(row["bytes_per_hour"].get<double>() / (6000 << 10), 1.0, 0.01);
  EXPECT_NEAR(row["count_per_hour"].get<double>(), 60000, 600);
  EXPECT_DOUBLE_EQ(row["increasing"].get<double>(), 1.0);
  ASSERT_EQ(RunCli({"growth", "--store", dir_, "--window", "last", "--service", "api"}, out, err),
            0);
  EXPECT_NE(out.find("since the previous snapshot"), std::string::npos) << out;
  EXPECT_NE(out.find("app.Leak"), std::string::npos) << out;
  EXPECT_EQ(RunCli({"growth", "--store", dir_, "--window", "soon"}, out, err), 2);
  EXPECT_NE(err.find("--window takes a duration"), std::string::npos) << err;
}

TEST_F(PipelineCommands, AlertsListsFiringAndWithAllResolvedFromTheJournal) {
  fs::create_directories(dir_);
  auto journal = store::Journal::Open(dir_ / "alerts.jnl", "TDMA", Now(), nullptr);
  ASSERT_TRUE(journal);
  diff::Alert a;
  a.id = "leak/r/api";
  a.service = "api";
  a.type = "app.Leak";
  a.rule = "r";
  a.state = diff::AlertState::kFiring;
  a.agents = {"api/host-1/42@1"};
  a.holders = {{"list@0x1", "app.CACHE", 10, 1000}};
  diff::Alert old = a;
  old.id = "leak/r/worker";
  old.service = "worker";
  old.state = diff::AlertState::kResolved;
  ASSERT_TRUE((*journal)->Append(diff::AlertRecord("firing", old)));
  ASSERT_TRUE((*journal)->Append(diff::AlertRecord("firing", a)));
  ASSERT_TRUE((*journal)->Append(diff::AlertRecord("resolved", old)));
  std::string out, err;
  ASSERT_EQ(RunCli({"alerts", "--store", dir_}, out, err), 0) << err;
  EXPECT_NE(out.find("FIRING  leak/r/api"), std::string::npos) << out;
  EXPECT_NE(out.find("held by app.CACHE"), std::string::npos) << out;
  EXPECT_EQ(out.find("leak/r/worker"), std::string::npos) << out;
  EXPECT_NE(out.find("1 resolved (--all lists them)"), std::string::npos) << out;
  ASSERT_EQ(RunCli({"alerts", "--store", dir_, "--all", "--json"}, out, err), 0) << err;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["firing"][0]["id"], "leak/r/api");
  EXPECT_EQ(j["resolved"][0]["id"], "leak/r/worker");
}

TEST_F(PipelineCommands, ReportsListsAndShowsStoredReports) {
  fs::create_directories(dir_);
  auto journal = store::Journal::Open(dir_ / "reports.jnl", "TDMR", Now(), nullptr);
  ASSERT_TRUE(journal);
  diff::Report r;
  r.id = "nightly-20261126T030000Z";
  r.schedule = "nightly";
  r.created_ns = Now();
  r.age_ns = 86400 * kS;
  diff::ReportSection s;
  s.scope = "service";
  s.name = s.service = "api";
  s.rows = {{"app.Leak", 1, 1001, 100, 100100}};
  r.sections = {s};
  ASSERT_TRUE((*journal)->Append(diff::ToJson(r).dump()));
  std::string out, err;
  ASSERT_EQ(RunCli({"reports", "--store", dir_}, out, err), 0) << err;
  EXPECT_NE(out.find("nightly-20261126T030000Z"), std::string::npos) << out;
  ASSERT_EQ(RunCli({"reports", "last", "--store", dir_}, out, err), 0) << err;
  EXPECT_NE(out.find("app.Leak"), std::string::npos) << out;
  EXPECT_NE(out.find("+97.7 KiB"), std::string::npos) << out;
  EXPECT_EQ(RunCli({"reports", "nope", "--store", dir_}, out, err), 1);
  EXPECT_NE(err.find("no report 'nope'"), std::string::npos);
}

}  // namespace
}  // namespace tidemark::cli
