// The command model: each verb's own help, refused options, complete JSON, one agent name,
// where the store is. Through cli::Main, as the tidemark binary runs it.
#include "cli/command_line.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "diff/detector.h"
#include "snapshot/wire.h"
#include "store/store.h"
#include "tests/analysis/graph_builder.h"
#include "tests/cli/run_cli.h"

namespace tidemark::cli {
namespace {

namespace fs = std::filesystem;
using analysis::testing::GraphBuilder;

using testing::RunCli;

std::string Path(const std::string& name) {
  std::string path = TEST_TMPDIR;  // Appended, not a + b + c: GCC 12's -Warray-bounds misfires.
  path += "/cl_";
  path +=
      ::testing::UnitTest::GetInstance()->current_test_info()->name();  // Tests run in parallel.
  path += "-";
  path += name;
  return path;
}

// A summary snapshot of `types` types, type i having i+1 objects of 100 bytes.
snapshot::Snapshot ManyTypes(int types, uint64_t seq = 1) {
  snapshot::Snapshot s;
  s.header.identity = {"svc", "h", 7, 1'700'000'000'000'000'000, {}};
  s.header.seq = seq;
  s.header.timestamp_ns = 1'700'000'000'000'000'000 + static_cast<int64_t>(seq) * 1'000'000'000;
  for (int i = 0; i < types; ++i) {
    s.types.push_back({"mod.T" + std::to_string(i), static_cast<uint64_t>(i + 1),
                       static_cast<uint64_t>(i + 1) * 100, 100});
  }
  return s;
}

std::string Write(const std::string& name, const snapshot::Snapshot& s) {
  const std::string path = Path(name);
  std::ofstream(path, std::ios::binary) << *snapshot::Encode(s);
  return path;
}

// One object holding `n` children.
std::string WriteFanOut(const std::string& name, int n) {
  GraphBuilder b;
  std::vector<std::string> refs;
  for (int i = 0; i < n; ++i) refs.push_back("c" + std::to_string(i));
  b.Add("holder", "list", 1000, refs).Root("holder");
  for (int i = 0; i < n; ++i) b.Add("c" + std::to_string(i), "str", 50);
  const std::string path = Path(name);
  std::ofstream(path, std::ios::binary) << *snapshot::Encode(b.Build());
  return path;
}

size_t Lines(const std::string& text, const std::string& containing) {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(containing) != std::string::npos;
  return n;
}

TEST(CommandLine, EveryVerbHasItsOwnHelpListingItsOptions) {
  std::set<std::string> helps;
  for (const VerbSpec& verb : Verbs()) {
    std::string out, err;
    const std::string name(verb.name);
    ASSERT_EQ(RunCli({name, "--help"}, out, err), 0) << name << ": " << err;
    EXPECT_EQ(out.rfind("usage: tidemark " + name, 0), 0u) << out;
    for (const OptionSpec& o : verb.options) {
      EXPECT_NE(out.find("  " + std::string(o.name)), std::string::npos) << name << ": " << out;
    }
    std::string via_help;
    ASSERT_EQ(RunCli({"help", name}, via_help, err), 0);
    EXPECT_EQ(via_help, out);
    helps.insert(out);
  }
  EXPECT_EQ(helps.size(), Verbs().size()) << "no two verbs share a help text";
}

TEST(CommandLine, EveryVerbRefusesAnOptionItDoesNotTake) {
  for (const VerbSpec& verb : Verbs()) {
    std::string out, err;
    const std::string name(verb.name);
    EXPECT_EQ(RunCli({name, "--frobnicate"}, out, err), 2) << name;
    EXPECT_NE(err.find("no option '--frobnicate' for this command"), std::string::npos) << err;
    EXPECT_NE(err.find("tidemark " + name + " --help"), std::string::npos) << err;
  }
  std::string out, err;
  EXPECT_EQ(RunCli({"summary", "a.tdmk", "--paths", "3"}, out, err), 2) << "why's option";
  EXPECT_EQ(RunCli({"walk", "a.tdmk", "--json"}, out, err), 2);
  EXPECT_NE(err.find("'--json'"), std::string::npos) << err;
  EXPECT_EQ(RunCli({"summary", "a.tdmk", "--top", "many"}, out, err), 2);
  EXPECT_NE(err.find("--top takes a positive integer, not 'many'"), std::string::npos) << err;
  EXPECT_EQ(RunCli({"why", "a.tdmk"}, out, err), 2);
  EXPECT_NE(err.find("usage: tidemark why SNAP ADDR|TYPE"), std::string::npos) << err;
  EXPECT_EQ(RunCli({"ls", "extra"}, out, err), 2);
  EXPECT_NE(err.find("unexpected argument 'extra'"), std::string::npos) << err;
}

TEST(CommandLine, VersionAndUsageListEveryVerb) {
  std::string out, err;
  ASSERT_EQ(RunCli({"--version"}, out, err), 0);
  EXPECT_EQ(out.rfind("tidemark ", 0), 0u);
  EXPECT_NE(out.find('.'), std::string::npos) << out;
  ASSERT_EQ(RunCli({"--help"}, out, err), 0);
  for (const VerbSpec& verb : Verbs()) {
    EXPECT_NE(out.find("\n  " + std::string(verb.name) + " "), std::string::npos) << verb.name;
    const std::string heading = "\n" + std::string(verb.group) + ":\n";
    EXPECT_EQ(out.find(heading), out.rfind(heading)) << "listed twice: " << verb.group;
  }
  EXPECT_EQ(RunCli({}, out, err), 2);
  EXPECT_NE(err.find("usage: tidemark"), std::string::npos);
}

TEST(CommandLine, EveryVerbsHelpSpeaksOnlyOfItsOwnOptions) {
  for (const VerbSpec& verb : Verbs()) {
    std::string out, err;
    ASSERT_EQ(RunCli({std::string(verb.name), "--help"}, out, err), 0) << verb.name;
    if (out.find("  --top") == std::string::npos) {
      EXPECT_EQ(out.find("--top"), std::string::npos) << verb.name << ":\n" << out;
    }
  }
}

TEST(CommandLine, MaxParentsTakesAllOrMinusOneAsTheDocsSay) {
  std::string out, err;
  for (const char* v : {"all", "-1", "5"}) {
    EXPECT_EQ(RunCli({"why", "no-such.tdmk", "x", "--max-parents", v}, out, err), 1) << v;
    EXPECT_EQ(err.find("takes a positive integer"), std::string::npos) << err;
  }
  EXPECT_EQ(RunCli({"why", "no-such.tdmk", "x", "--max-parents", "0"}, out, err), 2);
  EXPECT_NE(err.find("--max-parents takes a positive integer or 'all', not '0'"), std::string::npos)
      << err;
}

TEST(CommandLine, TopLimitsTheRowsOfSummaryDiffAndChildren) {
  const std::string a = Write("a.tdmk", ManyTypes(150, 1));
  std::string out, err;
  ASSERT_EQ(RunCli({"summary", a, "--top", "5"}, out, err), 0) << err;
  EXPECT_EQ(Lines(out, " mod.T"), 5u) << out;
  EXPECT_NE(out.find("145 more types"), std::string::npos) << out;
  ASSERT_EQ(RunCli({"summary", a}, out, err), 0) << err;
  EXPECT_EQ(Lines(out, " mod.T"), 20u) << "the default";
  const std::string fan = WriteFanOut("fan.tdmk", 80);
  ASSERT_EQ(RunCli({"children", fan, "0x10000", "--top", "3"}, out, err), 0) << err;
  EXPECT_EQ(Lines(out, " str"), 3u) << out;
  EXPECT_NE(out.find("77 more"), std::string::npos) << out;
}

TEST(CommandLine, JsonIsCompleteOrSaysItIsTruncated) {
  const std::string a = Write("a.tdmk", ManyTypes(150, 1));
  const std::string b = Write("b.tdmk", ManyTypes(160, 2));
  std::string out, err;
  ASSERT_EQ(RunCli({"summary", a, "--json"}, out, err), 0) << err;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["rows"].size(), 150u);
  EXPECT_FALSE(j.contains("truncated"));
  ASSERT_EQ(RunCli({"summary", a, "--json", "--top", "7"}, out, err), 0) << err;
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["rows"].size(), 7u);
  EXPECT_EQ(j["truncated"], true);
  EXPECT_EQ(j["total"], 150);
  ASSERT_EQ(RunCli({"diff", a, b, "--json"}, out, err), 0) << err;
  EXPECT_EQ(nlohmann::json::parse(out)["rows"].size(), 10u) << "the ten new types";
  const std::string fan = WriteFanOut("fan.tdmk", 80);
  ASSERT_EQ(RunCli({"types", fan, "--json"}, out, err), 0) << err;
  EXPECT_EQ(nlohmann::json::parse(out)["rows"].size(), 2u);
  ASSERT_EQ(RunCli({"children", fan, "0x10000", "--json"}, out, err), 0) << err;
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["children"].size(), 80u);
  EXPECT_FALSE(j.contains("truncated"));
  const std::string target = Path("fan.folded");
  ASSERT_EQ(RunCli({"export", fan, "--format", "folded", "-o", target, "--json"}, out, err), 0)
      << err;
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["objects"], 81);
  EXPECT_EQ(j["bytes"], fs::file_size(target));
}

