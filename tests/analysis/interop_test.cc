#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "analysis/dominators.h"
#include "analysis/exports.h"
#include "analysis/graph_diff.h"
#include "analysis/heap_graph.h"
#include "analysis/meliae.h"
#include "analysis/queries.h"
#include "snapshot/wire.h"
#include "tests/analysis/graph_builder.h"

namespace tidemark::analysis {
namespace {

using testing::GraphBuilder;

std::string TempPath(const std::string& name) {
  std::string path = TEST_TMPDIR;  // Per test: they run in parallel.
  path += "/";
  path += ::testing::UnitTest::GetInstance()->current_test_info()->name();
  path += "-";
  path += name;
  return path;
}

// A small dump in meliae's format. Worked by hand:
//   module app (72) -> its dict (200: __name__ 'app', items -> list)
//   list (88, two Items) -> item1, item2; item1 is listed twice (a duplicate ref)
//   Item (40) -> its dict (96: 'name' -> the shared str) and the Item type (900)
//   str 'shared' (55) is referenced by both Item dicts.
// With instance dicts collapsed: module 272; Items 136 each; dict 0 left.
const char* kDump = R"([
{"address": 1, "type": "module", "size": 72, "name": "app", "refs": [2]},
{"refs": [3, 4, 5, 6], "address": 2, "type": "dict", "size": 200, "len": 2},
{"address": 3, "type": "str", "size": 52, "len": 8, "value": "__name__", "refs": []},
{"address": 4, "type": "str", "size": 52, "len": 3, "value": "app", "refs": []},
{"address": 5, "type": "str", "size": 54, "len": 5, "value": "items", "refs": []},
{"address": 6, "type": "list", "size": 88, "len": 3, "refs": [7, 8, 7, 999]},
{"address": 7, "type": "Item", "size": 40, "refs": [9, 11]},
{"address": 8, "size": 40, "type": "Item", "refs": [11, 10]},
{"address": 9, "type": "dict", "size": 96, "len": 1, "refs": [12, 13]},
{"address": 10, "type": "dict", "size": 96, "len": 1, "refs": [12, 13]},
{"address": 11, "type": "type", "size": 900, "name": "Item", "refs": []},
{"address": 12, "type": "str", "size": 53, "len": 4, "value": "name", "refs": []},
{"address": 13, "type": "str", "size": 55, "len": 6, "value": "shared", "refs": []},
]
)";

TEST(Meliae, ImportGivesTheLoadersNumbers) {
  const std::string path = TempPath("dump.json");
  std::ofstream(path) << kDump;
  MeliaeImportStats stats;
  auto snapshot = ReadMeliaeDump(path, &stats);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  EXPECT_EQ(stats.objects, 13u);
  EXPECT_EQ(stats.dangling_references, 1u);  // 999 has no line.
  auto loaded = HeapGraph::Load(std::move(*snapshot));
  ASSERT_TRUE(loaded);
  HeapGraph& g = *loaded;
  EXPECT_EQ(g.size(), 10u);  // Three dicts absorbed: the module's and two Items'.
  const auto rows = TypeTable(g);
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;
  for (const auto& r : rows) by_type[r.name] = {r.count, r.bytes};
  EXPECT_EQ(by_type["Item"], (std::pair<uint64_t, uint64_t>{2, 272}));
  EXPECT_EQ(by_type["module"], (std::pair<uint64_t, uint64_t>{1, 272}));
  EXPECT_EQ(by_type["str"], (std::pair<uint64_t, uint64_t>{5, 266}));
  EXPECT_EQ(by_type.count("dict"), 0u);
  EXPECT_EQ(rows.front().name, "type");  // 900 bytes: the largest row.
  EXPECT_EQ(g.total_bytes(), 72u + 200 + 266 + 88 + 2 * 136 + 900);

  g.BuildParents();
  const uint32_t shared = *g.Find(13);
  EXPECT_EQ(g.true_parent_count(shared), 2u);  // Both Items (their dicts were absorbed).
  const uint32_t item1 = *g.Find(7);
  EXPECT_EQ(g.true_parent_count(item1), 1u);  // The list, once despite two references.
  // compute_total_size(item1): itself, 'name', 'shared', the Item type.
  uint64_t total = 0;
  for (uint32_t i : Reachable(g, item1)) total += g.bytes(i);
  EXPECT_EQ(total, 136u + 53 + 55 + 900);
  EXPECT_EQ(g.root_reason(*g.Find(1)), RootReason::kUnreferenced);
}

TEST(Meliae, GzipFilesAreReadLikePlainOnes) {
  const std::string path = TempPath("dump.json.gz");
  gzFile f = gzopen(path.c_str(), "wb");
  gzputs(f, kDump);
  gzclose(f);
  auto snapshot = ReadMeliaeDump(path);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  EXPECT_EQ(snapshot->graph.object_count(), 13u);
}

