#include "cli/analysis_commands.h"

#include <editline/readline.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "analysis/dominators.h"
#include "analysis/exports.h"
#include "analysis/graph_diff.h"
#include "analysis/heap_graph.h"
#include "analysis/meliae.h"
#include "analysis/queries.h"
#include "cli/output.h"
#include "cli/stored.h"
#include "cli/type_table.h"
#include "snapshot/wire.h"

namespace tidemark::cli {
namespace {

using analysis::Dominators;
using analysis::HeapGraph;
using analysis::kNone;
using nlohmann::json;

using Clock = std::chrono::steady_clock;

std::string Format(const char* fmt, auto... args) {
  char line[1024];
  std::snprintf(line, sizeof line, fmt, args...);
  return line;
}

std::string Hex(uint64_t address) { return Format("0x%" PRIx64, address); }

// Progress on stderr, only for a person watching: a terminal, and only past a second.
class Progress {
 public:
  explicit Progress(std::ostream& err)
      : err_(err), tty_(isatty(STDERR_FILENO)), start_(Clock::now()) {}
  void Step(std::string_view what, uint64_t done = 0, uint64_t total = 0) {
    if (!tty_ || Clock::now() - start_ < std::chrono::seconds(1)) return;
    err_ << "\r\033[K" << what;
    if (total > 0) err_ << " " << (100 * done / total) << "%";
    err_ << std::flush;
    shown_ = true;
  }
  void Done() {
    if (shown_) err_ << "\r\033[K" << std::flush;
    shown_ = false;
  }
  ~Progress() { Done(); }

