#include "snapshot/wire.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <msgpack.hpp>

namespace tidemark::snapshot {
namespace {

Snapshot MakeSummary() {
  Snapshot s;
  s.header.kind = Kind::kSummary;
  s.header.identity = {"checkout", "host-1", 4242, 1700000000000000000, {{"env", "prod"}}};
  s.header.seq = 7;
  s.header.timestamp_ns = 1700000000500000000;
  s.header.objects = 15;
  s.header.bytes = 1500;
  s.header.rss_bytes = 1 << 20;
  s.header.gc_counts = {1, 2, 3};
  s.header.python_version = "3.11.7";
  s.header.agent.pause_ms = 1.5;
  s.header.agent.dropped = 2;
  s.types = {{"dict", 10, 1000, 200}, {"app.Order", 5, 500, 100}};
  return s;
}

Snapshot MakeGraph() {
  Snapshot s = MakeSummary();
  s.header.kind = Kind::kGraph;
  s.header.has_values = true;
  Graph& g = s.graph;
  g.address = {0x7f0000001000, 0x7f0000000ff0, 0x7f0000002000};
  g.type = {0, 1, 1};
  g.size = {232, 56, 56};
  g.length = {2, 0, 0};
  g.ref_begin = {0, 2, 3, 3};
  g.refs = {1, 2, 0};
  g.true_ref_counts = {{1, 5}};
  g.roots = {{0, RootKind::kModule}};
  g.names = {{0, "app"}};
  g.values = {{2, "hello"}};
  return s;
}

std::string PackMap(std::initializer_list<
                    std::pair<const char*, std::function<void(msgpack::packer<msgpack::sbuffer>&)>>>
                        items) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  p.pack_map(items.size());
  for (const auto& [k, f] : items) {
    p.pack(std::string(k));
    f(p);
  }
  return std::string(buf.data(), buf.size());
}

// Builds a message from raw header and body bytes, so tests can craft bad bodies.
std::string Wrap(const std::string& header, const std::string& body, Kind kind = Kind::kSummary,
                 uint16_t version = kFormatVersion) {
  std::string frame(ZSTD_compressBound(body.size()), '\0');
  frame.resize(ZSTD_compress(frame.data(), frame.size(), body.data(), body.size(), 1));
  std::string out = "TDMK";
  auto le = [&](uint64_t v, int w) {
    for (int i = 0; i < w; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  };
  le(version, 2);
  out.push_back(static_cast<char>(kind));
  out.push_back(1);
  le(header.size(), 4);
  le(frame.size(), 4);
  le(body.size(), 8);
  return out + header + frame;
}

std::string ValidHeader(Kind kind = Kind::kSummary) {
  Snapshot s = MakeSummary();
  s.header.kind = kind;
  std::string m = *Encode(s);
  uint32_t h = 0;
  for (int i = 3; i >= 0; --i) h = (h << 8) | static_cast<uint8_t>(m[8 + i]);
  return m.substr(kEnvelopeSize, h);
}

TEST(Wire, SummaryRoundTrips) {
  Snapshot s = MakeSummary();
  auto encoded = Encode(s);
  ASSERT_TRUE(encoded) << encoded.error().message;
  auto decoded = Decode(*encoded);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->header.identity.service, "checkout");
  EXPECT_EQ(decoded->header.identity.pid, 4242);
  EXPECT_EQ(decoded->header.identity.labels.at(0).second, "prod");
  EXPECT_EQ(decoded->header.seq, 7u);
  EXPECT_EQ(decoded->header.types, 2u);
  EXPECT_EQ(decoded->header.gc_counts, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_DOUBLE_EQ(decoded->header.agent.pause_ms, 1.5);
  ASSERT_EQ(decoded->types.size(), 2u);
  EXPECT_EQ(decoded->types[1].name, "app.Order");
  EXPECT_EQ(decoded->types[1].bytes, 500u);
  EXPECT_EQ(decoded->types[0].max_bytes, 200u);
  EXPECT_EQ(decoded->graph.object_count(), 0u);
}

TEST(Wire, MemoryFiguresRoundTripOnlyWhenALimitIsKnown) {
  Snapshot s = MakeSummary();
  auto plain = Decode(*Encode(s));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->header.memory.limit, 0u);
  s.header.memory = {.current = 900, .limit = 1000, .source = "cgroup2", .crossed_pct = 90};
  auto decoded = Decode(*Encode(s));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->header.memory.current, 900u);
  EXPECT_EQ(decoded->header.memory.limit, 1000u);
  EXPECT_EQ(decoded->header.memory.source, "cgroup2");
  EXPECT_EQ(decoded->header.memory.crossed_pct, 90u);
}

