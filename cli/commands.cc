#include "cli/commands.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/analysis_commands.h"
#include "cli/flags.h"
#include "cli/pipeline_commands.h"
#include "cli/stored.h"
#include "cli/type_table.h"
#include "diff/type_diff.h"
#include "snapshot/wire.h"

namespace tidemark::cli {
namespace {

using snapshot::Snapshot;
using snapshot::TypeStat;

constexpr const char* kUsage =
    "usage: tidemark <command> [options]\n"
    "\n"
    "commands:\n"
    "  summary SNAP [--all] [--json]   per-type table of one snapshot (meliae's layout), top 20\n"
    "                                  by size unless --all\n"
    "  diff A B [--all] [--json]       per-type count and byte deltas from A to B, largest growth\n"
    "                                  first (top 20 unless --all)\n"
    "  ls [--all] [--json]             services, agents (with labels) and their stored snapshots\n"
    "                                  (the newest 5 per agent unless --all)\n"
    "  verify [--json]                 read and decode every stored snapshot; exit 1 if any fails\n"
    "  keygen [--json]                 a new CURVE key pair (Z85) for tidemarkd or an agent\n"
    "\n"
    "growth and alerts (what tidemarkd's diff pipeline sees):\n"
    "  growth [--service S] [--agent A] [--window 1h|30m|last] [--top N] [--all] [--json]\n"
    "                                  growing types per service over the window: bytes now,\n"
    "                                  delta, rate/h (least squares), rising steps, fit (R^2)\n"
    "  alerts [--all] [--json]         firing alerts, with what holds the growth; --all adds\n"
    "                                  the resolved ones\n"
    "  reports [ID|last] [--json]      scheduled diff reports, or one of them\n"
    "\n"
    "graph snapshots (instance dicts folded into their owners unless --no-collapse):\n"
    "  types SNAP                      per-type count, bytes and retained bytes\n"
    "  show SNAP ADDR                  one object: size, references, referrers, what it retains\n"
    "  children SNAP ADDR              what it refers to, with edge names ('.attr', '[3]')\n"
    "  parents SNAP ADDR               what refers to it\n"
    "  why SNAP ADDR|TYPE              who holds it (or the type's instances): shortest named\n"
    "                                  paths from roots [--paths N] [--depth N]\n"
    "  retained SNAP [--top N]         the largest retainers (dominator tree), and by type\n"
    "  walk SNAP [ADDR]                an interactive walker: to a child, a parent, back, why\n"
    "  gdiff A B                       objects new in B by type, and the old objects holding them\n"
    "  summary SNAP --root ADDR        meliae's table over what ADDR reaches [--exclude ADDR]...\n"
    "  export SNAP --format F [-o OUT] F: callgrind (KCachegrind), folded (flame graphs,\n"
    "                                  speedscope) or heapsnapshot (Chrome DevTools Memory tab)\n"
    "  import-meliae DUMP OUT          a meliae dump (JSON lines, plain or gzip) to a snapshot\n"
    "  load options: --max-refs N, --max-parents N (default 100), --no-values, --no-collapse\n"
    "  help                            this text\n"
    "\n"
    "options:\n"
    "  --store DIR   the store tidemarkd writes (default $TIDEMARK_STORE, else ./tidemark-data)\n"
    "\n"
    "SNAP is a snapshot file written by tidemark.dump(), or a stored snapshot:\n"
    "  AGENT:SEQ     3:17, api:last, api/4121:first\n"
    "  AGENT@TIME    the newest taken at or before TIME: 2026-11-26T03:00:00Z, or -1h (ago)\n"
    "AGENT is an agent id from `tidemark ls`, a service (its newest instance) or SERVICE/PID.\n";

bool Load(const std::string& arg, const Flags& flags, Snapshot& out, std::ostream& err) {
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  auto message = ReadSnapshotArgument(arg, flags.store_dir, now_ns);
  if (!message) {
    err << "tidemark: " << message.error().message << "\n";
    return false;
  }
  auto decoded = snapshot::Decode(*message);
  if (!decoded) {
    err << "tidemark: '" << arg << "' is not a readable snapshot: " << decoded.error().message
        << "\n";
    return false;
  }
  out = std::move(*decoded);
  return true;
}

std::string Format(const char* fmt, auto... args) {
  char line[512];
  std::snprintf(line, sizeof line, fmt, args...);
  return line;
}

int Summary(const Flags& flags, std::ostream& out, std::ostream& err) {
  if (flags.has("--root")) return GraphSummary(flags, out, err);
  if (flags.positional.size() != 1) {
    err << "usage: tidemark summary FILE [--all] [--json]\n";
    return 2;
  }
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
    nlohmann::json j = TypeTableJson(rows, flags.all);
    const auto& h = s.header;
    j["service"] = h.identity.service;
    j["pid"] = h.identity.pid;
    j["seq"] = h.seq;
    j["kind"] = snapshot::KindName(h.kind);
    j["timestamp_ns"] = h.timestamp_ns;
    out << j.dump(2) << "\n";
    return 0;
  }
  PrintTypeTable(rows, flags.all, out);
  return 0;
}

int Diff(const Flags& flags, std::ostream& out, std::ostream& err) {
  if (flags.positional.size() != 2) {
    err << "usage: tidemark diff A B [--all] [--json]\n";
    return 2;
  }
  Snapshot a, b;
  if (!Load(flags.positional[0], flags, a, err) || !Load(flags.positional[1], flags, b, err)) {
    return 1;
  }
  auto rows = diff::DiffTypes(a.types, b.types);
  std::erase_if(
      rows, [](const diff::TypeDelta& d) { return d.count_delta() == 0 && d.bytes_delta() == 0; });
  const size_t shown = flags.all ? rows.size() : std::min<size_t>(rows.size(), 20);
  const double seconds = (b.header.timestamp_ns - a.header.timestamp_ns) / 1e9;
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
    out << j.dump(2) << "\n";
    return 0;
  }
  out << Format("Diff over %.1f s (seq %" PRIu64 " -> %" PRIu64 "), %zu types changed\n", seconds,
                a.header.seq, b.header.seq, rows.size());
  out << "  Count delta   Bytes delta        Count        Bytes Kind\n";
  for (size_t i = 0; i < shown; ++i) {
    const auto& d = rows[i];
    out << Format("%+13" PRId64 " %+13" PRId64 " %12" PRId64 " %12" PRId64 " %s\n", d.count_delta(),
                  d.bytes_delta(), d.count_after, d.bytes_after, d.name.c_str());
  }
  return 0;
}

}  // namespace

