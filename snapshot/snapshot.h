// The snapshot data model: what one heap snapshot of one Python process says.
//
// A Snapshot always has a Header (identity, sequence, totals, agent figures) and the per-type
// table. A graph snapshot also has a Graph: every object with its type, size, length and
// references. Sizes are bytes as sys.getsizeof reports them (GC header and pre-header
// included); docs/agent.md says how each kind of object is sized.
//
// Plain values; no Python, no network, no disk. Thread-safety: none needed (values).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tidemark::snapshot {

enum class Kind : uint8_t { kSummary = 1, kGraph = 2 };

const char* KindName(Kind kind);  // "summary" or "graph".

// Who took the snapshot. A restarted process is a new instance: (service, host, pid,
// start_time_ns) identifies one.
struct Identity {
  std::string service;
  std::string host;
  int64_t pid = 0;
  int64_t start_time_ns = 0;  // Agent start, ns since the Unix epoch.
  std::vector<std::pair<std::string, std::string>> labels;
};

// How every tool names an agent: "service/host/pid@start" (start in Unix seconds, so that
// restarts with the same pid, pid 1 in containers, stay apart). Alerts, reports, the CLI.
inline std::string AgentName(const Identity& id) {
  return id.service + "/" + id.host + "/" + std::to_string(id.pid) + "@" +
         std::to_string(id.start_time_ns / 1'000'000'000);
}

// The agent's own figures, so its cost is visible next to what it measures.
struct AgentFigures {
  double pause_ms = 0;         // GIL held for this snapshot's walk.
  double encode_ms = 0;        // Previous snapshot: encode + compress, off the GIL.
  uint64_t encoded_bytes = 0;  // Previous snapshot's size on the wire.
  uint64_t dropped = 0;        // Snapshots dropped so far (no collector, budget, limits).
  uint64_t delivered = 0;      // Snapshots acknowledged by a collector so far.
  bool abandoned = false;      // Walk stopped at a configured limit: figures are partial.
  bool moved = false;          // A goodbye's only: the agent lives on, at another collector.
};

// Where the process stands against its memory limit (agent/memory_limit.h), when it has one.
struct MemoryFigures {
  uint64_t current = 0;  // Bytes counted against the limit (a cgroup's working set, or RSS).
  uint64_t limit = 0;    // 0: no limit known; the other fields are then empty.
  std::string source;    // "cgroup2", "cgroup1" or "rss" (TIDEMARK_MEMORY_LIMIT).
  // A threshold (percent of the limit) this snapshot was taken for, ahead of the schedule;
  // 0 for every other snapshot.
  uint32_t crossed_pct = 0;
};

struct Header {
  Kind kind = Kind::kSummary;
  Identity identity;
  uint64_t seq = 0;          // Per agent instance, from 1.
  int64_t timestamp_ns = 0;  // When the walk started, ns since the Unix epoch.
  uint64_t objects = 0;      // Totals over every object walked.
  uint64_t bytes = 0;
  uint64_t types = 0;
  uint64_t rss_bytes = 0;          // Process resident set size at the snapshot.
  std::vector<int64_t> gc_counts;  // gc.get_count().
  std::string python_version;
  bool has_values = false;  // Graph carries short values (str prefixes, small numbers).
  AgentFigures agent;
  MemoryFigures memory;
};

// One row of the per-type table. Instance dicts are folded into their owners.
struct TypeStat {
  std::string name;  // Module-qualified: "myapp.models.Order"; builtins plain: "dict".
  uint64_t count = 0;
  uint64_t bytes = 0;
  uint64_t max_bytes = 0;  // Largest single object of the type.
};

enum class RootKind : uint8_t {
  kModule = 1,       // Reachable from sys.modules.
  kThreadFrame = 2,  // Held by a thread's running frame.
  kInterpreter = 3,  // The interpreter's own: sys.modules itself.
};

// Every walked object, as struct-of-arrays. Object i's references are
// refs[ref_begin[i] .. ref_begin[i+1]), each an index into these arrays.
struct Graph {
  std::vector<uint64_t> address;
  std::vector<uint32_t> type;  // Index into Snapshot::types.
  std::vector<uint64_t> size;
  // Items of containers, characters of str, 0 otherwise; saturates at 2^32 - 1 (a length
  // past that is a 4 GiB object: its size is exact, its length is marked as huge).
  std::vector<uint32_t> length;
  std::vector<uint64_t> ref_begin;  // size() == objects + 1.
  std::vector<uint32_t> refs;
  // Objects whose reference list was capped or stripped: (object, true reference count).
  std::vector<std::pair<uint32_t, uint64_t>> true_ref_counts;
  std::vector<std::pair<uint32_t, RootKind>> roots;
  std::vector<std::pair<uint32_t, std::string>> names;   // Modules, functions, classes.
  std::vector<std::pair<uint32_t, std::string>> values;  // Only when Header::has_values.

  // What the agent recorded of namespaces (format 2). When false (format 1, meliae imports)
  // nothing is known of them and analysis infers ownership as meliae does.
  bool ownership_recorded = false;
  // (dict, owner): the dict is the owner's __dict__, a module's or a class's namespace.
  std::vector<std::pair<uint32_t, uint32_t>> owners;
  // Attribute names, each once. A name is an identifier from the program's source (a key that
  // is not one is recorded only when Header::has_values).
  std::vector<std::string> attribute_names;
  // (str object, name): a key of some namespace dict in `owners`, naming the value that
  // follows it in the dict's references.
  std::vector<std::pair<uint32_t, uint32_t>> attribute_keys;
  // owner.<attribute_names[name]> refers to target, where no key object says so: attributes
  // kept inline (3.11+), __slots__, and C fields (__closure__, cell_contents, __self__, ...).
  struct Attribute {
    uint32_t owner = 0;
    uint32_t target = 0;
    uint32_t name = 0;  // Index into attribute_names.
    bool operator==(const Attribute&) const = default;
  };
  std::vector<Attribute> attributes;

  // (object, stack in Snapshot::sites): the objects the allocation sampler picked, with the
  // stack that allocated each. Empty unless Snapshot::sites.recorded.
  std::vector<std::pair<uint32_t, uint32_t>> object_sites;

  size_t object_count() const { return address.size(); }
};

// Where live memory was allocated, from a sample of the allocations (docs/agent.md): each
// allocation of s bytes is sampled with probability 1 - exp(-s / mean_bytes), so a sample
// stands for 1 / that probability allocations and s / that probability bytes.
struct Sites {
  bool recorded = false;  // The agent was sampling when it took this snapshot.
  uint64_t mean_bytes = 0;
  uint64_t live_samples = 0;     // Sampled allocations not freed yet.
  uint64_t dropped_samples = 0;  // Since sampling started: the sample table was full.
  uint64_t dropped_stacks = 0;   // Since sampling started: the stack table was full.
  uint64_t restarts = 0;         // Times another allocator hook cut the sampler off (restarted).

  // A frame: file and function are indices into `strings`.
  struct Frame {
    uint32_t file = 0;
    uint32_t function = 0;
    uint32_t line = 0;
    bool operator==(const Frame&) const = default;
  };
  std::vector<std::string> strings;
  std::vector<Frame> frames;
  std::vector<std::vector<uint32_t>> stacks;  // Frame indices, innermost first; may be empty.

  // Estimated live bytes and allocations per (type, stack). type == kNoObject: sampled memory
  // that is no Python object's own block (buffers of lists and dicts, C extensions' PyMem).
  static constexpr uint32_t kNoObject = UINT32_MAX;
  struct Row {
    uint32_t type = 0;  // Index into Snapshot::types, or kNoObject.
    uint32_t stack = 0;
    uint64_t bytes = 0;
    uint64_t count = 0;
    bool operator==(const Row&) const = default;
  };
  std::vector<Row> rows;
};

struct Snapshot {
  Header header;
  std::vector<TypeStat> types;
  Graph graph;  // Empty unless header.kind == Kind::kGraph.
  Sites sites;
};

}  // namespace tidemark::snapshot