TEST(Wire, MemoryCrossedPastAHundredOrWithoutALimitIsRejected) {
  Snapshot s = MakeSummary();
  s.header.memory = {.current = 900, .limit = 1000, .source = "rss", .crossed_pct = 150};
  auto decoded = Decode(*Encode(s));
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error().message.find("memory.crossed 150"), std::string::npos)
      << decoded.error().message;
}

TEST(Wire, GraphRoundTripsWithUnalignedAddressesAndBackwardReferences) {
  Snapshot s = MakeGraph();
  s.graph.address[2] = 0x7f0000002003;  // Forces the unshifted address encoding.
  auto decoded = Decode(*Encode(s));
  ASSERT_TRUE(decoded) << decoded.error().message;
  const Graph& g = decoded->graph;
  EXPECT_EQ(g.address, s.graph.address);
  EXPECT_EQ(g.type, s.graph.type);
  EXPECT_EQ(g.size, s.graph.size);
  EXPECT_EQ(g.length, s.graph.length);
  EXPECT_EQ(g.ref_begin, s.graph.ref_begin);
  EXPECT_EQ(g.refs, s.graph.refs);
  EXPECT_EQ(g.true_ref_counts, s.graph.true_ref_counts);
  EXPECT_EQ(g.roots, s.graph.roots);
  EXPECT_EQ(g.names, s.graph.names);
  EXPECT_EQ(g.values, s.graph.values);
  EXPECT_TRUE(decoded->header.has_values);
}

Snapshot MakeOwnedGraph() {
  Snapshot s = MakeGraph();
  Graph& g = s.graph;
  g.ownership_recorded = true;
  g.owners = {{1, 0}};
  g.attribute_names = {"store", "items", "CACHE"};
  g.attribute_keys = {{2, 2}};
  g.attributes = {{0, 2, 0}, {0, 1, 1}, {2, 0, 1}};
  return s;
}

TEST(Wire, Format2RecordsOwnershipAndAttributeNames) {
  const Snapshot s = MakeOwnedGraph();
  const std::string m = *Encode(s);
  EXPECT_EQ(m[4], 2);
  auto decoded = Decode(m);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_TRUE(decoded->graph.ownership_recorded);
  EXPECT_EQ(decoded->graph.owners, s.graph.owners);
  EXPECT_EQ(decoded->graph.attribute_names, s.graph.attribute_names);
  EXPECT_EQ(decoded->graph.attributes, s.graph.attributes);
  EXPECT_EQ(decoded->graph.attribute_keys, s.graph.attribute_keys);
}

TEST(Wire, Format1GraphsStillDecodeWithOwnershipUnknown) {
  std::string m = *Encode(MakeGraph());  // No ownership recorded: format 1's keys only.
  m[4] = 1;
  auto decoded = Decode(m);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_FALSE(decoded->graph.ownership_recorded);
  EXPECT_EQ(decoded->graph.refs, MakeGraph().graph.refs);
}

TEST(Wire, OwnershipNamingMissingObjectsOrNamesIsRejected) {
  Snapshot s = MakeOwnedGraph();
  s.graph.attributes.push_back({0, 2, 7});
  auto r = Decode(*Encode(s));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("missing attribute name"), std::string::npos)
      << r.error().message;
  s = MakeOwnedGraph();
  s.graph.owners.emplace_back(9, 0);
  r = Decode(*Encode(s));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("owners pairs object 9"), std::string::npos)
      << r.error().message;
}

