#include <gtest/gtest.h>

#include "analysis/dominators.h"
#include "analysis/heap_graph.h"
#include "analysis/holders.h"
#include "analysis/queries.h"
#include "tests/analysis/graph_builder.h"

namespace tidemark::analysis {
namespace {

using testing::GraphBuilder;

HeapGraph Load(const GraphBuilder& b, LoadOptions options = {}) {
  auto g = HeapGraph::Load(b.Build(), options);
  EXPECT_TRUE(g) << g.error().message;
  return std::move(*g);
}

uint32_t At(const HeapGraph& g, const GraphBuilder& b, const std::string& id) {
  auto i = g.Find(b.AddressOf(id));
  EXPECT_TRUE(i) << id;
  return *i;
}

TEST(Dominators, DiamondJoinIsDominatedByTheFork) {
  GraphBuilder b;
  b.Add("r", "list", 10, {"a", "b"}).Add("a", "X", 1, {"c"}).Add("b", "X", 2, {"c"});
  b.Add("c", "Y", 4).Root("r");
  const HeapGraph g = Load(b);
  const Dominators d = Dominators::Compute(g);
  EXPECT_EQ(d.idom(At(g, b, "c")), At(g, b, "r"));
  EXPECT_EQ(d.idom(At(g, b, "a")), At(g, b, "r"));
  EXPECT_EQ(d.idom(At(g, b, "r")), kNone);
  EXPECT_EQ(d.retained(At(g, b, "r")), 17u);
  EXPECT_EQ(d.retained(At(g, b, "a")), 1u);  // c is reachable around a.
}

TEST(Dominators, CycleMembersDominateWhatOnlyTheyReach) {
  GraphBuilder b;
  b.Add("r", "mod", 1, {"a"}).Add("a", "A", 10, {"b"}).Add("b", "B", 20, {"a", "c"});
  b.Add("c", "C", 40, {"c"}).Root("r");  // c refers to itself too.
  const HeapGraph g = Load(b);
  const Dominators d = Dominators::Compute(g);
  EXPECT_EQ(d.idom(At(g, b, "b")), At(g, b, "a"));
  EXPECT_EQ(d.idom(At(g, b, "c")), At(g, b, "b"));
  EXPECT_EQ(d.retained(At(g, b, "a")), 70u);
  EXPECT_EQ(d.retained(At(g, b, "b")), 60u);
  EXPECT_EQ(d.retained(At(g, b, "c")), 40u);
}

TEST(Roots, UnreachableIslandsGetOneRootEach) {
  GraphBuilder b;
  b.Add("r", "mod", 1, {"a"}).Add("a", "A", 1);
  b.Add("x", "X", 5, {"y"}).Add("y", "Y", 7, {"x", "z"}).Add("z", "Z", 11);  // A cycle held from C.
  b.Add("lone", "L", 3, {"z"});  // Nothing refers to it.
  b.Root("r");
  const HeapGraph g = Load(b);
  EXPECT_EQ(g.root_reason(At(g, b, "r")), RootReason::kModule);
  EXPECT_EQ(g.root_reason(At(g, b, "lone")), RootReason::kUnreferenced);
  const bool x_root = g.root_reason(At(g, b, "x")).has_value();
  const bool y_root = g.root_reason(At(g, b, "y")).has_value();
  EXPECT_NE(x_root, y_root) << "exactly one member of the cycle";
  EXPECT_EQ(g.root_reason(At(g, b, x_root ? "x" : "y")), RootReason::kCycle);
  EXPECT_FALSE(g.root_reason(At(g, b, "z")));
  EXPECT_EQ(g.roots().size(), 3u);
  const Dominators d = Dominators::Compute(g);
  EXPECT_EQ(d.idom(At(g, b, "z")), kNone);  // Reached from two roots.
  EXPECT_EQ(d.retained(At(g, b, x_root ? "x" : "y")), 12u);
}

TEST(Dominators, MillionLongChainNeedsNoRecursion) {
  constexpr uint32_t kLength = 1'000'000;
  snapshot::Snapshot s;
  s.header.kind = snapshot::Kind::kGraph;
  s.types = {{"node", kLength, kLength, 1}};
  snapshot::Graph& gr = s.graph;
  gr.ref_begin.push_back(0);
  for (uint32_t i = 0; i < kLength; ++i) {
    gr.address.push_back(0x1000 + 16 * uint64_t{i});
    gr.type.push_back(0);
    gr.size.push_back(1);
    gr.length.push_back(0);
    if (i + 1 < kLength) gr.refs.push_back(i + 1);
    gr.ref_begin.push_back(gr.refs.size());
  }
  gr.roots.emplace_back(0, snapshot::RootKind::kModule);
  auto g = HeapGraph::Load(std::move(s));
  ASSERT_TRUE(g);
  const Dominators d = Dominators::Compute(*g);
  EXPECT_EQ(d.retained(0), kLength);
  EXPECT_EQ(d.retained(kLength / 2), kLength / 2);
  EXPECT_EQ(d.idom(kLength - 1), kLength - 2);
  g->BuildParents();
  PathFinder finder(*g);
  PathOptions options;
  options.max_depth = kLength;
  auto paths = finder.Find({kLength - 1}, options);
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0].objects.size(), kLength);
}