TEST(Meliae, ABadLineIsNamedWithItsNumber) {
  const std::string path = TempPath("bad.json");
  std::ofstream(path)
      << "[\n{\"address\": 1, \"type\": \"str\", \"size\": 5, \"refs\": []},\n{\"type\": \"x\"}\n";
  auto snapshot = ReadMeliaeDump(path);
  ASSERT_FALSE(snapshot);
  EXPECT_NE(snapshot.error().message.find("bad.json:3"), std::string::npos)
      << snapshot.error().message;
}

TEST(Meliae, NumbersThatAreNotWholeOrOutOfRangeAreRefusedWithTheLineAndField) {
  struct Case {
    const char* line;
    const char* field;
  };
  for (const Case& c :
       {Case{R"({"address": 1, "type": "str", "size": 1e+300, "refs": []})", "size"},
        Case{R"({"address": 2.5, "type": "str", "size": 5, "refs": []})", "address"},
        Case{R"({"address": 1, "type": "str", "size": -5, "refs": []})", "size"},
        Case{R"({"address": 1, "type": "str", "size": 5, "len": "7"})", "len"},
        Case{R"({"address": 1, "type": "str", "size": 5, "refs": [1e19]})", "refs"},
        Case{R"({"address": 18446744073709551616, "type": "x", "size": 5})", "address"}}) {
    const std::string path = TempPath("numbers.json");
    std::ofstream(path) << "[\n{\"address\": 9, \"type\": \"int\", \"size\": 28}\n"
                        << c.line << "\n";
    auto snapshot = ReadMeliaeDump(path);
    ASSERT_FALSE(snapshot) << c.line;
    EXPECT_NE(snapshot.error().message.find("numbers.json:3"), std::string::npos)
        << snapshot.error().message;
    EXPECT_NE(snapshot.error().message.find(std::string("'") + c.field + "'"), std::string::npos)
        << snapshot.error().message;
  }
}

GraphBuilder Cache(int sessions, int first_new_address) {
  GraphBuilder b;
  std::vector<std::string> items;
  for (int k = 0; k < sessions; ++k) items.push_back("s" + std::to_string(k));
  std::vector<std::string> module_refs = {"k", "cache"};
  b.Add("app", "module", 72, {"app_dict"}).Name("app", "app");
  b.Add("app_dict", "dict", 100, {"k", "cache"}, 0x100);
  b.Add("k", "str", 50, {}, 0x200).Value("k", "cache");
  b.Add("cache", "list", 80, items, 0x300);
  for (int k = 0; k < sessions; ++k) {
    const uint64_t address = k < first_new_address ? 0x1000 + 0x100 * k : 0x90000 + 0x100 * k;
    b.Add("s" + std::to_string(k), "Session", 64, {"p" + std::to_string(k)}, address);
    b.Add("p" + std::to_string(k), "bytes", 100, {}, address + 0x40);
  }
  b.Root("app");
  return b;
}

TEST(GraphDiff, NewObjectsAreGroupedByTypeWithTheOldContainerThatHoldsThem) {
  auto a = HeapGraph::Load(Cache(2, 2).Build());
  auto b_graph = Cache(5, 2).Build();
  b_graph.header.timestamp_ns = 60'000'000'000;
  auto b = HeapGraph::Load(std::move(b_graph));
  ASSERT_TRUE(a && b);
  b->BuildParents();
  const Dominators d = Dominators::Compute(*b);
  const GraphDiffResult r = DiffGraphs(*a, *b, d);
  EXPECT_EQ(r.new_objects, 6u);  // Three Sessions and their payloads.
  EXPECT_EQ(r.gone_objects, 0u);
  ASSERT_GE(r.groups.size(), 2u);
  EXPECT_EQ(r.groups[0].type, "bytes");
  EXPECT_EQ(r.groups[1].type, "Session");
  EXPECT_EQ(r.groups[1].count, 3u);
  ASSERT_EQ(r.groups[1].holders.size(), 1u);
  EXPECT_EQ(r.groups[1].holders[0].bytes, 3u * 164);
  EXPECT_EQ(r.groups[1].holders[0].path, "app.cache");
  EXPECT_EQ(r.seconds, 60.0);
}

TEST(GraphDiff, TheHolderOfAPayloadSaysWhatTheLeakIsMadeOfContentsIncluded) {
  auto a = HeapGraph::Load(Cache(2, 2).Build());
  auto b = HeapGraph::Load(Cache(5, 2).Build());
  ASSERT_TRUE(a && b);
  b->BuildParents();
  const GraphDiffResult r = DiffGraphs(*a, *b, Dominators::Compute(*b));
  ASSERT_EQ(r.groups[0].type, "bytes");  // The payloads are the largest group...
  ASSERT_EQ(r.groups[0].holders.size(), 1u);
  const Holder& h = r.groups[0].holders[0];
  EXPECT_EQ(h.path, "app.cache");
  EXPECT_EQ(h.outermost_type, "Session");  // ...but the cache holds Sessions.
  EXPECT_EQ(h.outermost_count, 3u);
  EXPECT_EQ(h.outermost_bytes, 3u * 164) << "each Session with its payload";
}