 private:
  std::ostream& err_;
  bool tty_;
  Clock::time_point start_;
  bool shown_ = false;
};

std::optional<HeapGraph> LoadGraph(const std::string& arg, const Flags& flags, std::ostream& err,
                                   bool parents) {
  Progress progress(err);
  progress.Step("reading " + arg);
  auto message = ReadSnapshotArgument(arg, flags);
  if (!message) {
    err << "tidemark: " << message.error().message << "\n";
    return std::nullopt;
  }
  progress.Step("decoding " + arg);
  auto decoded = snapshot::Decode(*message);
  if (!decoded) {
    err << "tidemark: '" << arg << "' is not a readable snapshot: " << decoded.error().message
        << "\n";
    return std::nullopt;
  }
  std::string().swap(*message);
  if (decoded->header.kind != snapshot::Kind::kGraph) {
    const std::string hint = NewestGraphHint(arg, flags);
    err << "tidemark: " << arg << " is a summary snapshot, which has no objects to analyse: "
        << (hint.empty() ? "take a graph snapshot (tidemark.dump(path, kind=\"graph\") or "
                           "TIDEMARK_GRAPH_EVERY)"
                         : hint)
        << "\n";
    return std::nullopt;
  }
  auto max_refs = IntOption(flags, "--max-refs", -1, err);
  auto max_parents = IntOption(flags, "--max-parents", 100, err);
  if (!max_refs || !max_parents) return std::nullopt;
  analysis::LoadOptions options;
  options.collapse_instance_dicts = !flags.has("--no-collapse");
  options.keep_values = !flags.has("--no-values");
  options.max_refs = *max_refs;
  options.max_parents = *max_parents;
  options.progress = [&](std::string_view what, uint64_t done, uint64_t total) {
    progress.Step(what, done, total);
  };
  auto graph = HeapGraph::Load(std::move(*decoded), options);
  if (!graph) {
    err << "tidemark: " << arg << ": " << graph.error().message << "\n";
    return std::nullopt;
  }
  if (parents) {
    progress.Step("building parents");
    graph->BuildParents();
  }
  return std::move(*graph);
}

std::optional<uint32_t> ResolveObject(const HeapGraph& g, const std::string& text,
                                      std::ostream& err) {
  uint64_t address = 0;
  try {
    size_t used = 0;
    address = std::stoull(text, &used, text.rfind("0x", 0) == 0 ? 16 : 10);
    if (used != text.size()) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    err << "tidemark: '" << text << "' is not an address (0x7f3a... or decimal)\n";
    return std::nullopt;
  }
  auto found = g.Find(address);
  if (!found) {
    err << "tidemark: no object at " << Hex(address) << " in this snapshot (" << g.size()
        << " objects; an absorbed __dict__ is found at its owner's address)\n";
  }
  return found;
}

// What a cap at load may have hidden from a `why` answer: only when it may have mattered, that
// is when a target's own referrers were cut or fewer paths were found than asked for (a cap
// somewhere in a large heap, on a type object's referrers say, changes nothing otherwise).
std::string Caveats(const HeapGraph& g, const std::vector<uint32_t>& targets, size_t paths_found,
                    size_t paths_asked) {
  const bool targets_cut = std::any_of(targets.begin(), targets.end(), [&](uint32_t t) {
    return g.parents(t).size() < g.true_parent_count(t);
  });
  if (!targets_cut && paths_found >= paths_asked) return "";
  std::string out;
  if (g.refs_capped()) out += "references were capped: reachability and sizes may be low. ";
  if (g.parents_capped()) out += "parents were capped (--max-parents): paths may be missing. ";
  return out;
}

// Said wherever a result depends on which dict is whose __dict__.
void NoteOwnership(const HeapGraph& g, std::ostream& out) {
  if (!g.ownership_inferred()) return;
  out << "note: this snapshot does not record which dict is whose __dict__ (format 1, or a "
         "meliae import): they were paired as meliae does, which on Python 3.11+ can take an "
         "instance's only dict attribute for its __dict__\n";
}

void MarkOwnership(const HeapGraph& g, json& j) {
  if (g.ownership_inferred()) j["ownership_inferred"] = true;
}

json ObjectJson(const HeapGraph& g, uint32_t i) {
  json j = {{"address", Hex(g.address(i))}, {"type", g.type_name(i)}, {"size", g.bytes(i)}};
  if (g.length(i)) j["len"] = g.length(i);
  if (auto n = g.name(i)) j["name"] = std::string(*n);
  if (auto v = g.value(i)) j["value"] = std::string(*v);
  return j;
}

void PrintPaths(const std::vector<analysis::Path>& paths, std::ostream& out) {
  if (paths.empty()) out << "  no path to a root within the search bounds (--depth)\n";
  for (const auto& p : paths) {
    out << "  [" << analysis::RootReasonName(p.root) << ", " << p.objects.size() - 1 << " steps] "
        << p.text << "\n";
  }
}

json PathsJson(const HeapGraph& g, const std::vector<analysis::Path>& paths) {
  json list = json::array();
  for (const auto& p : paths) {
    json objects = json::array();
    for (uint32_t i : p.objects) objects.push_back(ObjectJson(g, i));
    list.push_back(
        {{"root", analysis::RootReasonName(p.root)}, {"text", p.text}, {"objects", objects}});
  }
  return list;
}

analysis::PathOptions PathOptionsFrom(const Flags& flags, std::ostream& err, bool& ok) {
  analysis::PathOptions options;
  auto paths = IntOption(flags, "--paths", 5, err);
  auto depth = IntOption(flags, "--depth", 32, err);
  ok = paths && depth && *paths > 0 && *depth > 0;
  if (ok) {
    options.max_paths = static_cast<size_t>(*paths);
    options.max_depth = static_cast<size_t>(*depth);
  }
  return options;
}

int Show(const HeapGraph& g, const Dominators* d, uint32_t i, const Flags& flags, bool as_json,
         std::ostream& out) {
  json j = ObjectJson(g, i);
  j["references"] = g.true_ref_count(i);
  if (g.has_parents()) j["referrers"] = g.true_parent_count(i);
  if (d) {
    j["retained"] = d->retained(i);
    j["dominator"] = d->idom(i) == kNone ? json("<root>") : json(Hex(g.address(d->idom(i))));
  }
  if (auto reason = g.root_reason(i)) j["root"] = analysis::RootReasonName(*reason);
  if (as_json) {
    out << j.dump(2) << "\n";
    return 0;
  }
  out << Hex(g.address(i)) << "  " << analysis::Describe(g, i) << "\n";
  out << "  size " << Size(flags, static_cast<double>(g.bytes(i)));
  if (g.length(i)) out << ", length " << g.length(i);
  out << ", " << g.true_ref_count(i) << " references";
  if (g.has_parents()) out << ", " << g.true_parent_count(i) << " referrers";
  out << "\n";
  if (d) {
    out << "  retains " << Size(flags, static_cast<double>(d->retained(i))) << "; dominated by "
        << (d->idom(i) == kNone ? std::string("the roots") : analysis::Describe(g, d->idom(i)))
        << "\n";
  }
  if (auto reason = g.root_reason(i))
    out << "  a root: " << analysis::RootReasonName(*reason) << "\n";
  return 0;
}

// Children or parents of one object, numbered for the walker.
std::vector<uint32_t> Neighbours(const HeapGraph& g, uint32_t i, bool parents) {
  const auto span = parents ? g.parents(i) : g.refs(i);
  return {span.begin(), span.end()};
}

// Shows `limit` of them (SIZE_MAX: all).
void ListNeighbours(const HeapGraph& g, uint32_t i, bool parents, size_t limit, bool as_json,
                    std::ostream& out) {
  const auto list = Neighbours(g, i, parents);
  const size_t shown = std::min(list.size(), limit);
  if (as_json) {
    json j = json::array();
    for (size_t k = 0; k < shown; ++k) {
      json o = ObjectJson(g, list[k]);
      o["edge"] = parents ? analysis::EdgeName(g, list[k], analysis::PositionOf(g, list[k], i))
                          : analysis::EdgeName(g, i, k);
      j.push_back(o);
    }
    json result = {{"object", ObjectJson(g, i)}, {parents ? "parents" : "children", j}};
    MarkTruncated(result, shown, list.size());
    // The count the snapshot recorded, which a cap at load or in the agent may exceed.
    result["total"] = parents ? g.true_parent_count(i) : g.true_ref_count(i);
    out << result.dump(2) << "\n";
    return;
  }
  for (size_t k = 0; k < shown; ++k) {
    const uint32_t o = list[k];
    const std::string edge = parents ? analysis::EdgeName(g, o, analysis::PositionOf(g, o, i))
                                     : analysis::EdgeName(g, i, k);
    out << Format("%5zu  %-24s %-16s %8" PRIu64 "  %s\n", k, edge.c_str(),
                  Hex(g.address(o)).c_str(), g.bytes(o), analysis::Describe(g, o).c_str());
  }
  const uint64_t total = parents ? g.true_parent_count(i) : g.true_ref_count(i);
  if (total > shown) {
    out << "  ... " << total - shown << " more"
        << (list.size() > shown ? " (--all)" : " (capped at load)") << "\n";
  }
  if (list.empty()) out << "  (none)\n";
}

int Neighbourhood(const Flags& flags, bool parents, std::ostream& out, std::ostream& err) {
  auto g = LoadGraph(flags.positional[0], flags, err, parents);
  if (!g) return 1;
  auto i = ResolveObject(*g, flags.positional[1], err);
  if (!i) return 1;
  const size_t total = parents ? g->parents(*i).size() : g->refs(*i).size();
  ListNeighbours(*g, *i, parents, RowsShown(flags, total, 50), flags.json, out);
  return 0;
}

}  // namespace

int TypesCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  auto g = LoadGraph(flags.positional[0], flags, err, false);
  if (!g) return 1;
  const Dominators d = Dominators::Compute(*g);
  auto rows = analysis::TypeTable(*g);
  std::map<std::string, uint64_t> retained;
  for (size_t t = 0; t < g->type_names().size(); ++t)
    retained[g->type_names()[t]] = d.retained_by_type()[t];
  const size_t shown = RowsShown(flags, rows.size(), 25);
  if (flags.json) {
    json j = {{"objects", g->size()}, {"bytes", g->total_bytes()}, {"rows", json::array()}};
    MarkTruncated(j, shown, rows.size());
    MarkOwnership(*g, j);
    for (size_t k = 0; k < shown; ++k) {
      j["rows"].push_back({{"type", rows[k].name},
                           {"count", rows[k].count},
                           {"bytes", rows[k].bytes},
                           {"max", rows[k].max_bytes},
                           {"retained", retained[rows[k].name]}});
    }
    out << j.dump(2) << "\n";
    return 0;
  }
  out << Format("%zu objects, %zu types, %s (namespace dicts folded into their owners)\n",
                g->size(), rows.size(), Size(flags, static_cast<double>(g->total_bytes())).c_str());
  out << "       Count        Bytes        Max     Retained  Type\n";
  for (size_t k = 0; k < shown; ++k) {
    out << Format("%12" PRIu64 " %12s %10s %12s  %s\n", rows[k].count,
                  Size(flags, static_cast<double>(rows[k].bytes)).c_str(),
                  Size(flags, static_cast<double>(rows[k].max_bytes)).c_str(),
                  Size(flags, static_cast<double>(retained[rows[k].name])).c_str(),
                  rows[k].name.c_str());
  }
  if (shown < rows.size()) out << "... " << rows.size() - shown << " more types (--all)\n";
  NoteOwnership(*g, out);
  return 0;
}

int WhyCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  bool ok = true;
  const auto options = PathOptionsFrom(flags, err, ok);
  if (!ok) return 2;
  auto g = LoadGraph(flags.positional[0], flags, err, true);
  if (!g) return 1;
  const std::string& what = flags.positional[1];
  std::vector<uint32_t> targets;
  const bool by_type =
      !(what.rfind("0x", 0) == 0 || what.find_first_not_of("0123456789") == std::string::npos);
  if (by_type) {
    targets = analysis::InstancesOf(*g, what);
    if (targets.empty()) {
      err << "tidemark why: no objects of type '" << what << "' (type names are module-qualified: "
          << "see tidemark types)\n";
      return 1;
    }
  } else {
    auto i = ResolveObject(*g, what, err);
    if (!i) return 1;
    targets = {*i};
  }
  // Who holds the instances directly, by referrer.
  std::map<uint32_t, uint64_t> holders;
  for (uint32_t t : targets) {
    for (uint32_t p : g->parents(t)) holders[p] += 1;
  }
  std::vector<std::pair<uint32_t, uint64_t>> top(holders.begin(), holders.end());
  std::sort(top.begin(), top.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  if (top.size() > 5) top.resize(5);
  analysis::PathFinder finder(*g);
  const auto paths = finder.Find(targets, options);
  const std::string caveats = Caveats(*g, targets, paths.size(), options.max_paths);
  if (flags.json) {
    json j = {
        {"targets", targets.size()}, {"paths", PathsJson(*g, paths)}, {"holders", json::array()}};
    for (const auto& [h, n] : top) {
      json o = ObjectJson(*g, h);
      o["holds"] = n;
      j["holders"].push_back(o);
    }
    if (!caveats.empty()) j["caveats"] = caveats;
    MarkOwnership(*g, j);
    out << j.dump(2) << "\n";
    return 0;
  }
  if (by_type)
    out << targets.size() << " objects of type " << what << "\n";
  else
    out << analysis::Describe(*g, targets[0]) << " at " << Hex(g->address(targets[0])) << "\n";
  if (!top.empty()) {
    out << "held directly by:\n";
    for (const auto& [h, n] : top) {
      out << Format("  %8" PRIu64 "  %-16s %s\n", n, Hex(g->address(h)).c_str(),
                    analysis::Describe(*g, h).c_str());
    }
  }
  out << "shortest paths from roots:\n";
  PrintPaths(paths, out);
  if (!caveats.empty()) out << "note: " << caveats << "\n";
  NoteOwnership(*g, out);
  return 0;
}

int RetainedCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  auto top_n = IntOption(flags, "--top", 20, err);
  if (!top_n || *top_n <= 0) return 2;
  auto g = LoadGraph(flags.positional[0], flags, err, false);
  if (!g) return 1;
  Progress progress(err);
  progress.Step("computing dominators");
  const Dominators d = Dominators::Compute(*g);
  progress.Done();
  const auto top = d.Top(static_cast<size_t>(*top_n));
  std::vector<std::pair<uint64_t, std::string>> types;
  for (size_t t = 0; t < g->type_names().size(); ++t) {
    if (d.retained_by_type()[t] > 0)
      types.emplace_back(d.retained_by_type()[t], g->type_names()[t]);
  }
  std::sort(types.rbegin(), types.rend());
  // JSON lists every type (there are few); the objects are the top N of a whole heap.
  if (!flags.json && types.size() > static_cast<size_t>(*top_n)) types.resize(*top_n);
  if (flags.json) {
    json j = {{"bytes", g->total_bytes()}, {"objects", json::array()}, {"types", json::array()}};
    for (uint32_t i : top) {
      json o = ObjectJson(*g, i);
      o["retained"] = d.retained(i);
      j["objects"].push_back(o);
    }
    for (const auto& [bytes, name] : types)
      j["types"].push_back({{"type", name}, {"retained", bytes}});
    MarkTruncated(j, top.size(), g->size());  // "objects" are the top N of every object.
    out << j.dump(2) << "\n";
    return 0;
  }
  out << "largest retainers (of " << Size(flags, static_cast<double>(g->total_bytes())) << "):\n";
  for (uint32_t i : top) {
    out << Format("  %12s %5.1f%%  %-16s %s\n",
                  Size(flags, static_cast<double>(d.retained(i))).c_str(),
                  100.0 * d.retained(i) / std::max<uint64_t>(1, g->total_bytes()),
                  Hex(g->address(i)).c_str(), analysis::Describe(*g, i).c_str());
  }
  out << "retained by type (each byte once):\n";
  for (const auto& [bytes, name] : types)
    out << Format("  %12s  %s\n", Size(flags, static_cast<double>(bytes)).c_str(), name.c_str());
  return 0;
}

int GraphDiffCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  auto a = LoadGraph(flags.positional[0], flags, err, false);
  if (!a) return 1;
  auto b = LoadGraph(flags.positional[1], flags, err, true);
  if (!b) return 1;
  if (a->header().identity.pid != b->header().identity.pid ||
      a->header().identity.start_time_ns != b->header().identity.start_time_ns) {
    err << "tidemark gdiff: " << flags.positional[0] << " and " << flags.positional[1]
        << " come from different processes (" << snapshot::AgentName(a->header().identity) << ", "
        << snapshot::AgentName(b->header().identity)
        << "): gdiff matches objects by address, which only means something within one "
           "process; `tidemark diff A B` compares their types\n";
    return 1;
  }
  const Dominators d = Dominators::Compute(*b);
  const auto r = analysis::DiffGraphs(*a, *b, d);
  if (flags.json) {
    json j = {{"seconds", r.seconds},       {"new_objects", r.new_objects},
              {"new_bytes", r.new_bytes},   {"gone_objects", r.gone_objects},
              {"gone_bytes", r.gone_bytes}, {"approximate", r.approximate},
              {"groups", json::array()}};
    const size_t shown = RowsShown(flags, r.groups.size(), 10);
    MarkTruncated(j, shown, r.groups.size());
    MarkOwnership(*b, j);
    for (size_t k = 0; k < shown; ++k) {
      const auto& grp = r.groups[k];
      json holders = json::array();
      for (const auto& h : grp.holders) {
        holders.push_back(
            {{"address", h.object == kNone ? json(nullptr) : json(Hex(b->address(h.object)))},
             {"object", h.description},
             {"path", h.path},
             {"count", h.count},
             {"bytes", h.bytes}});
      }
      j["groups"].push_back(
          {{"type", grp.type}, {"count", grp.count}, {"bytes", grp.bytes}, {"holders", holders}});
    }
    out << j.dump(2) << "\n";
    return 0;
  }
  out << Format("%" PRIu64 " objects (%s) new and %" PRIu64 " (%s) gone over %.1f s\n",
                r.new_objects, Size(flags, static_cast<double>(r.new_bytes)).c_str(),
                r.gone_objects, Size(flags, static_cast<double>(r.gone_bytes)).c_str(), r.seconds);
  const size_t shown = RowsShown(flags, r.groups.size(), 10);
  for (size_t k = 0; k < shown; ++k) {
    const auto& grp = r.groups[k];
    out << Format("%+10" PRIu64 " objects %12s  %s\n", grp.count,
                  SignedSize(flags, static_cast<double>(grp.bytes)).c_str(), grp.type.c_str());
    for (const auto& h : grp.holders) {
      out << Format("             %" PRIu64 " of them (%s retained) held by %s\n", h.count,
                    Size(flags, static_cast<double>(h.bytes)).c_str(), h.description.c_str());
      if (!h.path.empty()) out << "                 " << h.path << "\n";
    }
  }
  if (shown < r.groups.size()) out << "... " << r.groups.size() - shown << " more types (--all)\n";
  if (r.approximate) out << "note: a graph was capped; holders and paths may be incomplete\n";
  NoteOwnership(*b, out);
  return 0;
}

int ExportCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  const auto format = flags.value("--format");
  if (!format || (*format != "callgrind" && *format != "folded" && *format != "heapsnapshot")) {
    err << "tidemark export: --format must be callgrind, folded or heapsnapshot"
        << (format ? ", not '" + *format + "'" : std::string()) << "\n";
    return 2;
  }
  if (flags.json && !(flags.value("--output") && *flags.value("--output") != "-")) {
    err << "tidemark export: --json describes the file written: it needs -o FILE\n";
    return 2;
  }
  auto g = LoadGraph(flags.positional[0], flags, err, false);
  if (!g) return 1;
  std::ofstream file;
  const auto path = flags.value("--output");
  if (path && *path != "-") {
    std::string why = WhyNotAFile(*path, true);
    if (why.empty()) {
      file.open(*path, std::ios::binary);
      if (!file.is_open()) why = std::strerror(errno);
    }
    if (!why.empty()) {
      err << "tidemark export: cannot write '" << *path << "': " << why << "\n";
      return 1;
    }
  }
  std::ostream& sink = file.is_open() ? static_cast<std::ostream&>(file) : out;
  if (*format == "heapsnapshot") {
    analysis::WriteHeapSnapshot(*g, sink);
  } else {
    const Dominators d = Dominators::Compute(*g);
    if (*format == "callgrind")
      analysis::WriteCallgrind(*g, d, sink);
    else
      analysis::WriteFoldedStacks(*g, d, sink);
  }
  sink.flush();
  if (!sink) {
    err << "tidemark export: write failed\n";
    return 1;
  }
  if (flags.json) {
    out << json{{"format", *format},
                {"output", *path},
                {"objects", g->size()},
                {"bytes", static_cast<uint64_t>(file.tellp())}}
               .dump(2)
        << "\n";
  } else if (file.is_open()) {
    err << "wrote " << *path << " (" << g->size() << " objects)\n";
  }
  return 0;
}

int ImportMeliaeCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  Progress progress(err);
  analysis::MeliaeImportStats stats;
  auto s = analysis::ReadMeliaeDump(flags.positional[0], &stats, [&](uint64_t lines) {
    progress.Step("reading " + flags.positional[0] + ": " + std::to_string(lines) + " lines");
  });
  if (!s) {
    err << "tidemark import-meliae: " << s.error().message << "\n";
    return 1;
  }
  progress.Step("encoding");
  auto encoded = snapshot::Encode(*s);
  if (!encoded) {
    err << "tidemark import-meliae: " << encoded.error().message << "\n";
    return 1;
  }
  const std::string& path = flags.positional[1];
  // Refused before anything is written: a directory given for OUT once left OUT.tmp beside it.
  if (const std::string why = WhyNotAFile(path, true); !why.empty()) {
    err << "tidemark import-meliae: cannot write '" << path << "': " << why << "\n";
    return 1;
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::binary);
    file.write(encoded->data(), static_cast<std::streamsize>(encoded->size()));
    if (!file) {
      err << "tidemark import-meliae: cannot write '" << tmp << "': " << std::strerror(errno)
          << "\n";
      std::remove(tmp.c_str());
      return 1;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err << "tidemark import-meliae: cannot rename '" << tmp << "' to '" << path << "'\n";
    return 1;
  }
  progress.Done();
  if (flags.json) {
    out << json{{"objects", stats.objects},
                {"references", stats.references},
                {"dangling_references", stats.dangling_references},
                {"duplicate_addresses", stats.duplicate_addresses},
                {"bytes", encoded->size()}}
               .dump(2)
        << "\n";
  } else {
    out << "imported " << stats.objects << " objects and " << stats.references << " references ("
        << stats.dangling_references << " to addresses with no object, dropped) into " << path
        << " (" << encoded->size() << " bytes)\n";
  }
  return 0;
}

int GraphSummary(const Flags& flags, std::ostream& out, std::ostream& err) {
  auto g = LoadGraph(flags.positional[0], flags, err, false);
  if (!g) return 1;
  std::optional<uint32_t> root;
  std::vector<uint32_t> reachable;  // Empty: the whole heap.
  if (auto text = flags.value("--root")) {
    root = ResolveObject(*g, *text, err);
    if (!root) return 1;
    std::vector<uint32_t> excluding;
    if (auto it = flags.values.find("--exclude"); it != flags.values.end()) {
      for (const std::string& x : it->second) {
        auto i = ResolveObject(*g, x, err);
        if (!i) return 1;
        excluding.push_back(*i);
      }
    }
    reachable = analysis::Reachable(*g, *root, excluding);
  }
  const std::vector<snapshot::TypeStat> rows = analysis::TypeTable(*g, reachable);
  if (flags.json) {
    json j = TypeTableJson(rows, RowsShown(flags, rows.size(), 20));
    j["service"] = g->header().identity.service;
    j["seq"] = g->header().seq;
    j["kind"] = "graph";
    if (root) j["root"] = ObjectJson(*g, *root);
    out << j.dump(2) << "\n";
    return 0;
  }
  PrintTypeTable(rows, RowsShown(flags, rows.size(), 20), flags, out);
  return 0;
}