// A snapshot with the sampler's allocation sites: two stacks, a row of no object.
void AddSites(Snapshot& s) {
  Sites& sites = s.sites;
  sites.recorded = true;
  sites.mean_bytes = 524288;
  sites.live_samples = 3;
  sites.dropped_samples = 1;
  sites.restarts = 2;
  sites.strings = {"app.py", "login", "<module>"};
  sites.frames = {{0, 1, 42}, {0, 2, 7}};
  sites.stacks = {{0, 1}, {}};
  sites.rows = {{0, 0, 1 << 20, 300}, {Sites::kNoObject, 1, 4096, 2}};
}

TEST(Wire, AllocationSitesRoundTripInSummariesAndGraphs) {
  Snapshot summary = MakeSummary();
  AddSites(summary);
  auto decoded = Decode(*Encode(summary));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_TRUE(decoded->sites.recorded);
  EXPECT_EQ(decoded->sites.mean_bytes, 524288u);
  EXPECT_EQ(decoded->sites.dropped_samples, 1u);
  EXPECT_EQ(decoded->sites.restarts, 2u);
  EXPECT_EQ(decoded->sites.strings, summary.sites.strings);
  EXPECT_EQ(decoded->sites.frames, summary.sites.frames);
  EXPECT_EQ(decoded->sites.stacks, summary.sites.stacks);
  EXPECT_EQ(decoded->sites.rows, summary.sites.rows);

  Snapshot graph = MakeOwnedGraph();
  AddSites(graph);
  graph.graph.object_sites = {{0, 0}, {2, 1}};
  decoded = Decode(*Encode(graph));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->graph.object_sites, graph.graph.object_sites);
  EXPECT_FALSE(Decode(*Encode(MakeSummary()))->sites.recorded);  // Not sampling: no sites.
}

TEST(Wire, SitesNamingMissingStacksFramesTypesOrObjectsAreRejected) {
  auto rejected = [](Snapshot s, const std::string& what) {
    auto r = Decode(*Encode(s));
    ASSERT_FALSE(r) << what;
    EXPECT_NE(r.error().message.find(what), std::string::npos) << r.error().message;
  };
  Snapshot s = MakeSummary();
  AddSites(s);
  s.sites.rows.push_back({0, 9, 1, 1});
  rejected(s, "missing stack");
  s = MakeSummary();
  AddSites(s);
  s.sites.rows.push_back({77, 0, 1, 1});
  rejected(s, "names type 77");
  s = MakeSummary();
  AddSites(s);
  s.sites.stacks.push_back({5});
  rejected(s, "missing frame");
  s = MakeSummary();
  AddSites(s);
  s.sites.frames.push_back({9, 0, 1});
  rejected(s, "missing string");
  s = MakeOwnedGraph();
  AddSites(s);
  s.graph.object_sites = {{99, 0}};
  rejected(s, "missing object");
}

// Objects laid out far from their walk-order neighbours but next to the object that first
// refers to them: the encoder codes addresses against that object, and must decode back.
TEST(Wire, ChurnedGraphRoundTripsThroughDiscovererAddressCoding) {
  Snapshot s = MakeSummary();
  s.header.kind = Kind::kGraph;
  Graph& g = s.graph;
  const int owners = 200;
  uint32_t state = 7;
  for (int i = 0; i < owners; ++i) {  // Owners first, scattered; then their children.
    state = state * 1664525u + 1013904223u;
    g.address.push_back(0x7f0000000000ull + (uint64_t{state} << 8));
  }
  for (int i = 0; i < owners; ++i) g.address.push_back(g.address[i] + 48);
  g.ref_begin.push_back(0);
  for (int i = 0; i < 2 * owners; ++i) {
    g.type.push_back(i < owners ? 0 : 1);
    g.size.push_back(48);
    g.length.push_back(0);
    if (i < owners) g.refs.push_back(owners + i);
    g.ref_begin.push_back(g.refs.size());
  }
  auto encoded = Encode(s);
  ASSERT_TRUE(encoded);
  auto decoded = Decode(*encoded);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->graph.address, g.address);
  EXPECT_EQ(decoded->graph.refs, g.refs);
  // Coded against the previous object, each child would cost a 9-byte integer.
  EXPECT_LT(encoded->size(), 2000u);
}

