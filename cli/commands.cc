#include "cli/commands.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/analysis_commands.h"
#include "cli/attach_commands.h"
#include "cli/command_line.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "cli/pipeline_commands.h"
#include "cli/sites_command.h"
#include "cli/stored.h"
#include "cli/type_table.h"
#include "diff/json.h"
#include "diff/type_diff.h"
#include "snapshot/clock.h"
#include "snapshot/wire.h"

namespace tidemark::cli {
namespace {

using snapshot::Snapshot;
using snapshot::TypeStat;

bool Load(const std::string& arg, const Flags& flags, Snapshot& out, std::ostream& err) {
  return LoadSnapshotArgument(arg, flags, out, err);
}

std::string Format(const char* fmt, auto... args) {
  char line[512];
  std::snprintf(line, sizeof line, fmt, args...);
  return line;
}

int Summary(const Flags& flags, std::ostream& out, std::ostream& err) {
  if (flags.has("--root")) return GraphSummary(flags, out, err);
  Snapshot s;
  if (!Load(flags.positional[0], flags, s, err)) return 1;
  // A graph is summarized from its objects, instance dicts collapsed: the numbers meliae's
  // loader gives for the same heap (and for an imported meliae dump).
  if (s.header.kind == snapshot::Kind::kGraph) return GraphSummary(flags, out, err);
  std::vector<TypeStat> rows = s.types;
  std::sort(rows.begin(), rows.end(), [](const TypeStat& a, const TypeStat& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.count > b.count;
  });
  if (flags.json) {
    nlohmann::json j = TypeTableJson(rows, RowsShown(flags, rows.size(), 20));
    const auto& h = s.header;
    j["service"] = h.identity.service;
    j["pid"] = h.identity.pid;
    j["seq"] = h.seq;
    j["kind"] = snapshot::KindName(h.kind);
    j["timestamp_ns"] = h.timestamp_ns;
    out << diff::Dump(j, 2) << "\n";
    return 0;
  }
  PrintTypeTable(rows, RowsShown(flags, rows.size(), 20), flags, out);
  return 0;
}

int Diff(const Flags& flags, std::ostream& out, std::ostream& err) {
  Snapshot a, b;
  if (!Load(flags.positional[0], flags, a, err) || !Load(flags.positional[1], flags, b, err)) {
    return 1;
  }
  auto rows = diff::DiffTypes(a.types, b.types);
  std::erase_if(
      rows, [](const diff::TypeDelta& d) { return d.count_delta() == 0 && d.bytes_delta() == 0; });
  const size_t shown = RowsShown(flags, rows.size(), 20);
  const double seconds = (b.header.timestamp_ns - a.header.timestamp_ns) / 1e9;
  if (seconds < 0) {
    err << "tidemark diff: note: B was taken " << Format("%.1f", -seconds)
        << " s before A: the deltas go back in time (tidemark diff OLDER NEWER)\n";
  }
  if (flags.json) {
    nlohmann::json j;
    j["from"] = {{"seq", a.header.seq}, {"timestamp_ns", a.header.timestamp_ns}};
    j["to"] = {{"seq", b.header.seq}, {"timestamp_ns", b.header.timestamp_ns}};
    j["seconds"] = seconds;
    j["rows"] = nlohmann::json::array();
    for (size_t i = 0; i < shown; ++i) {
      const auto& d = rows[i];
      j["rows"].push_back({{"type", d.name},
                           {"count_before", d.count_before},
                           {"count_after", d.count_after},
                           {"count_delta", d.count_delta()},
                           {"bytes_before", d.bytes_before},
                           {"bytes_after", d.bytes_after},
                           {"bytes_delta", d.bytes_delta()}});
    }
    MarkTruncated(j, shown, rows.size());
    out << diff::Dump(j, 2) << "\n";
    return 0;
  }
  out << Format("Diff over %.1f s (seq %" PRIu64 " -> %" PRIu64 "), %zu types changed\n", seconds,
                a.header.seq, b.header.seq, rows.size());
  out << "  Count delta   Bytes delta        Count        Bytes Kind\n";
  for (size_t i = 0; i < shown; ++i) {
    const auto& d = rows[i];
    out << Format("%+13" PRId64 " %13s %12" PRId64 " %12s %s\n", d.count_delta(),
                  SignedSize(flags, static_cast<double>(d.bytes_delta())).c_str(), d.count_after,
                  Size(flags, static_cast<double>(d.bytes_after)).c_str(), d.name.c_str());
  }
  if (shown < rows.size()) out << "... " << rows.size() - shown << " more types (--all)\n";
  return 0;
}

const OptionSpec kAll = {"--all", OptionKind::kSwitch, "", "every row, not the first ones"};
const OptionSpec kBytes = {"--bytes", OptionKind::kSwitch, "",
                           "sizes in exact bytes (default: KiB, MiB, GiB; JSON is always exact)"};
const OptionSpec kAttachAgent = {"--agent", OptionKind::kText, "DIR",
                                 "import the agent from DIR if the process cannot (DIR/py3X too)"};
const OptionSpec kAttachTimeout = {"--timeout", OptionKind::kText, "S",
                                   "give up after S seconds, leaving it untouched (default 10)"};
const OptionSpec kAttachVerbose = {"--verbose", OptionKind::kSwitch, "",
                                   "say each step of the injection on stderr"};
OptionSpec Top(std::string_view help) { return {"--top", OptionKind::kCount, "N", help}; }

std::vector<OptionSpec> With(std::vector<OptionSpec> own, const std::vector<OptionSpec>& more) {
  own.insert(own.end(), more.begin(), more.end());
  return own;
}

}  // namespace

const std::vector<VerbSpec>& Verbs() {
  static const std::vector<VerbSpec> verbs = {
      {"summary", "snapshots", "SNAP", 1, 1, "per-type table of one snapshot (meliae's layout)",
       "meliae's per-type table of one snapshot: count, bytes and their shares, largest first.\n"
       "Of a graph snapshot, instance __dict__s are folded into their owners as meliae's loader\n"
       "shows them; --root ADDR restricts the table to what ADDR reaches.",
       With({kAll,
             Top("the N largest types (default 20)"),
             kBytes,
             kJsonOption,
             {"--root", OptionKind::kText, "ADDR", "only what the object at ADDR reaches (graph)"},
             {"--exclude", OptionKind::kList, "ADDR", "with --root: do not enter ADDR"}},
            kGraphLoadOptions),
       Summary},
      {"diff",
       "snapshots",
       "A B",
       2,
       2,
       "per-type count and byte deltas from A to B",
       "Per-type count and byte deltas from snapshot A to snapshot B, largest growth first.",
       {kAll, Top("the N largest changes (default 20)"), kBytes, kJsonOption, kStoreOption,
        kCollectorOption},
       Diff},
      {"ls",
       "the store",
       "",
       0,
       0,
       "services, agents and their stored snapshots",
       "The store's services, their agents (with labels) and stored snapshots, the newest 5 per\n"
       "agent unless --all.",
       {kAll, kBytes, kJsonOption, kStoreOption, kCollectorOption},
       ListStore,
       true,
       true},
      {"verify",
       "the store",
       "",
       0,
       0,
       "read and decode every stored snapshot",
       "Reads and decodes every stored snapshot and reports what recovery found damaged or\n"
       "quarantined. Exit status 1 if anything is.",
       {kJsonOption, kStoreOption},
       [](const Flags& f, std::ostream& o, std::ostream& e) {
         return VerifyStore(f.store_dir, f.json, o, e);
       },
       true},
      {"keygen",
       "the store",
       "",
       0,
       0,
       "a new CURVE key pair for tidemarkd or an agent",
       "Prints a new CURVE key pair (Z85) for tidemarkd's [curve] or an agent's\n"
       "TIDEMARK_CURVE_* settings.",
       {kJsonOption},
       [](const Flags& f, std::ostream& o, std::ostream& e) {
         return MakeCurveKeys(f.json, o, e);
       }},
      {"growth",
       "growth and alerts",
       "",
       0,
       0,
       "growing types per service over a window",
       "Growing types per service over the window, as tidemarkd's diff pipeline sees them:\n"
       "bytes now, delta, rate per hour (least squares), share of rising steps, fit (R^2).",
       {{"--service", OptionKind::kText, "S", "only service S"},
        {"--agent", OptionKind::kText, "A",
         "only agent A: an id from ls, SERVICE (its newest instance), SERVICE/PID, "
         "SERVICE/HOST/PID or SERVICE/HOST/PID@START"},
        {"--window", OptionKind::kText, "DURATION",
         "1h (default), 30m, 1d..., or 'last' for the newest two snapshots"},
        Top("the N fastest-growing types per service (default 20)"),
        {"--all", OptionKind::kSwitch, "", "every type, shrinking ones too"},
        kBytes,
        kJsonOption,
        kStoreOption,
        kCollectorOption},
       GrowthCommand,
       true,
       true},
      {"alerts",
       "growth and alerts",
       "",
       0,
       0,
       "firing alerts, with what holds the growth",
       "Firing leak alerts, each with the type, its rate and what holds the new objects.",
       {{"--all", OptionKind::kSwitch, "", "the resolved alerts too"},
        kBytes,
        kJsonOption,
        kStoreOption,
        kCollectorOption},
       AlertsCommand,
       true,
       true},
      {"reports",
       "growth and alerts",
       "[ID|last]",
       0,
       1,
       "scheduled diff reports, or one",
       "The diff reports [[schedules]] in tidemarkd's configuration made, or one of them.",
       {kBytes, kJsonOption, kStoreOption, kCollectorOption},
       ReportsCommand,
       true},
      {"sites",
       "snapshots",
       "SNAP [B]",
       1,
       2,
       "where the live heap was allocated (sampled sites)",
       "Where the live heap was allocated: the agent's sampled allocation sites by type and\n"
       "stack (estimated live bytes and allocations), or with B what grew from SNAP to B by\n"
       "site. --folded writes folded stacks for flamegraph.pl or speedscope.",
       {{"--type", OptionKind::kText, "T", "only type T ('(no object)': buffers, C memory)"},
        {"--folded", OptionKind::kSwitch, "", "folded stacks, one line per site, bytes as value"},
        kAll,
        Top("the N largest sites (default 20)"),
        kBytes,
        kJsonOption,
        kStoreOption,
        kCollectorOption},
       SitesCommand},
      {"types", "graph snapshots", "SNAP", 1, 1, "per-type count, bytes and retained bytes",
       "Per-type count, bytes, largest object and retained bytes (dominator tree) of a graph\n"
       "snapshot, instance __dict__s folded into their owners unless --no-collapse.",
       With({kAll, Top("the N largest types (default 25)"), kBytes, kJsonOption},
            kGraphLoadOptions),
       TypesCommand},
      {"show", "graph snapshots", "SNAP ADDR", 2, 2, "one object: size, references, retained",
       "One object: type, size, references, referrers, the bytes it retains and its dominator.",
       With({kBytes, kJsonOption}, kGraphLoadOptions), ShowCommand},
      {"children", "graph snapshots", "SNAP ADDR", 2, 2, "what an object refers to, by edge",
       "What the object at ADDR refers to, with edge names ('.attr', '[3]', \"['key']\").",
       With({kAll, Top("the first N (default 50)"), kJsonOption}, kGraphLoadOptions),
       ChildrenCommand},
      {"parents", "graph snapshots", "SNAP ADDR", 2, 2, "what refers to an object",
       "What refers to the object at ADDR, with the edge it is held by.",
       With({kAll, Top("the first N (default 50)"), kJsonOption}, kGraphLoadOptions),
       ParentsCommand},
      {"why", "graph snapshots", "SNAP ADDR|TYPE", 2, 2,
       "who holds an object or a type's instances",
       "Who holds the object at ADDR, or every instance of TYPE (module-qualified, as `types`\n"
       "names it): the referrers holding most of them, and the shortest named paths from roots.",
       With({{"--paths", OptionKind::kCount, "N", "at most N paths (default 5)"},
             {"--depth", OptionKind::kCount, "N", "paths of at most N steps (default 32)"},
             kJsonOption},
            kGraphLoadOptions),
       WhyCommand},
      {"retained", "graph snapshots", "SNAP", 1, 1, "the largest retainers, and by type",
       "The objects retaining the most bytes (dominator tree), and retained bytes by type.",
       With({Top("the N largest retainers and types (default 20)"), kBytes, kJsonOption},
            kGraphLoadOptions),
       RetainedCommand},
      {"walk", "graph snapshots", "SNAP [ADDR]", 1, 2, "an interactive walker through the heap",
       "An interactive walker from ADDR (default: the largest retainer): to a child, a parent,\n"
       "back, why. `help` inside lists its commands; it reads them from standard input.",
       With({kBytes}, kGraphLoadOptions), WalkCommand},
      {"gdiff", "graph snapshots", "A B", 2, 2,
       "objects new in B, and the old objects holding them",
       "Objects in graph snapshot B that A did not have, by type, and the old objects holding\n"
       "them. A and B must come from the same process (addresses are compared).",
       With({kAll, Top("the N largest types (default 10)"), kBytes, kJsonOption},
            kGraphLoadOptions),
       GraphDiffCommand},
      {"export", "graph snapshots", "SNAP", 1, 1, "to callgrind, folded stacks or heapsnapshot",
       "Writes a graph snapshot for other tools: callgrind (KCachegrind), folded (flame graphs,\n"
       "speedscope) or heapsnapshot (Chrome DevTools' Memory tab).",
       With({{"--format", OptionKind::kText, "F", "callgrind, folded or heapsnapshot (required)"},
             {"--output", OptionKind::kText, "FILE", "write FILE (also -o; default: stdout)"},
             {"--json", OptionKind::kSwitch, "", "describe the file written (needs -o)"}},
            kGraphLoadOptions),
       ExportCommand},
      {"attach",
       "live processes",
       "PID",
       1,
       1,
       "start the agent inside a running Python process",
       "Starts the agent inside running CPython 3.8-3.13 process PID, without restarting it\n"
       "(one thread is stopped for a moment; docs/agent.md, \"Attach\"). Running already:\n"
       "nothing changes. Exit status: 0 done, 1 failed and the process left as it was, 2 bad\n"
       "usage, 3 the process may have been changed (the message says how).",
       {{"--endpoint", OptionKind::kText, "URL", "collector (default tcp://127.0.0.1:7878)"},
        {"--service", OptionKind::kText, "NAME", "service name (default: the program's name)"},
        {"--interval", OptionKind::kText, "S", "seconds between snapshots (default 60)"},
        {"--labels", OptionKind::kText, "K=V,...", "labels, as in env=prod,version=1.4"},
        kAttachAgent,
        kAttachTimeout,
        kAttachVerbose,
        kJsonOption},
       AttachCommand},
      {"detach",
       "live processes",
       "PID",
       1,
       1,
       "stop the agent in a running process",
       "Stops the agent inside running process PID (started by attach or by the program).\n"
       "Exit status as for attach.",
       {kAttachAgent, kAttachTimeout, kAttachVerbose, kJsonOption},
       DetachCommand},
      {"dump",
       "live processes",
       "PID",
       1,
       1,
       "one snapshot of a running process, to a file",
       "Takes one snapshot of running process PID and writes it to FILE, readable by every\n"
       "verb here. The target writes it into a file this program made for it in its /tmp and\n"
       "reads back through the descriptor it kept; FILE is written by this program, as this\n"
       "user. Exit status as for attach.",
       {{"--output", OptionKind::kText, "FILE", "where to write it (also -o; required)"},
        {"--graph", OptionKind::kSwitch, "", "a graph snapshot (default: summary)"},
        {"--values", OptionKind::kSwitch, "", "with --graph: short values of str, int, float"},
        kAttachAgent,
        kAttachTimeout,
        kAttachVerbose,
        kJsonOption},
       DumpCommand},
      {"import-meliae",
       "graph snapshots",
       "DUMP OUT",
       2,
       2,
       "a meliae dump to a snapshot file",
       "Converts a meliae dump (JSON lines, plain or gzip) to a tidemark graph snapshot file.",
       {kJsonOption},
       ImportMeliaeCommand},
  };
  return verbs;
}

namespace {

const VerbSpec* FindVerb(std::string_view name) {
  for (const VerbSpec& v : Verbs()) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

// A verb about to read the store, or a snapshot in it, when there is none where it looked.
bool StoreMissing(const VerbSpec& verb, const Flags& flags, std::ostream& err) {
  const bool needed =
      verb.reads_store || std::any_of(flags.positional.begin(), flags.positional.end(),
                                      [](const std::string& a) { return IsStoredReference(a); });
  if (!needed || !flags.collectors.empty() || IsStore(flags.store_dir)) return false;
  err << "tidemark " << verb.name << ": no tidemark store at " << flags.store_dir << " ("
      << flags.store_source << "); name one with --store DIR or TIDEMARK_STORE\n";
  return true;
}

}  // namespace

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << Usage(Verbs());
    return 2;
  }
  const std::string& first = args[0];
  if (first == "--version" || first == "version") {
    out << "tidemark " << TIDEMARK_VERSION << "\n";
    return 0;
  }
  if (first == "help" || first == "--help" || first == "-h") {
    if (args.size() > 1) {
      if (const VerbSpec* verb = FindVerb(args[1])) {
        out << VerbHelp(*verb);
        return 0;
      }
      err << "tidemark help: unknown command '" << args[1] << "'\n";
      return 2;
    }
    out << Usage(Verbs());
    return 0;
  }
  const VerbSpec* verb = FindVerb(first);
  if (verb == nullptr) {
    err << "tidemark: unknown command '" << first << "'\n" << Usage(Verbs());
    return 2;
  }
  if (std::find(args.begin() + 1, args.end(), "--help") != args.end() ||
      std::find(args.begin() + 1, args.end(), "-h") != args.end()) {
    out << VerbHelp(*verb);
    return 0;
  }
  Flags flags;
  if (int status = ParseCommandLine(*verb, args, flags, err); status != 0) return status;
  if (StoreMissing(*verb, flags, err)) return 1;
  flags.now_ns = snapshot::WallNowNs();
  return verb->run(flags, out, err);
}

}  // namespace tidemark::cli