TEST(CommandLine, DiffOfReversedSnapshotsSaysSo) {
  const std::string a = Write("a.tdmk", ManyTypes(3, 1));
  const std::string b = Write("b.tdmk", ManyTypes(4, 5));
  std::string out, err;
  ASSERT_EQ(RunCli({"diff", b, a}, out, err), 0) << err;
  EXPECT_NE(err.find("B was taken 4.0 s before A"), std::string::npos) << err;
  ASSERT_EQ(RunCli({"diff", a, b}, out, err), 0) << err;
  EXPECT_EQ(err, "");
}

TEST(CommandLine, WhyNotesACapOnlyWhereItMayHaveHiddenAPath) {
  GraphBuilder b;
  b.Add("root", "dict", 100, {"a", "b", "c", "target"}).Root("root");
  for (const char* id : {"a", "b", "c"}) b.Add(id, "list", 64, {"shared"});
  b.Add("shared", "str", 50).Add("target", "str", 50);
  const std::string path = Path("capped.tdmk");
  std::ofstream(path, std::ios::binary) << *snapshot::Encode(b.Build());
  char target[32], shared[32];
  std::snprintf(target, sizeof target, "0x%llx", (unsigned long long)b.AddressOf("target"));
  std::snprintf(shared, sizeof shared, "0x%llx", (unsigned long long)b.AddressOf("shared"));
  std::string out, err;
  ASSERT_EQ(RunCli({"why", path, target, "--max-parents", "2", "--paths", "1"}, out, err), 0)
      << err;
  EXPECT_EQ(out.find("note:"), std::string::npos) << "the cap elsewhere hid nothing: " << out;
  ASSERT_EQ(RunCli({"why", path, shared, "--max-parents", "2"}, out, err), 0) << err;
  EXPECT_NE(out.find("parents were capped"), std::string::npos) << out;
}

