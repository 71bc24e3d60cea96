// Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/<harness>/): real messages,
// controls, a meliae dump, configurations and store segments, each small. Run once by hand
// (scripts/fuzz --make-seeds); the output is committed.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "snapshot/control.h"
#include "snapshot/wire.h"
#include "store/log_format.h"

namespace {

namespace fs = std::filesystem;
using namespace tidemark;

void Put(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

snapshot::Snapshot Summary(uint64_t seq) {
  snapshot::Snapshot s;
  s.header.identity = {"checkout", "web-1", 4242, 1700000000000000000, {{"env", "prod"}}};
  s.header.seq = seq;
  s.header.timestamp_ns = 1700000000000000000 + static_cast<int64_t>(seq);
  s.types = {{"dict", 120, 9600, 640}, {"app.Order", 40, 2240, 56}, {"str", 300, 18000, 120}};
  s.header.objects = 460;
  s.header.bytes = 29840;
  return s;
}

snapshot::Snapshot Graph() {
  snapshot::Snapshot s = Summary(2);
  s.header.kind = snapshot::Kind::kGraph;
  s.header.has_values = true;
  s.types = {{"module", 1, 72, 72}, {"dict", 1, 232, 232}, {"str", 2, 110, 60}};
  auto& g = s.graph;
  g.address = {0x7f0000001000, 0x7f0000001100, 0x7f0000002000, 0x7f0000002040};
  g.type = {0, 1, 2, 2};
  g.size = {72, 232, 50, 60};
  g.length = {0, 1, 4, 5};
  g.ref_begin = {0, 1, 3, 3, 3};
  g.refs = {1, 2, 3};
  g.roots = {{0, snapshot::RootKind::kModule}};
  g.names = {{0, "app"}};
  g.values = {{2, "key"}, {3, "value"}};
  g.ownership_recorded = true;  // Format 2: the module's namespace, named attributes.
  g.owners = {{1, 0}};
  g.attribute_names = {"key", "first"};
  g.attribute_keys = {{2, 0}};
  g.attributes = {{0, 3, 1}};
  auto& sites = s.sites;  // Allocation sites: a sampled str, a buffer with no Python stack.
  sites.recorded = true;
  sites.mean_bytes = 524288;
  sites.live_samples = 2;
  sites.strings = {"app.py", "load", "<module>"};
  sites.frames = {{0, 1, 12}, {0, 2, 3}};
  sites.stacks = {{0, 1}, {}};
  sites.rows = {{2, 0, 600000, 9000}, {snapshot::Sites::kNoObject, 1, 524288, 1}};
  g.object_sites = {{3, 0}};
  return s;
}

std::string Segment(const std::string& message) {
  store::PayloadWriter w;
  w.U8('S').I64(1700000000000000000);
  const std::string payload = w.bytes() + message;
  return store::RecordHeader(payload) + payload;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seeds CORPUS_DIR\n";
    return 2;
  }
  const fs::path root = argv[1];
  const std::string summary = *snapshot::Encode(Summary(1));
  const std::string graph = *snapshot::Encode(Graph());
  snapshot::Goodbye bye;
  bye.identity = Summary(1).header.identity;
  bye.seq = 3;
  Put(root / "fuzz_wire", "summary", summary);
  Put(root / "fuzz_wire", "graph", graph);
  Put(root / "fuzz_wire", "goodbye", snapshot::EncodeGoodbye(bye));
  snapshot::Control c;
  c.ack = 7;
  Put(root / "fuzz_control", "ack", snapshot::EncodeControl(c));
  c.ack.reset();
  c.graph_requested = c.values_requested = true;
  Put(root / "fuzz_control", "graph", snapshot::EncodeControl(c));
  Put(root / "fuzz_meliae", "dump.json",
      "[\n{\"address\": 1000, \"type\": \"dict\", \"size\": 232, \"len\": 1, \"refs\": [2000, "
      "3000]},\n"
      "{\"address\": 2000, \"type\": \"str\", \"size\": 52, \"len\": 3, \"value\": \"key\", "
      "\"refs\": []},\n"
      "{\"address\": 3000, \"type\": \"int\", \"size\": 28, \"value\": 7, \"refs\": []},\n"
      "{\"address\": 4000, \"type\": \"module\", \"size\": 72, \"name\": \"app\", \"refs\": "
      "[1000]}\n]\n");
  Put(root / "fuzz_config", "hooks.toml",
      "[collector]\nendpoint = \"tcp://127.0.0.1:7878\"\n[growth]\nspan = \"1h\"\n"
      "[[rules]]\nname = \"r\"\nwindow = \"30m\"\nmin_rate = \"1MiB/h\"\n"
      "[[hooks]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n"
      "headers = { Authorization = \"Bearer x\" }\n"
      "[[schedules]]\nname = \"daily\"\nat = \"03:00\"\nhooks = [\"w\"]\n");
  Put(root / "fuzz_config", "limits.toml",
      "[limits]\nmax_message_bytes = \"64MiB\"\nmax_objects = 1000\n[store]\nsegment_bytes = "
      "65536\n");
  Put(root / "fuzz_store", "three",
      Segment(summary) + Segment(*snapshot::Encode(Summary(2))) +
          Segment(*snapshot::Encode(Summary(3))));
  std::string damaged = Segment(summary) + Segment(*snapshot::Encode(Summary(2)));
  damaged[40] ^= 0x5a;
  Put(root / "fuzz_store", "damaged", damaged + Segment(*snapshot::Encode(Summary(3))));
  return 0;
}