TEST(Dominators, RetainedByTypeCountsNestedInstancesOnce) {
  GraphBuilder b;
  b.Add("r", "mod", 1, {"n1"}).Add("n1", "Node", 10, {"n2", "s"}).Add("n2", "Node", 10, {"t"});
  b.Add("s", "str", 5).Add("t", "str", 7).Root("r");
  const HeapGraph g = Load(b);
  const Dominators d = Dominators::Compute(g);
  const auto& names = g.type_names();
  const auto node = std::find(names.begin(), names.end(), "Node") - names.begin();
  const auto str = std::find(names.begin(), names.end(), "str") - names.begin();
  EXPECT_EQ(d.retained_by_type()[node], 32u);  // n1 holds all of it; n2 is not counted again.
  EXPECT_EQ(d.retained_by_type()[str], 12u);
  EXPECT_EQ(d.Top(1).front(), At(g, b, "r"));
}

using testing::AppHeap;

TEST(Collapse, InstanceAndModuleAbsorbTheirDicts) {
  const GraphBuilder b = AppHeap();
  const HeapGraph g = Load(b);
  EXPECT_FALSE(g.Find(b.AddressOf("session_dict")));
  EXPECT_FALSE(g.Find(b.AddressOf("app_dict")));
  const uint32_t session = At(g, b, "session");
  EXPECT_EQ(g.bytes(session), 48u + 104u);
  ASSERT_EQ(g.refs(session).size(), 3u);  // user key, user value, then the type.
  EXPECT_EQ(g.refs(session)[2], At(g, b, "Session_type"));
  EXPECT_EQ(g.absorbed_dict_refs(session), 2u);
  EXPECT_EQ(g.bytes(At(g, b, "app")), 172u);
  auto rows = TypeTable(g);
  auto dict_row = std::find_if(rows.begin(), rows.end(), [](auto& r) { return r.name == "dict"; });
  ASSERT_NE(dict_row, rows.end());
  EXPECT_EQ(dict_row->count, 1u);  // Only the cache dict is left.

  const HeapGraph raw = Load(b, LoadOptions{.collapse_instance_dicts = false});
  EXPECT_TRUE(raw.Find(b.AddressOf("session_dict")));
}