class StoreCommandLine : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = Path(::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto store = store::Store::Open(dir_, {}, 1);
    ASSERT_TRUE(store) << store.error().message;
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      const snapshot::Snapshot s = ManyTypes(static_cast<int>(seq), seq);
      ASSERT_TRUE((*store)->Append(*snapshot::Encode(s), s.header, s.types, s.header.timestamp_ns));
    }
    (*store)->Flush();
  }
  std::string dir_;
};

TEST_F(StoreCommandLine, AnAgentIsNamedAlikeByLsAndAlertsAndStandsForItsNewestSnapshot) {
  std::string out, err;
  ASSERT_EQ(RunCli({"ls", "--store", dir_, "--json"}, out, err), 0) << err;
  const std::string name = nlohmann::json::parse(out)["services"][0]["agents"][0]["name"];
  EXPECT_EQ(name, "svc/h/7@1700000000");
  ASSERT_EQ(RunCli({"ls", "--store", dir_}, out, err), 0) << err;
  EXPECT_NE(out.find(name), std::string::npos) << out;
  for (const std::string& ref : {name, name + ":last", std::string("svc/h/7:3"), name + ":3"}) {
    ASSERT_EQ(RunCli({"summary", ref, "--store", dir_, "--json"}, out, err), 0) << ref << err;
    EXPECT_EQ(nlohmann::json::parse(out)["seq"], 3) << ref;
  }
  ASSERT_EQ(RunCli({"growth", "--store", dir_, "--agent", name, "--window", "last"}, out, err), 0)
      << err;
  // As every other verb: a service stands for its newest instance, SERVICE/PID for that pid.
  for (const std::string agent : {"svc", "svc/7", "svc/h/7"}) {
    EXPECT_EQ(RunCli({"growth", "--store", dir_, "--agent", agent, "--window", "last"}, out, err),
              0)
        << agent << err;
  }
}

TEST_F(StoreCommandLine, LsShowsHumanSizesAndExactBytesWithBytes) {
  std::string out, err;
  ASSERT_EQ(RunCli({"ls", "--store", dir_, "--json"}, out, err), 0) << err;
  const auto newest = nlohmann::json::parse(out)["services"][0]["agents"][0]["snapshots"].back();
  const uint64_t stored = newest["message_bytes"];
  const std::string exact = " " + std::to_string(stored) + " stored";
  ASSERT_EQ(RunCli({"ls", "--store", dir_}, out, err), 0) << err;
  EXPECT_NE(out.find(diff::HumanBytes(static_cast<double>(stored)) + " stored"), std::string::npos)
      << out;
  EXPECT_EQ(out.find(exact), std::string::npos) << out;
  ASSERT_EQ(RunCli({"ls", "--store", dir_, "--bytes"}, out, err), 0) << err;
  EXPECT_NE(out.find(exact), std::string::npos) << out;
}

