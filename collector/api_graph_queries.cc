#include "collector/api_graph_queries.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "analysis/graph_diff.h"
#include "analysis/queries.h"
#include "diff/sites.h"
#include "snapshot/wire.h"
#include "store/references.h"

namespace tidemark::collector {
namespace {

using nlohmann::json;
using Graph = std::shared_ptr<const LoadedGraph>;

std::string Hex(uint64_t address) {
  char out[24];
  std::snprintf(out, sizeof out, "0x%llx", static_cast<unsigned long long>(address));
  return out;
}

// The graph snapshot `name` names, refused past the object limit before it is loaded.
std::expected<Graph, QueryError> Load(const GraphSource& source, const QueryParams& params,
                                      const std::string& name, int64_t now_ns) {
  auto ref = params.Required(name);
  if (!ref) return std::unexpected(QueryError{400, ref.error().message, name});
  auto catalog = source.listing->CatalogFor(source.store_dir, {*ref});
  if (!catalog) return std::unexpected(QueryError{500, catalog.error().message, ""});
  auto entry = store::ResolveRef(*catalog, *ref, now_ns);
  if (!entry) {
    const int status = entry.error().code == snapshot::Code::kNotFound ? 404 : 400;
    return std::unexpected(QueryError{status, entry.error().message, name});
  }
  if (entry->kind != snapshot::Kind::kGraph) {
    return std::unexpected(QueryError{400,
                                      "'" + *ref +
                                          "' is a summary: graph analyses need a "
                                          "graph snapshot (GET /api/v1/snapshots?kind=graph)",
                                      name});
  }
  if (entry->objects > source.max_objects) {
    return std::unexpected(QueryError{
        400,
        "'" + *ref + "' has " + std::to_string(entry->objects) +
            " objects, over the query API's limit of " + std::to_string(source.max_objects) +
            " (http.max_graph_objects); use the tidemark CLI on the store",
        name});
  }
  auto graph = source.cache.Get(source.store_dir, *entry);
  if (!graph) return std::unexpected(QueryError{500, graph.error().message, name});
  return *graph;
}

// An object named by its address ("0x7f..." or decimal), or an error naming the parameter.
std::expected<uint32_t, QueryError> Object(const analysis::HeapGraph& g, const std::string& text,
                                           const std::string& name) {
  uint64_t address = 0;
  try {
    size_t used = 0;
    address = std::stoull(text, &used, 0);
    if (used != text.size()) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    return std::unexpected(QueryError{
        400, "'" + name + "' must be an address like 0x7f3a10, not '" + text + "'", name});
  }
  auto i = g.Find(address);
  if (!i) return std::unexpected(QueryError{404, "no object at " + text + " in this graph", name});
  return *i;
}

json ObjectJson(const LoadedGraph& l, uint32_t i) {
  const analysis::HeapGraph& g = l.graph;
  return {{"address", Hex(g.address(i))},
          {"type", g.type_name(i)},
          {"description", analysis::Describe(g, i)},
          {"bytes", g.bytes(i)},
          {"retained", l.dominators.retained(i)}};
}

std::string PathTo(const analysis::HeapGraph& g, uint32_t i) {
  analysis::PathFinder finder(g);
  auto paths = finder.Find({i}, analysis::PathOptions{.max_paths = 1});
  return paths.empty() ? "" : paths[0].text;
}

#define TM_GRAPH(var, source, params, name, now)                   \
  auto var##_loaded = Load(source, params, name, now);             \
  if (!var##_loaded) return std::unexpected(var##_loaded.error()); \
  const LoadedGraph& var = **var##_loaded

#define TM_TOP(var, params)                                                                        \
  auto var##_result = (params).Integer("top", 20, 1, 1000);                                        \
  if (!var##_result) return std::unexpected(QueryError{400, var##_result.error().message, "top"}); \
  const size_t var = static_cast<size_t>(*var##_result)

#define TM_ONLY(params, ...)                                                                   \
  if (auto unknown = (params).Unknown({__VA_ARGS__})) {                                        \
    return std::unexpected(QueryError{400, "unknown parameter '" + *unknown + "'", *unknown}); \
  }

}  // namespace

QueryResult GraphRetained(const GraphSource& source, const QueryParams& params, int64_t now_ns) {
  TM_ONLY(params, "ref", "top");
  TM_TOP(top, params);
  TM_GRAPH(l, source, params, "ref", now_ns);
  json retainers = json::array();
  for (uint32_t i : l.dominators.Top(top)) {
    json o = ObjectJson(l, i);
    o["path"] = PathTo(l.graph, i);
    retainers.push_back(std::move(o));
  }
  std::vector<std::pair<uint64_t, uint32_t>> by_type;
  const auto& retained = l.dominators.retained_by_type();
  for (uint32_t t = 0; t < retained.size(); ++t) by_type.emplace_back(retained[t], t);
  std::sort(by_type.rbegin(), by_type.rend());
  json types = json::array();
  for (size_t k = 0; k < by_type.size() && k < top; ++k) {
    types.push_back(
        {{"type", l.graph.type_names()[by_type[k].second]}, {"retained", by_type[k].first}});
  }
  return json{{"objects", l.graph.size()},
              {"bytes", l.graph.total_bytes()},
              {"retainers", retainers},
              {"types", types}};
}

QueryResult GraphDominated(const GraphSource& source, const QueryParams& params, int64_t now_ns) {
  TM_ONLY(params, "ref", "address", "top");
  TM_TOP(top, params);
  TM_GRAPH(l, source, params, "ref", now_ns);
  uint32_t parent = analysis::kNone;  // The virtual root: the tree's top level.
  json out = json::object();
  if (auto address = params.Get("address")) {
    auto i = Object(l.graph, *address, "address");
    if (!i) return std::unexpected(i.error());
    parent = *i;
    out["object"] = ObjectJson(l, parent);
    out["object"]["path"] = PathTo(l.graph, parent);
  }
  std::vector<uint32_t> children;
  for (uint32_t v = 0; v < l.graph.size(); ++v) {
    if (l.dominators.idom(v) == parent && v != parent) children.push_back(v);
  }
  std::sort(children.begin(), children.end(), [&](uint32_t a, uint32_t b) {
    return l.dominators.retained(a) > l.dominators.retained(b);
  });
  out["children_total"] = children.size();
  json rows = json::array();
  for (size_t k = 0; k < children.size() && k < top; ++k)
    rows.push_back(ObjectJson(l, children[k]));
  out["children"] = std::move(rows);
  return out;
}

QueryResult GraphWhy(const GraphSource& source, const QueryParams& params, int64_t now_ns) {
  TM_ONLY(params, "ref", "type", "address", "paths");
  auto max_paths = params.Integer("paths", 5, 1, 50);
  if (!max_paths) return std::unexpected(QueryError{400, max_paths.error().message, "paths"});
  const auto type = params.Get("type");
  const auto address = params.Get("address");
  if (!type == !address) {
    return std::unexpected(
        QueryError{400, "give one of 'type' and 'address'", type ? "address" : "type"});
  }
  TM_GRAPH(l, source, params, "ref", now_ns);
  std::vector<uint32_t> targets;
  if (type) {
    targets = analysis::InstancesOf(l.graph, *type);
    if (targets.empty()) {
      return std::unexpected(
          QueryError{404, "no objects of type '" + *type + "' in this graph", "type"});
    }
  } else {
    auto i = Object(l.graph, *address, "address");
    if (!i) return std::unexpected(i.error());
    targets = {*i};
  }
  std::map<uint32_t, uint64_t> referrers;
  for (uint32_t t : targets) {
    for (uint32_t p : l.graph.parents(t)) referrers[p] += 1;
  }
  std::vector<std::pair<uint64_t, uint32_t>> top;
  for (const auto& [p, n] : referrers) top.emplace_back(n, p);
  std::sort(top.rbegin(), top.rend());
  json holders = json::array();
  for (size_t k = 0; k < top.size() && k < 5; ++k) {
    json o = ObjectJson(l, top[k].second);
    o["holds"] = top[k].first;
    holders.push_back(std::move(o));
  }
  analysis::PathFinder finder(l.graph);
  json paths = json::array();
  for (const analysis::Path& p :
       finder.Find(targets, analysis::PathOptions{.max_paths = static_cast<size_t>(*max_paths)})) {
    paths.push_back({{"text", p.text},
                     {"root", analysis::RootReasonName(p.root)},
                     {"length", p.objects.size()}});
  }
  return json{{"targets", targets.size()}, {"holders", holders}, {"paths", paths}};
}

QueryResult GraphDiff(const GraphSource& source, const QueryParams& params, int64_t now_ns) {
  TM_ONLY(params, "a", "b", "top");
  auto top = params.Integer("top", 10, 1, 200);
  if (!top) return std::unexpected(QueryError{400, top.error().message, "top"});
  TM_GRAPH(a, source, params, "a", now_ns);
  TM_GRAPH(b, source, params, "b", now_ns);
  if (snapshot::AgentName(a.graph.header().identity) !=
      snapshot::AgentName(b.graph.header().identity)) {
    return std::unexpected(QueryError{400,
                                      "'a' and 'b' must be graphs of the same process "
                                      "(addresses are compared)",
                                      "b"});
  }
  const analysis::GraphDiffResult r = analysis::DiffGraphs(
      a.graph, b.graph, b.dominators, {.groups = static_cast<size_t>(*top), .holders = 3});
  json groups = json::array();
  for (const analysis::NewGroup& g : r.groups) {
    if (groups.size() >= static_cast<size_t>(*top)) break;
    json holders = json::array();
    for (const analysis::Holder& h : g.holders) {
      holders.push_back({{"description", h.description},
                         {"path", h.path},
                         {"count", h.count},
                         {"bytes", h.bytes},
                         {"outermost_type", h.outermost_type}});
    }
    groups.push_back(
        {{"type", g.type}, {"count", g.count}, {"bytes", g.bytes}, {"holders", holders}});
  }
  return json{{"seconds", r.seconds},
              {"new_objects", r.new_objects},
              {"new_bytes", r.new_bytes},
              {"gone_objects", r.gone_objects},
              {"gone_bytes", r.gone_bytes},
              {"approximate", r.approximate},
              {"groups", groups}};
}

QueryResult GraphSites(const GraphSource& source, const QueryParams& params, int64_t now_ns) {
  TM_ONLY(params, "ref", "top", "type");
  TM_TOP(top, params);
  auto ref = params.Required("ref");
  if (!ref) return std::unexpected(QueryError{400, ref.error().message, "ref"});
  auto catalog = source.listing->CatalogFor(source.store_dir, {*ref});
  if (!catalog) return std::unexpected(QueryError{500, catalog.error().message, ""});
  auto entry = store::ResolveRef(*catalog, *ref, now_ns);
  if (!entry) {
    const int status = entry.error().code == snapshot::Code::kNotFound ? 404 : 400;
    return std::unexpected(QueryError{status, entry.error().message, "ref"});
  }
  auto message = store::ReadMessage(source.store_dir, *entry);
  if (!message) return std::unexpected(QueryError{500, message.error().message, "ref"});
  auto decoded = snapshot::Decode(*message);
  if (!decoded) return std::unexpected(QueryError{500, decoded.error().message, "ref"});
  const auto type = params.Get("type");
  const std::vector<diff::SiteRow> all = diff::SiteRows(*decoded);
  json rows = json::array();
  for (const diff::SiteRow& r : all) {
    if (type && r.type != *type) continue;
    if (rows.size() >= top) break;
    json stack = json::array();
    for (const diff::SiteFrame& f : r.stack) {
      stack.push_back({{"file", f.file}, {"function", f.function}, {"line", f.line}});
    }
    rows.push_back({{"type", r.type},
                    {"bytes", r.bytes},
                    {"count", r.count},
                    {"stack", stack},
                    {"site", diff::DescribeSite(r.stack)}});
  }
  return json{{"sampled", !all.empty()}, {"sites", rows}};
}

}  // namespace tidemark::collector