TEST(Wire, ReplacedHeaderKeepsTheBodyAndDecodes) {
  Snapshot s = MakeGraph();
  const std::string original = *Encode(s);
  Header other = s.header;
  other.identity.service = "a-much-longer-service-name-than-before";
  other.seq = 99;
  other.types = s.types.size();
  auto replaced = ReplaceHeader(original, other);
  ASSERT_TRUE(replaced) << replaced.error().message;
  auto decoded = Decode(*replaced);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->header.identity.service, other.identity.service);
  EXPECT_EQ(decoded->header.seq, 99u);
  EXPECT_EQ(decoded->graph.refs, s.graph.refs);
}

TEST(Wire, CheckFrameAcceptsWhatDecodesAndRefusesACorruptBody) {
  const std::string good = *Encode(MakeGraph());
  ASSERT_TRUE(CheckFrame(good)) << CheckFrame(good).error().message;
  std::string corrupt = good;
  corrupt[corrupt.size() - 6] ^= 0x55;  // Inside the frame: block data or checksum.
  EXPECT_FALSE(CheckFrame(corrupt));
  EXPECT_FALSE(Decode(corrupt));
  const std::string truncated = good.substr(0, good.size() - 3);
  EXPECT_FALSE(CheckFrame(truncated));
}

TEST(Wire, CheckFrameRefusesABodyLargerThanDeclared) {
  // A frame of 1 MiB whose envelope claims 1 KiB: the decompression bomb shape.
  const std::string zeros(1 << 20, '\0');
  std::string message = Wrap(ValidHeader(), zeros);
  for (int i = 0; i < 8; ++i) message[16 + i] = static_cast<char>(uint64_t{1024} >> (8 * i));
  auto checked = CheckFrame(message);
  ASSERT_FALSE(checked);
  EXPECT_NE(checked.error().message.find("does not match the envelope"), std::string::npos)
      << checked.error().message;
}

TEST(Wire, HeaderIsReadableWithoutTheBody) {
  std::string m = *Encode(MakeGraph());
  m.resize(m.size() - 1);  // The body is now broken; the header alone still reads.
  auto env = DecodeEnvelope(m);
  EXPECT_FALSE(env);
  std::string ok = *Encode(MakeGraph());
  auto header = DecodeHeader(ok);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->kind, Kind::kGraph);
  EXPECT_EQ(header->identity.host, "host-1");
}

TEST(Wire, EveryTruncationIsRejectedWithoutCrashing) {
  const std::string m = *Encode(MakeGraph());
  for (size_t n = 0; n < m.size(); ++n) {
    auto r = Decode(std::string_view(m).substr(0, n));
    ASSERT_FALSE(r) << "accepted a message truncated to " << n << " bytes";
    EXPECT_FALSE(r.error().message.empty());
  }
}

TEST(Wire, TrailingBytesAreRejected) {
  auto r = Decode(*Encode(MakeSummary()) + "x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("after the body"), std::string::npos) << r.error().message;
}

TEST(Wire, WrongMagicIsRejected) {
  std::string m = *Encode(MakeSummary());
  m[0] = 'X';
  auto r = Decode(m);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("magic"), std::string::npos);
}

TEST(Wire, WrongVersionIsRejectedAndNamed) {
  std::string m = *Encode(MakeSummary());
  m[4] = 99;
  auto r = Decode(m);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("version 99"), std::string::npos) << r.error().message;
}

TEST(Wire, OversizedMessageIsRejectedBeforeParsing) {
  DecodeLimits limits;
  limits.max_message_bytes = 64;
  auto r = Decode(*Encode(MakeGraph()), limits);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("exceeds the limit"), std::string::npos);
  EXPECT_EQ(r.error().code, Code::kLimit) << "callers tell a limit by its code";
}

TEST(Wire, DecompressionBombIsRejectedBeforeDecompressing) {
  // A body of 64 MiB of zeros compresses to a few KiB; the declared size trips the limit.
  std::string body(64 << 20, '\0');
  DecodeLimits limits;
  limits.max_body_bytes = 1 << 20;
  auto r = Decode(Wrap(ValidHeader(), body), limits);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("declared body"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().code, Code::kLimit);
}

