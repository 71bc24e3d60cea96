#include "cli/analysis_commands.h"

#include <gtest/gtest.h>

#include "diff/detector.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "snapshot/wire.h"
#include "tests/analysis/graph_builder.h"
#include "tests/cli/run_cli.h"

namespace tidemark::cli {
namespace {

using analysis::testing::GraphBuilder;
using testing::RunCli;

// Per test: ctest runs this file's tests in parallel, and one rewriting a file another reads
// made a torn read.
std::string Path(const std::string& name) {
  std::string path = TEST_TMPDIR;  // Appended, not a + b + c: GCC 12's -Warray-bounds misfires.
  path += "/";
  path += ::testing::UnitTest::GetInstance()->current_test_info()->name();
  path += "-";
  path += name;
  return path;
}

GraphBuilder App() { return analysis::testing::AppHeap(); }

std::string WriteGraph(const std::string& name, const GraphBuilder& b) {
  const std::string path = Path(name);
  std::ofstream(path, std::ios::binary) << *snapshot::Encode(b.Build());
  return path;
}

TEST(AnalysisCli, TypesShowsCountsBytesAndRetained) {
  const std::string file = WriteGraph("app.tdmk", App());
  std::string out, err;
  ASSERT_EQ(RunCli({"types", file, "--json"}, out, err), 0) << err;
  const auto j = nlohmann::json::parse(out);
  bool found = false;
  for (const auto& row : j["rows"]) {
    if (row["type"] == "app.Session") {
      found = true;
      EXPECT_EQ(row["count"], 1);
      EXPECT_EQ(row["bytes"], 152);  // With its __dict__.
      EXPECT_EQ(row["retained"],
                1162);  // Its dict's key and value, and its type: only it refers to it.
    }
  }
  EXPECT_TRUE(found) << out;
}

TEST(AnalysisCli, ShowSaysSizesInBytesOrExactlyWithBytes) {
  const std::string file = WriteGraph("app.tdmk", App());
  std::string out, err;
  ASSERT_EQ(RunCli({"retained", file, "--json"}, out, err), 0) << err;
  const auto top = nlohmann::json::parse(out)["objects"][0];
  const std::string address = top["address"];
  const std::string retained = std::to_string(top["retained"].get<uint64_t>());
  ASSERT_EQ(RunCli({"show", file, address}, out, err), 0) << err;
  EXPECT_NE(out.find("retains " + diff::HumanBytes(std::stod(retained))), std::string::npos) << out;
  ASSERT_EQ(RunCli({"show", file, address, "--bytes"}, out, err), 0) << err;
  EXPECT_NE(out.find("retains " + retained + ";"), std::string::npos) << out;
}

TEST(AnalysisCli, WhyNamesThePathFromTheModule) {
  const std::string file = WriteGraph("app.tdmk", App());
  std::string out, err;
  ASSERT_EQ(RunCli({"why", file, "app.Session"}, out, err), 0) << err;
  EXPECT_NE(out.find("app.cache['users'][1]"), std::string::npos) << out;
  ASSERT_EQ(RunCli({"why", file, "0xabc000", "--json"}, out, err), 0) << err;
  EXPECT_EQ(nlohmann::json::parse(out)["paths"][0]["text"], "app.cache['users'][1]");
}

TEST(AnalysisCli, AnAddressWithNoObjectIsNamed) {
  const std::string file = WriteGraph("app.tdmk", App());
  std::string out, err;
  EXPECT_EQ(RunCli({"show", file, "0x999"}, out, err), 1);
  EXPECT_NE(err.find("no object at 0x999"), std::string::npos) << err;
  EXPECT_EQ(RunCli({"show", file, "zebra"}, out, err), 1);
  EXPECT_NE(err.find("'zebra' is not an address"), std::string::npos) << err;
}

TEST(AnalysisCli, ChildrenAndParentsCarryEdgeNames) {
  const std::string file = WriteGraph("app.tdmk", App());
  std::string out, err;
  ASSERT_EQ(RunCli({"children", file, "0xabc000"}, out, err), 0) << err;
  EXPECT_NE(out.find(".user"), std::string::npos) << out;
  EXPECT_NE(out.find("str 'alice'"), std::string::npos) << out;
  ASSERT_EQ(RunCli({"parents", file, "0xabc000"}, out, err), 0) << err;
  EXPECT_NE(out.find("[1]"), std::string::npos) << out;
}

TEST(AnalysisCli, WalkGoesToAChildAndBack) {
  const std::string file = WriteGraph("app.tdmk", App());
  Flags flags;
  flags.positional = {file, "0xabc000"};
  std::istringstream commands("ls\nc 1\nb\nwhy\nc 99\nfrobnicate\nq\n");
  std::ostringstream out, err;
  ASSERT_EQ(Walk(flags, commands, out, err), 0) << err.str();
  const std::string text = out.str();
  const auto alice = text.find("str 'alice'\n  size 60");  // Shown after `c 1`.
  ASSERT_NE(alice, std::string::npos) << text;
  EXPECT_NE(text.find("app.Session@0xabc000", alice), std::string::npos) << "back: " << text;
  EXPECT_NE(text.find("app.cache['users'][1]"), std::string::npos) << text;
  EXPECT_NE(text.find("no child #99"), std::string::npos) << text;
  EXPECT_NE(text.find("unknown command 'frobnicate'"), std::string::npos) << text;
}

TEST(AnalysisCli, RootedSummaryStopsAtExclusions) {
  const GraphBuilder b = App();
  const std::string file = WriteGraph("app.tdmk", b);
  std::string out, err;
  char users[32], session[32];
  std::snprintf(users, sizeof users, "0x%llx",
                static_cast<unsigned long long>(b.AddressOf("users")));
  std::snprintf(session, sizeof session, "0x%llx",
                static_cast<unsigned long long>(b.AddressOf("session")));
  ASSERT_EQ(RunCli({"summary", file, "--root", users, "--exclude", session, "--json"}, out, err), 0)
      << err;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["objects"], 2);  // The list and the int.
  EXPECT_EQ(j["bytes"], 108);
}

TEST(AnalysisCli, GraphVerbsRefuseASummarySnapshot) {
  snapshot::Snapshot s;
  s.header.identity = {"svc", "h", 1, 1, {}};
  const std::string file = Path("summary.tdmk");
  std::ofstream(file, std::ios::binary) << *snapshot::Encode(s);
  std::string out, err;
  EXPECT_EQ(RunCli({"types", file}, out, err), 1);
  EXPECT_NE(err.find("take a graph snapshot"), std::string::npos) << err;
}

TEST(AnalysisCli, ImportMeliaeThenQueryIt) {
  const std::string dump = Path("small.json");
  std::ofstream(dump)
      << "[\n"
         "{\"address\": 10, \"type\": \"list\", \"size\": 72, \"len\": 2, \"refs\": [11, 12]},\n"
         "{\"address\": 11, \"type\": \"str\", \"size\": 50, \"value\": \"a\", \"refs\": []},\n"
         "{\"address\": 12, \"type\": \"str\", \"size\": 51, \"value\": \"bb\", \"refs\": []}\n"
         "]\n";
  const std::string out_file = Path("small.tdmk");
  std::string out, err;
  ASSERT_EQ(RunCli({"import-meliae", dump, out_file}, out, err), 0) << err;
  EXPECT_NE(out.find("imported 3 objects and 2 references"), std::string::npos) << out;
  ASSERT_EQ(RunCli({"summary", out_file, "--root", "10"}, out, err), 0) << err;
  EXPECT_NE(out.find("Total 3 objects, 2 types, Total size = 173 B (173 bytes)"), std::string::npos)
      << out;
}

TEST(AnalysisCli, ADirectoryWhereAFileBelongsIsNamedWithTheReason) {
  const std::string dir = Path("a-directory");
  std::filesystem::create_directories(dir);
  const std::string file = WriteGraph("app.tdmk", App());
  std::string out, err;
  EXPECT_EQ(RunCli({"summary", dir}, out, err), 1);
  EXPECT_NE(err.find("cannot open '" + dir + "': it is a directory"), std::string::npos) << err;
  EXPECT_EQ(RunCli({"summary", Path("missing.tdmk")}, out, err), 1);
  EXPECT_NE(err.find("No such file or directory"), std::string::npos) << err;
  EXPECT_EQ(RunCli({"export", file, "--format", "folded", "-o", dir}, out, err), 1);
  EXPECT_NE(err.find("cannot write '" + dir + "': it is a directory"), std::string::npos) << err;
  // import-meliae into a directory writes nothing, not even DIR.tmp beside it.
  const std::string dump = Path("one.json");
  std::ofstream(dump) << "{\"address\": 1, \"type\": \"str\", \"size\": 50, \"refs\": []}\n";
  EXPECT_EQ(RunCli({"import-meliae", dump, dir}, out, err), 1);
  EXPECT_NE(err.find("cannot write '" + dir + "': it is a directory"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(dir + ".tmp"));
}

TEST(AnalysisCli, SummaryOfAnImportedDumpCollapsesInstanceDictsAsMeliaeDoes) {
  const std::string dump = Path("items.json");
  std::ofstream(dump)
      << "{\"address\": 1, \"type\": \"list\", \"size\": 72, \"refs\": [2, 3]}\n"
         "{\"address\": 2, \"type\": \"Item\", \"size\": 40, \"refs\": [4, 6]}\n"
         "{\"address\": 3, \"type\": \"Item\", \"size\": 40, \"refs\": [5, 6]}\n"
         "{\"address\": 4, \"type\": \"dict\", \"size\": 96, \"refs\": []}\n"
         "{\"address\": 5, \"type\": \"dict\", \"size\": 96, \"refs\": []}\n"
         "{\"address\": 6, \"type\": \"type\", \"size\": 900, \"name\": \"Item\", \"refs\": []}\n";
  const std::string file = Path("items.tdmk");
  std::string out, err;
  ASSERT_EQ(RunCli({"import-meliae", dump, file}, out, err), 0) << err;
  ASSERT_EQ(RunCli({"summary", file, "--bytes"}, out, err), 0) << err;
  EXPECT_NE(out.find("Total 4 objects, 3 types, Total size = 1244 bytes"), std::string::npos)
      << out;
  EXPECT_NE(out.find("     1       2  50        272  21  94       136 Item"), std::string::npos)
      << out;
  EXPECT_EQ(out.find(" dict"), std::string::npos) << out;
  ASSERT_EQ(RunCli({"summary", file, "--json"}, out, err), 0) << err;
  EXPECT_EQ(nlohmann::json::parse(out)["bytes"], 1244);
  // A meliae dump does not say which dict is whose: the result says the pairing was guessed.
  ASSERT_EQ(RunCli({"types", file}, out, err), 0) << err;
  EXPECT_NE(out.find("note: this snapshot does not record which dict is whose __dict__"),
            std::string::npos)
      << out;
  ASSERT_EQ(RunCli({"types", file, "--json"}, out, err), 0) << err;
  EXPECT_EQ(nlohmann::json::parse(out)["ownership_inferred"], true);
}

TEST(AnalysisCli, ExportWritesEachFormat) {
  const std::string file = WriteGraph("app.tdmk", App());
  std::string out, err;
  for (const std::string format : {"callgrind", "folded", "heapsnapshot"}) {
    const std::string target = Path("app." + format);
    ASSERT_EQ(RunCli({"export", file, "--format", format, "-o", target}, out, err), 0) << err;
    std::ifstream in(target);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_FALSE(text.str().empty()) << format;
    if (format == "heapsnapshot") {
      EXPECT_NO_THROW(nlohmann::json::parse(text.str()));
    }
  }
  EXPECT_EQ(RunCli({"export", file, "--format", "pdf"}, out, err), 2);
}

TEST(AnalysisCli, GdiffNamesTheContainerOfNewObjects) {
  const std::string a = WriteGraph("before.tdmk", analysis::testing::AppHeap());
  const std::string b =
      WriteGraph("after.tdmk", analysis::testing::AppHeap(/*second_session=*/true));
  std::string out, err;
  ASSERT_EQ(RunCli({"gdiff", a, b, "--json"}, out, err), 0) << err;
  const auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["groups"].size(), 1u);
  EXPECT_EQ(j["groups"][0]["type"], "app.Session");
  EXPECT_EQ(j["groups"][0]["holders"][0]["path"], "app.cache['users']");
}

TEST(AnalysisCli, GdiffOfTwoProcessesIsAnErrorNotNonsense) {
  const std::string a = WriteGraph("one.tdmk", analysis::testing::AppHeap());
  snapshot::Snapshot other = analysis::testing::AppHeap(/*second_session=*/true).Build();
  other.header.identity.pid += 1;
  const std::string b = Path("other.tdmk");
  std::ofstream(b, std::ios::binary) << *snapshot::Encode(other);
  std::string out, err;
  EXPECT_EQ(RunCli({"gdiff", a, b}, out, err), 1);
  EXPECT_EQ(out, "");
  EXPECT_NE(err.find("come from different processes"), std::string::npos) << err;
}

TEST(AnalysisCli, RetainedJsonSaysWhenItsObjectsAreTheTopOnly) {
  const std::string file = WriteGraph("app.tdmk", App());
  std::string out, err;
  ASSERT_EQ(RunCli({"retained", file, "--json", "--top", "2"}, out, err), 0) << err;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["objects"].size(), 2u);
  EXPECT_EQ(j["truncated"], true);
  EXPECT_GT(j["total"].get<uint64_t>(), 2u);
}

}  // namespace
}  // namespace tidemark::cli