TEST(GraphDiff, AReusedAddressOfAnotherTypeIsNew) {
  GraphBuilder before;
  before.Add("x", "str", 10, {}, 0x5000).Root("x");
  GraphBuilder after;
  after.Add("x", "bytes", 10, {}, 0x5000).Root("x");
  auto a = HeapGraph::Load(before.Build());
  auto b = HeapGraph::Load(after.Build());
  b->BuildParents();
  const GraphDiffResult r = DiffGraphs(*a, *b, Dominators::Compute(*b));
  EXPECT_EQ(r.new_objects, 1u);
  EXPECT_EQ(r.gone_objects, 1u);
}

struct Exported {
  HeapGraph graph;
  Dominators dominators;
};

Exported AppGraph() {
  GraphBuilder b = Cache(4, 4);
  auto g = HeapGraph::Load(b.Build());
  EXPECT_TRUE(g);
  Dominators d = Dominators::Compute(*g);
  return {std::move(*g), std::move(d)};
}

TEST(Exports, FoldedStacksSumToTheHeap) {
  const Exported e = AppGraph();
  std::ostringstream out;
  WriteFoldedStacks(e.graph, e.dominators, out);
  std::istringstream lines(out.str());
  std::string line;
  uint64_t total = 0;
  bool saw_session_stack = false;
  while (std::getline(lines, line)) {
    const auto space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    total += std::stoull(line.substr(space + 1));
    saw_session_stack |= line.rfind("module;list;Session ", 0) == 0;
  }
  EXPECT_EQ(total, e.graph.total_bytes());
  EXPECT_TRUE(saw_session_stack) << out.str();
}

TEST(Exports, CallgrindFileIsReadByCallgrindAnnotate) {
  const Exported e = AppGraph();
  const std::string path = TempPath("heap.callgrind");
  {
    std::ofstream out(path);
    WriteCallgrind(e.graph, e.dominators, out);
  }
  FILE* pipe = popen(("callgrind_annotate --inclusive=yes " + path + " 2>&1").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string text;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) text.append(buffer, n);
  const int status = pclose(pipe);
  if (WEXITSTATUS(status) == 127) GTEST_SKIP() << "callgrind_annotate (valgrind) not installed";
  ASSERT_EQ(WEXITSTATUS(status), 0) << text;
  // Its totals line prints the heap's bytes with thousands separators.
  std::string bytes = std::to_string(e.graph.total_bytes());
  for (int k = static_cast<int>(bytes.size()) - 3; k > 0; k -= 3) bytes.insert(k, ",");
  EXPECT_NE(text.find(bytes), std::string::npos) << text;
  EXPECT_NE(text.find("Session"), std::string::npos) << text;
}

TEST(Exports, HeapSnapshotMatchesChromesSchema) {
  const Exported e = AppGraph();
  std::ostringstream out;
  WriteHeapSnapshot(e.graph, out);
  const nlohmann::json j = nlohmann::json::parse(out.str());
  const auto& meta = j["snapshot"]["meta"];
  const size_t node_fields = meta["node_fields"].size();
  const size_t edge_fields = meta["edge_fields"].size();
  ASSERT_EQ(node_fields, 7u);
  ASSERT_EQ(edge_fields, 3u);
  const auto& nodes = j["nodes"];
  const auto& edges = j["edges"];
  const auto& strings = j["strings"];
  ASSERT_EQ(nodes.size() % node_fields, 0u);
  EXPECT_EQ(nodes.size() / node_fields, j["snapshot"]["node_count"].get<size_t>());
  EXPECT_EQ(nodes.size() / node_fields, e.graph.size() + 1);
  const size_t node_types = meta["node_types"][0].size();
  const size_t edge_types = meta["edge_types"][0].size();
  uint64_t edge_total = 0, self_total = 0;
  for (size_t n = 0; n < nodes.size(); n += node_fields) {
    EXPECT_LT(nodes[n].get<size_t>(), node_types);
    EXPECT_LT(nodes[n + 1].get<size_t>(), strings.size());
    self_total += nodes[n + 3].get<uint64_t>();
    edge_total += nodes[n + 4].get<uint64_t>();
  }
  EXPECT_EQ(self_total, e.graph.total_bytes());
  ASSERT_EQ(edges.size(), edge_total * edge_fields);
  bool named_cache = false;
  for (size_t k = 0; k < edges.size(); k += edge_fields) {
    const size_t type = edges[k].get<size_t>();
    ASSERT_LT(type, edge_types);
    const size_t to = edges[k + 2].get<size_t>();
    EXPECT_EQ(to % node_fields, 0u);
    EXPECT_LT(to, nodes.size());
    if (type != 1) {  // Not an element: the name is a string index.
      ASSERT_LT(edges[k + 1].get<size_t>(), strings.size());
      named_cache |= strings[edges[k + 1].get<size_t>()] == "cache";
    }
  }
  EXPECT_TRUE(named_cache);
}

}  // namespace
}  // namespace tidemark::analysis