bool ParseFlags(const std::vector<std::string>& args, Flags& flags, std::ostream& err) {
  // Options that take a value; a repeated one keeps every value (--exclude A --exclude B).
  static const std::vector<std::string> with_value = {
      "--store",  "--depth", "--paths", "--top",     "--max-parents", "--max-refs", "--format",
      "--output", "-o",      "--root",  "--exclude", "--window",      "--service",  "--agent"};
  flags.store_dir = DefaultStoreDir();
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json") {
      flags.json = true;
    } else if (a == "--all") {
      flags.all = true;
    } else if (a == "--no-collapse" || a == "--no-values") {
      flags.values[a];
    } else if (std::find(with_value.begin(), with_value.end(), a) != with_value.end()) {
      if (i + 1 == args.size()) {
        err << "tidemark " << args[0] << ": " << a << " needs a value\n";
        return false;
      }
      const std::string& v = args[++i];
      if (a == "--store") flags.store_dir = v;
      flags.values[a == "-o" ? "--output" : a].push_back(v);
    } else if (a.size() > 1 && a[0] == '-') {
      err << "tidemark " << args[0] << ": unknown option '" << a << "'\n";
      return false;
    } else {
      flags.positional.push_back(a);
    }
  }
  return true;
}

std::optional<int64_t> IntOption(const Flags& flags, const std::string& option, int64_t fallback,
                                 std::ostream& err) {
  auto v = flags.value(option);
  if (!v) return fallback;
  try {
    size_t used = 0;
    const int64_t n = std::stoll(*v, &used);
    if (used == v->size()) return n;
  } catch (const std::exception&) {
  }
  err << "tidemark: " << option << " takes an integer, not '" << *v << "'\n";
  return std::nullopt;
}

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? err : out) << kUsage;
    return args.empty() ? 2 : 0;
  }
  Flags flags;
  if (std::find(args.begin(), args.end(), "--help") != args.end()) {
    out << kUsage;
    return 0;
  }
  if (!ParseFlags(args, flags, err)) return 2;
  if (args[0] == "summary") return Summary(flags, out, err);
  if (args[0] == "diff") return Diff(flags, out, err);
  if (args[0] == "ls" || args[0] == "verify" || args[0] == "keygen") {
    if (!flags.positional.empty()) {
      err << "tidemark " << args[0] << ": unexpected argument '" << flags.positional[0] << "'\n";
      return 2;
    }
    if (args[0] == "ls") return ListStore(flags.store_dir, flags.all, flags.json, out, err);
    if (args[0] == "verify") return VerifyStore(flags.store_dir, flags.json, out, err);
    return MakeCurveKeys(flags.json, out, err);
  }
  if (IsAnalysisVerb(args[0])) return RunAnalysis(args[0], flags, out, err);
  if (IsPipelineVerb(args[0])) {
    const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    return RunPipelineVerb(args[0], flags, now_ns, out, err);
  }
  err << "tidemark: unknown command '" << args[0] << "'\n" << kUsage;
  return 2;
}

}  // namespace tidemark::cli