TEST(Wire, EnvelopeBodySizeThatDisagreesWithTheFrameIsRejected) {
  std::string m = Wrap(ValidHeader(), PackMap({{"types", [](auto& p) { p.pack_array(0); }}}));
  m[16] = static_cast<char>(m[16] + 1);
  auto r = Decode(m);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("does not match"), std::string::npos) << r.error().message;
}

TEST(Wire, CorruptedCompressedBodyIsRejected) {
  std::string m = *Encode(MakeGraph());
  m[m.size() - 6] ^= 0x5a;  // Inside the zstd frame (its checksum catches it).
  auto r = Decode(m);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid) << "malformed, not over a limit";
}

TEST(Wire, HugeDeclaredArrayCountIsRejectedWithoutAllocating) {
  // "types" claims 2^32-1 rows in a body of a few bytes.
  std::string body = PackMap({{"types", [](auto& p) { p.pack_array(0xffffffffu); }}});
  auto r = Decode(Wrap(ValidHeader(), body));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("exceeds the bytes left"), std::string::npos);
}

TEST(Wire, ObjectCountOverTheLimitIsRejected) {
  DecodeLimits limits;
  limits.max_objects = 2;
  auto r = Decode(*Encode(MakeGraph()), limits);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("objects exceed the limit"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(r.error().code, Code::kLimit);
}

TEST(Wire, TypeCountOverTheLimitIsRejected) {
  DecodeLimits limits;
  limits.max_types = 1;
  auto r = Decode(*Encode(MakeSummary()), limits);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("types exceed the limit"), std::string::npos);
}

// A graph body with one object (of type `type`) whose references are `refs`, as coded.
std::string OneObjectGraphBody(std::initializer_list<int64_t> refs, uint64_t type = 0) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  p.pack_map(7);
  p.pack(std::string("types"));
  p.pack_array(2);
  for (int t = 0; t < 2; ++t) {
    p.pack_array(4);
    p.pack(std::string(t ? "b" : "a"));
    p.pack(1);
    p.pack(8);
    p.pack(8);
  }
  for (const char* column : {"addr", "type", "size", "len"}) {
    p.pack(std::string(column));
    p.pack_array(1);
    p.pack(std::string(column) == "type" ? type : 0);
  }
  p.pack(std::string("nrefs"));
  p.pack_array(1);
  p.pack(refs.size());
  p.pack(std::string("refs"));
  p.pack_array(static_cast<uint32_t>(refs.size()));
  for (int64_t r : refs) p.pack(r);
  return std::string(buf.data(), buf.size());
}

TEST(Wire, ReferenceOutsideTheGraphIsRejected) {
  auto r = Decode(Wrap(ValidHeader(Kind::kGraph), OneObjectGraphBody({3}), Kind::kGraph));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("refers to object 3 of 1"), std::string::npos)
      << r.error().message;
  auto negative = Decode(Wrap(ValidHeader(Kind::kGraph), OneObjectGraphBody({-1}), Kind::kGraph));
  ASSERT_FALSE(negative);
  EXPECT_NE(negative.error().message.find("below 0"), std::string::npos);
}

TEST(Wire, EncoderRefusesAGraphItCouldNotEncodeSafely) {
  Snapshot s = MakeGraph();
  s.graph.refs[2] = 3;  // Only objects 0..2 exist.
  auto r = Encode(s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("reference to object 3 of 3"), std::string::npos);
  s = MakeGraph();
  s.graph.size.push_back(1);
  EXPECT_FALSE(Encode(s));
}

TEST(Wire, TypeIndexOutsideTheTableIsRejected) {
  Snapshot s = MakeGraph();
  s.graph.type[1] = 9;
  auto r = Decode(*Encode(s));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("type index 9"), std::string::npos);
}

TEST(Wire, ColumnValueWiderThanItsFieldIsRejectedNotTruncated) {
  // A type index of 2^32 + 1 would wrap to a valid index 1 if it were narrowed silently.
  auto r = Decode(Wrap(ValidHeader(Kind::kGraph), OneObjectGraphBody({}, (uint64_t{1} << 32) + 1),
                       Kind::kGraph));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("column 'type' entry 0 is out of range"), std::string::npos)
      << r.error().message;
}