TEST_F(StoreCommandLine, AGraphVerbOnAStoredSummarySaysWhereTheAgentsNewestGraphIs) {
  std::string out, err;
  const std::string name = "svc/h/7@1700000000";
  EXPECT_EQ(RunCli({"types", name + ":last", "--store", dir_}, out, err), 1);
  EXPECT_NE(err.find("agent " + name + " has no graph snapshot stored"), std::string::npos) << err;
  {
    auto store = store::Store::Open(dir_, {}, 1);
    ASSERT_TRUE(store) << store.error().message;
    GraphBuilder b;
    b.Add("holder", "list", 1000, {}).Root("holder");
    snapshot::Snapshot graph = b.Build();
    graph.header.identity = ManyTypes(1).header.identity;
    graph.header.seq = 4;
    graph.header.timestamp_ns = ManyTypes(1, 4).header.timestamp_ns;
    ASSERT_TRUE((*store)->Append(*snapshot::Encode(graph), graph.header, graph.types,
                                 graph.header.timestamp_ns));
    const snapshot::Snapshot later = ManyTypes(2, 5);
    ASSERT_TRUE((*store)->Append(*snapshot::Encode(later), later.header, later.types,
                                 later.header.timestamp_ns));
    (*store)->Flush();
  }
  EXPECT_EQ(RunCli({"types", name + ":last", "--store", dir_}, out, err), 1);
  EXPECT_NE(err.find("the newest graph snapshot of " + name + " is " + name + ":4"),
            std::string::npos)
      << err;
  EXPECT_EQ(RunCli({"types", name + ":4", "--store", dir_}, out, err), 0) << err;
}

TEST_F(StoreCommandLine, VerifyCallsAMissingSegmentTheIndexStillListsAFailure) {
  std::string out, err;
  ASSERT_EQ(RunCli({"verify", "--store", dir_}, out, err), 0) << out << err;
  for (const auto& f : fs::directory_iterator(dir_ + "/summary")) {
    if (f.path().extension() == ".seg") fs::remove(f.path());
  }
  EXPECT_EQ(RunCli({"verify", "--store", dir_, "--json"}, out, err), 1) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["removed_meanwhile"], 0) << "still indexed: missing, not removed by retention";
  EXPECT_FALSE(j["failures"].empty());
}

TEST_F(StoreCommandLine, VerifyCallsASegmentWithoutItsIndexAProblem) {
  // Once "0 of 0 stored snapshots decode" and exit 0: its snapshots were listed nowhere.
  std::string out, err;
  for (const auto& f : fs::directory_iterator(dir_ + "/summary")) {
    if (f.path().extension() == ".idx") fs::remove(f.path());
  }
  EXPECT_EQ(RunCli({"verify", "--store", dir_}, out, err), 1) << out << err;
  EXPECT_NE(out.find(".seg: a segment without its index"), std::string::npos) << out;
}

TEST_F(StoreCommandLine, AnUnknownAgentOrServiceIsAnError) {
  std::string out, err;
  EXPECT_EQ(RunCli({"growth", "--store", dir_, "--agent", "nonexistent"}, out, err), 1);
  EXPECT_NE(err.find("no agent 'nonexistent'"), std::string::npos) << err;
  EXPECT_EQ(RunCli({"growth", "--store", dir_, "--service", "nope"}, out, err), 1);
  EXPECT_NE(err.find("of service 'nope'"), std::string::npos) << err;
  EXPECT_EQ(RunCli({"summary", "ghost:last", "--store", dir_}, out, err), 1);
  EXPECT_NE(err.find("no agent 'ghost'"), std::string::npos) << err;
}

TEST_F(StoreCommandLine, NoStoreWhereItLookedIsAnErrorSayingWhereAndHowToNameOne) {
  const std::string nowhere = Path("no-store-here");
  for (const char* verb : {"ls", "alerts", "growth", "reports", "verify"}) {
    std::string out, err;
    EXPECT_EQ(RunCli({verb, "--store", nowhere}, out, err), 1) << verb << out;
    EXPECT_NE(err.find("no tidemark store at " + nowhere + " (--store)"), std::string::npos) << err;
    EXPECT_NE(err.find("TIDEMARK_STORE"), std::string::npos) << err;
    EXPECT_EQ(out, "") << verb << ": nothing reassuring on stdout";
  }
  std::string out, err;
  EXPECT_EQ(RunCli({"summary", "svc:last", "--store", nowhere}, out, err), 1);
  EXPECT_NE(err.find("no tidemark store at"), std::string::npos) << err;
}

}  // namespace
}  // namespace tidemark::cli