int Walk(const Flags& flags, std::istream& in, std::ostream& out, std::ostream& err) {
  auto loaded = LoadGraph(flags.positional[0], flags, err, true);
  if (!loaded) return 1;
  const HeapGraph& g = *loaded;
  std::optional<Dominators> dominators;
  auto doms = [&]() -> const Dominators& {
    if (!dominators) dominators = Dominators::Compute(g);
    return *dominators;
  };
  uint32_t at;
  if (flags.positional.size() == 2) {
    auto i = ResolveObject(g, flags.positional[1], err);
    if (!i) return 1;
    at = *i;
  } else {
    at = doms().Top(1).front();
    out << "starting at the largest retainer; `help` lists commands\n";
  }
  std::vector<uint32_t> back;
  const bool interactive = isatty(STDIN_FILENO) && &in == &std::cin;
  if (interactive) {
    using_history();
    stifle_history(1000);
  }
  auto show = [&] { Show(g, &doms(), at, flags, false, out); };
  show();
  for (;;) {
    std::string line;
    if (interactive) {
      char* raw = readline("tidemark> ");
      if (!raw) break;
      line = raw;
      std::free(raw);
      if (!line.empty()) add_history(line.c_str());
    } else if (!std::getline(in, line)) {
      break;
    }
    std::istringstream words(line);
    std::string command, arg;
    words >> command >> arg;
    auto pick = [&](bool parents) -> std::optional<uint32_t> {
      const auto list = Neighbours(g, at, parents);
      size_t k = 0;
      try {
        k = std::stoul(arg);
      } catch (const std::exception&) {
        out << "which one? give its number from `" << (parents ? "parents" : "ls") << "`\n";
        return std::nullopt;
      }
      if (k >= list.size()) {
        out << "no " << (parents ? "parent" : "child") << " #" << arg << " (there are "
            << list.size() << ")\n";
        return std::nullopt;
      }
      return list[k];
    };
    if (command.empty()) continue;
    if (command == "q" || command == "quit" || command == "exit") break;
    if (command == "help" || command == "?") {
      out << "  ls | children       list the references of this object, numbered\n"
             "  parents             list its referrers, numbered\n"
             "  c N | cd N          go to child N          p N | up N   go to parent N\n"
             "  b | back            go back                goto ADDR    jump to an object\n"
             "  why                 shortest paths from roots to here\n"
             "  show                this object again      q            quit\n";
    } else if (command == "ls" || command == "children") {
      ListNeighbours(g, at, false, SIZE_MAX, false, out);
    } else if (command == "parents") {
      ListNeighbours(g, at, true, SIZE_MAX, false, out);
    } else if (command == "c" || command == "cd" || command == "p" || command == "up") {
      if (auto next = pick(command == "p" || command == "up")) {
        back.push_back(at);
        at = *next;
        show();
      }
    } else if (command == "b" || command == "back") {
      if (back.empty()) {
        out << "nothing to go back to\n";
      } else {
        at = back.back();
        back.pop_back();
        show();
      }
    } else if (command == "goto") {
      if (auto i = ResolveObject(g, arg, out)) {
        back.push_back(at);
        at = *i;
        show();
      }
    } else if (command == "why") {
      analysis::PathFinder finder(g);
      PrintPaths(finder.Find({at}), out);
    } else if (command == "show") {
      show();
    } else {
      out << "unknown command '" << command << "' (help lists them)\n";
    }
  }
  return 0;
}

int ChildrenCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  return Neighbourhood(flags, false, out, err);
}
int ParentsCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  return Neighbourhood(flags, true, out, err);
}
int WalkCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  return Walk(flags, std::cin, out, err);
}

int ShowCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  auto g = LoadGraph(flags.positional[0], flags, err, true);
  if (!g) return 1;
  auto i = ResolveObject(*g, flags.positional[1], err);
  if (!i) return 1;
  const Dominators d = Dominators::Compute(*g);
  return Show(*g, &d, *i, flags, flags.json, out);
}

}  // namespace tidemark::cli