TEST(Wire, ColumnsOfDifferentLengthsAreRejected) {
  std::string body = OneObjectGraphBody({0});
  // Turn the one-entry "size" column into a two-entry one.
  const std::string column = std::string("\xa4size\x91\x00", 7);
  const size_t at = body.find(column);
  ASSERT_NE(at, std::string::npos);
  body.replace(at, column.size(), std::string("\xa4size\x92\x00\x00", 8));
  auto r = Decode(Wrap(ValidHeader(Kind::kGraph), body, Kind::kGraph));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("column 'size'"), std::string::npos) << r.error().message;
}

TEST(Wire, HeaderWithoutIdentityIsRejected) {
  std::string header = PackMap({{"service", [](auto& p) { p.pack(std::string("x")); }}});
  auto r = Decode(Wrap(header, PackMap({{"types", [](auto& p) { p.pack_array(0); }}})));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("missing the required key 'pid'"), std::string::npos)
      << r.error().message;
}

TEST(Wire, WrongTypeInHeaderNamesTheKey) {
  std::string header = PackMap({{"service", [](auto& p) { p.pack(42); }}});
  auto r = Decode(Wrap(header, PackMap({{"types", [](auto& p) { p.pack_array(0); }}})));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("key 'service'"), std::string::npos) << r.error().message;
}

TEST(Wire, GoodbyeRoundTripsAndIsToldApartFromSnapshots) {
  Goodbye g;
  g.identity = MakeSummary().header.identity;
  g.seq = 12;
  g.timestamp_ns = 1234;
  const std::string frame = EncodeGoodbye(g);
  EXPECT_TRUE(IsGoodbye(frame));
  EXPECT_FALSE(IsGoodbye(*Encode(MakeSummary())));
  auto decoded = DecodeGoodbye(frame);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->identity.service, "checkout");
  EXPECT_EQ(decoded->identity.pid, 4242);
  EXPECT_EQ(decoded->identity.labels.at(0).second, "prod");
  EXPECT_EQ(decoded->seq, 12u);
  EXPECT_EQ(decoded->timestamp_ns, 1234);
  EXPECT_FALSE(decoded->moved);
  EXPECT_FALSE(Decode(frame));  // Not a snapshot.
}

TEST(Wire, AGoodbyeOfAnAgentMovingToAnotherCollectorSaysSo) {
  Goodbye g;
  g.identity = MakeSummary().header.identity;
  g.seq = 3;
  g.moved = true;
  auto decoded = DecodeGoodbye(EncodeGoodbye(g));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_TRUE(decoded->moved);
  EXPECT_EQ(decoded->seq, 3u);
}

TEST(Wire, DamagedGoodbyesAreRejectedWithTheReason) {
  Goodbye g;
  g.identity = MakeSummary().header.identity;
  const std::string frame = EncodeGoodbye(g);
  for (size_t n = 0; n < frame.size(); ++n) EXPECT_FALSE(DecodeGoodbye(frame.substr(0, n)));
  std::string version = frame;
  version[4] = 9;
  EXPECT_NE(DecodeGoodbye(version).error().message.find("version"), std::string::npos);
  EXPECT_FALSE(DecodeGoodbye(frame + std::string(kMaxGoodbyeBytes, 'x')));
  EXPECT_FALSE(DecodeGoodbye(frame + "x"));  // Bytes after the map.
}

TEST(Wire, RandomByteFlipsNeverCrash) {
  const std::string m = *Encode(MakeGraph());
  uint32_t state = 12345;
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string copy = m;
    for (int k = 0; k < 3; ++k) {
      state = state * 1664525u + 1013904223u;
      copy[state % copy.size()] ^= static_cast<char>(1 + (state >> 24) % 255);
    }
    accepted += Decode(copy).has_value();
  }
  // Flips inside the uncompressed header can still be valid; the body is checksummed.
  EXPECT_LT(accepted, 20000);
}

}  // namespace
}  // namespace tidemark::snapshot