// CACHE = Cache(); CACHE.store = {'k0': bytearray} as 3.13 keeps it: the instance holds its
// one attribute inline, so its references are exactly a dict and its type.
GraphBuilder InlineCacheHeap(bool recorded) {
  GraphBuilder b;
  b.Add("leaky", "module", 72, {"leaky_dict"}).Name("leaky", "leaky");
  b.Add("leaky_dict", "dict", 100, {"k_cache", "cache"});
  b.Add("k_cache", "str", 50);
  b.Add("cache", "leaky.Cache", 48, {"store", "Cache_type"});
  b.Add("Cache_type", "type", 900).Name("Cache_type", "leaky.Cache");
  b.Add("store", "dict", 1000, {"k0", "payload"});
  b.Add("k0", "str", 50);
  b.Add("payload", "bytearray", 120);
  b.Root("leaky");
  if (recorded) {
    b.Owns("leaky", "leaky_dict").AttributeKey("k_cache", "CACHE");
    b.Attribute("cache", "store", "store");
  }
  return b;
}

TEST(Collapse, RecordedOwnershipKeepsAnInstancesOnlyDictAttributeApart) {
  const GraphBuilder b = InlineCacheHeap(true);
  HeapGraph g = Load(b);
  EXPECT_FALSE(g.ownership_inferred());
  EXPECT_FALSE(g.Find(b.AddressOf("leaky_dict")));  // The recorded namespace is folded...
  ASSERT_TRUE(g.Find(b.AddressOf("store")));        // ...the attribute is not.
  EXPECT_EQ(g.bytes(At(g, b, "cache")), 48u);
  g.BuildParents();
  PathFinder finder(g);
  auto paths = finder.Find({At(g, b, "payload")});
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0].text, "leaky.CACHE.store[<key>]");
}

TEST(Collapse, WithoutRecordedOwnershipMeliaesGuessIsUsedAndSaidToBe) {
  const GraphBuilder b = InlineCacheHeap(false);
  const HeapGraph g = Load(b);
  EXPECT_TRUE(g.ownership_inferred());
  EXPECT_FALSE(g.Find(b.AddressOf("store")));  // The guess: Cache absorbed its attribute.
  EXPECT_EQ(g.bytes(At(g, b, "cache")), 1048u);
  EXPECT_FALSE(Load(b, LoadOptions{.collapse_instance_dicts = false}).ownership_inferred());
}

TEST(Collapse, RecordedOwnershipThatWouldChainIsKeptAMatching) {
  GraphBuilder b;  // A hostile snapshot: d1 owned by d2, d2 owned by o.
  b.Add("o", "thing", 10, {"d2"}).Add("d2", "dict", 20, {"d1"}).Add("d1", "dict", 30);
  b.Owns("d2", "d1").Owns("o", "d2").Root("o");
  const HeapGraph g = Load(b);
  EXPECT_EQ(g.size(), 2u);  // d2 absorbed d1; o keeps d2, which owns.
  EXPECT_EQ(g.total_bytes(), 60u);
}

TEST(Paths, NamedChainFromAModuleToTheObject) {
  const GraphBuilder b = AppHeap();
  HeapGraph g = Load(b);
  g.BuildParents();
  PathFinder finder(g);
  auto paths = finder.Find({At(g, b, "user")});
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0].text, "app.cache['users'][1].user");
  EXPECT_EQ(paths[0].root, RootReason::kModule);
}

TEST(Paths, DepthBoundStopsTheSearch) {
  const GraphBuilder b = AppHeap();
  HeapGraph g = Load(b);
  g.BuildParents();
  PathFinder finder(g);
  PathOptions options;
  options.max_depth = 2;
  EXPECT_TRUE(finder.Find({At(g, b, "user")}, options).empty());
}

TEST(Parents, CappedParentsKeepTheTrueCount) {
  GraphBuilder b;
  b.Add("shared", "str", 10);
  for (int i = 0; i < 5; ++i) b.Add("p" + std::to_string(i), "list", 1, {"shared", "shared"});
  HeapGraph g = Load(b, LoadOptions{.max_parents = 2});
  g.BuildParents();
  const uint32_t shared = At(g, b, "shared");
  EXPECT_EQ(g.parents(shared).size(), 2u);
  EXPECT_EQ(g.true_parent_count(shared), 5u);  // Duplicates within a parent counted once.
  EXPECT_TRUE(g.parents_capped());
}

