#include "cli/commands.h"
#include "tests/cli/run_cli.h"

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "snapshot/wire.h"

namespace tidemark::cli {
namespace {

std::string WriteSnapshot(const std::string& name, uint64_t seq,
                          std::vector<snapshot::TypeStat> types) {
  snapshot::Snapshot s;
  s.header.identity = {"svc", "h", 1, 1, {}};
  s.header.seq = seq;
  s.header.timestamp_ns = static_cast<int64_t>(seq) * 1'000'000'000;
  s.types = std::move(types);
  std::string path = TEST_TMPDIR;  // Per test: they run in parallel.
  path += "/";
  path += ::testing::UnitTest::GetInstance()->current_test_info()->name();
  path += "-";
  path += name;
  std::ofstream(path, std::ios::binary) << *snapshot::Encode(s);
  return path;
}

using testing::RunCli;

TEST(Cli, AHugeFileThatIsNoSnapshotIsRefusedWithoutReadingIt) {
  const std::string path = std::string(TEST_TMPDIR) + "/zeros.tdmk";
  { std::ofstream(path, std::ios::binary); }
  std::filesystem::resize_file(path, uint64_t{1} << 30);  // 1 GiB of zeros (sparse).
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  std::string out, err;
  EXPECT_EQ(RunCli({"summary", path}, out, err), 1);
  EXPECT_NE(err.find("is not a tidemark snapshot"), std::string::npos) << err;
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 64 * 1024) << "peak RSS grew, in KiB";
  std::filesystem::remove(path);
}

TEST(Cli, ATruncatedSnapshotFileSaysSo) {
  const std::string good = WriteSnapshot("whole.tdmk", 1, {{"int", 1, 28, 28}});
  std::filesystem::resize_file(good, std::filesystem::file_size(good) - 5);
  std::string out, err;
  EXPECT_EQ(RunCli({"summary", good}, out, err), 1);
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
}

TEST(Cli, SummaryPrintsMeliaeTableSortedBySize) {
  auto path = WriteSnapshot("a.tdmk", 1, {{"int", 100, 2800, 28}, {"dict", 10, 6400, 640}});
  std::string out, err;
  ASSERT_EQ(RunCli({"summary", path}, out, err), 0) << err;
  EXPECT_NE(out.find("Total 110 objects, 2 types, Total size = 9.0 KiB (9200 bytes)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(" Index   Count   %       Size   % Cum       Max Kind"), std::string::npos);
  EXPECT_NE(out.find("     0      10   9    6.2 KiB  69  69     640 B dict"), std::string::npos)
      << out;
  EXPECT_NE(out.find("     1     100  90    2.7 KiB  30 100      28 B int"), std::string::npos)
      << out;
}

TEST(Cli, SummaryWithBytesPrintsExactSizes) {
  auto path = WriteSnapshot("a.tdmk", 1, {{"int", 100, 2800, 28}, {"dict", 10, 6400, 640}});
  std::string out, err;
  ASSERT_EQ(RunCli({"summary", path, "--bytes"}, out, err), 0) << err;
  EXPECT_NE(out.find("Total 110 objects, 2 types, Total size = 9200 bytes\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("     0      10   9       6400  69  69       640 dict"), std::string::npos)
      << out;
  EXPECT_NE(out.find("     1     100  90       2800  30 100        28 int"), std::string::npos)
      << out;
}

TEST(Cli, DiffPutsTheGrowingTypeFirst) {
  auto a = WriteSnapshot("d1.tdmk", 1, {{"int", 100, 2800, 28}, {"app.Leak", 1, 56, 56}});
  auto b = WriteSnapshot("d2.tdmk", 2, {{"int", 101, 2828, 28}, {"app.Leak", 1001, 56056, 56}});
  std::string out, err;
  ASSERT_EQ(RunCli({"diff", a, b, "--json"}, out, err), 0) << err;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["rows"][0]["type"], "app.Leak");
  EXPECT_EQ(j["rows"][0]["count_delta"], 1000);
  EXPECT_EQ(j["rows"][0]["bytes_delta"], 56000);
}

TEST(Cli, UnreadableFileIsNamedInTheError) {
  const std::string path = std::string(TEST_TMPDIR) + "/garbage.tdmk";
  std::ofstream(path) << "not a snapshot";
  std::string out, err;
  EXPECT_EQ(RunCli({"summary", path}, out, err), 1);
  EXPECT_NE(err.find(path), std::string::npos);
  EXPECT_NE(err.find("truncated envelope"), std::string::npos) << err;
}

TEST(Cli, UnknownOptionIsAUsageError) {
  std::string out, err;
  EXPECT_EQ(RunCli({"summary", "--bogus"}, out, err), 2);
  EXPECT_NE(err.find("--bogus"), std::string::npos);
}

}  // namespace
}  // namespace tidemark::cli