TEST(Load, ReferenceCapKeepsTheTrueCountAndSaysSo) {
  GraphBuilder b;
  b.Add("l", "list", 1, {"a", "b", "c"}).Add("a", "int", 1).Add("b", "int", 1).Add("c", "int", 1);
  const HeapGraph g = Load(b, LoadOptions{.max_refs = 1});
  EXPECT_EQ(g.refs(At(g, b, "l")).size(), 1u);
  EXPECT_EQ(g.true_ref_count(At(g, b, "l")), 3u);
  EXPECT_TRUE(g.refs_capped());
}

TEST(Queries, SummaryRootedAtAnObjectStopsAtExclusions) {
  const GraphBuilder b = AppHeap();
  const HeapGraph g = Load(b);
  const auto reachable = Reachable(g, At(g, b, "cache"), {At(g, b, "session")});
  auto rows = TypeTable(g, reachable);
  uint64_t total = 0;
  for (const auto& r : rows) total += r.bytes;
  EXPECT_EQ(total, 200u + 50u + 80u + 28u);  // cache, its key, the list, the int.
}

TEST(Load, SummarySnapshotIsRefusedWithAHint) {
  snapshot::Snapshot s;
  auto g = HeapGraph::Load(std::move(s));
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().message.find("graph snapshot"), std::string::npos);
}

// A module list of Records, each holding a payload, beside a str spread over three modules.
GraphBuilder RecordsHeap() {
  GraphBuilder b;
  b.Add("mod", "module", 50, {"records", "s1"}).Name("mod", "app").Root("mod");
  b.Add("other", "module", 50, {"s2"}).Name("other", "lib").Root("other");
  b.Add("third", "module", 50, {"s3"}).Name("third", "util").Root("third");
  std::vector<std::string> records;
  for (int i = 0; i < 4; ++i) records.push_back("r" + std::to_string(i));
  b.Add("records", "list", 88, records);
  for (int i = 0; i < 4; ++i) {
    b.Add("r" + std::to_string(i), "app.Record", 48, {"p" + std::to_string(i)});
    b.Add("p" + std::to_string(i), "bytes", 4000);
  }
  b.Add("s1", "str", 60).Add("s2", "str", 60).Add("s3", "str", 60);
  return b;
}

TEST(Holders, InOneSnapshotThePayloadsAreHeldByTheListOfTheirRecordsNotEachRecord) {
  const GraphBuilder b = RecordsHeap();
  HeapGraph g = Load(b);
  g.BuildParents();
  const Dominators d = Dominators::Compute(g);
  const auto largest = LargestTypesHeld(g, d, 3, 3);
  ASSERT_GE(largest.size(), 2u);
  EXPECT_EQ(largest[0].type, "bytes");
  EXPECT_EQ(largest[0].bytes, 16000u);
  ASSERT_EQ(largest[0].holders.size(), 1u);
  EXPECT_EQ(largest[0].holders[0].object, At(g, b, "records"));
  EXPECT_EQ(largest[0].holders[0].count, 4u);
  EXPECT_EQ(largest[0].holders[0].bytes, 16000u);
  EXPECT_EQ(largest[1].type, "app.Record");
  EXPECT_EQ(largest[1].holders[0].object, At(g, b, "records"));
}

TEST(Holders, ATypeNoSingleObjectHoldsHalfOfIsListedByItsNearestOutsideDominators) {
  const GraphBuilder b = RecordsHeap();
  HeapGraph g = Load(b);
  g.BuildParents();
  const Dominators d = Dominators::Compute(g);
  for (const TypeHeld& t : LargestTypesHeld(g, d, 10, 3)) {
    if (t.type != "str") continue;
    ASSERT_EQ(t.holders.size(), 3u);  // A third each: the three modules, each holding one.
    EXPECT_EQ(t.holders[0].count, 1u);
    return;
  }
  FAIL() << "no str row";
}

}  // namespace
}  // namespace tidemark::analysis
