#include "collector/api.h"

#include <map>
#include <nlohmann/json.hpp>

#include "collector/api_graph_queries.h"
#include "collector/api_queries.h"
#include "snapshot/clock.h"

namespace tidemark::collector {
namespace {

using nlohmann::json;

HttpResponse Json(int status, const json& body) {
  return {status, "application/json", body.dump() + "\n"};
}

HttpResponse Error(const QueryError& e) {
  json body = {{"error", e.message}};
  if (!e.parameter.empty()) body["parameter"] = e.parameter;
  return Json(e.status, body);
}

using Query = std::function<QueryResult(const GraphSource&, const QueryParams&, int64_t)>;

const std::map<std::string, Query>& Routes() {
  static const std::map<std::string, Query> routes = {
      {"services", [](auto& s, auto& p, int64_t) { return Services(s.store_dir, p); }},
      {"agents", [](auto& s, auto& p, int64_t) { return Agents(s.store_dir, p); }},
      {"snapshots", [](auto& s, auto& p, int64_t t) { return Snapshots(s.store_dir, p, t); }},
      {"snapshot/types",
       [](auto& s, auto& p, int64_t t) { return SnapshotTypes(s.store_dir, p, t); }},
      {"snapshot/diff",
       [](auto& s, auto& p, int64_t t) { return SnapshotDiff(s.store_dir, p, t); }},
      {"series", [](auto& s, auto& p, int64_t t) { return Series(s.store_dir, p, t); }},
      {"alerts", [](auto& s, auto& p, int64_t) { return Alerts(s.store_dir, p); }},
      {"reports", [](auto& s, auto& p, int64_t) { return Reports(s.store_dir, p); }},
      {"graph/retained", GraphRetained},
      {"graph/dominated", GraphDominated},
      {"graph/why", GraphWhy},
      {"graph/diff", GraphDiff},
      {"sites", GraphSites},
  };
  return routes;
}

}  // namespace

Api::Api(std::string store_dir, ApiOptions options)
    : store_dir_(std::move(store_dir)),
      options_(options),
      cache_(options.graph_cache_bytes),
      pool_(options.workers, options.max_queued) {}

void Api::Handle(const HttpRequest& request, HttpServer::Reply reply) {
  if (request.method != "GET" && request.method != "HEAD") {
    reply(Error({405, "the query API is read-only: GET only", ""}));
    return;
  }
  const size_t q = request.target.find('?');
  std::string path = request.target.substr(0, q);
  std::string query = q == std::string::npos ? "" : request.target.substr(q + 1);
  auto job = [this, path = std::move(path), query = std::move(query), reply]() {
    HttpResponse answer;
    try {
      answer = Answer(path, query);
    } catch (const std::exception& e) {
      answer = Error({500, std::string("internal error: ") + e.what(), ""});
    }
    (answer.status < 400 ? answered_ : errors_).fetch_add(1, std::memory_order_relaxed);
    reply(std::move(answer));
  };
  if (!pool_.Submit(job)) {
    reply(Error(
        {503,
         "busy: " + std::to_string(pool_.max_queued()) + " queries are already waiting; try again",
         ""}));
  }
}

HttpResponse Api::Answer(const std::string& path, const std::string& query) const {
  const std::string name = path.substr(sizeof(kPrefix) - 1);
  auto route = Routes().find(name);
  if (route == Routes().end()) {
    std::string known;
    for (const auto& [n, q] : Routes())
      known += (known.empty() ? "" : ", ") + std::string(kPrefix) + n;
    return Error({404, "no endpoint " + path + " (endpoints: " + known + ")", ""});
  }
  auto params = QueryParams::Parse(query);
  if (!params) return Error({400, params.error().message, ""});
  const GraphSource source{store_dir_, cache_, options_.max_graph_objects};
  QueryResult result = route->second(source, *params, snapshot::WallNowNs());
  if (!result) return Error(result.error());
  return Json(200, *result);
}

std::string Api::RenderMetrics() const {
  std::string out;
  auto counter = [&out](const char* name, const char* help, uint64_t value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
           " " + std::to_string(value) + "\n";
  };
  counter("tidemark_api_requests_total", "Query API requests answered with data.",
          answered_.load());
  counter("tidemark_api_errors_total", "Query API requests answered with an error.",
          errors_.load());
  counter("tidemark_api_refused_total", "Query API requests refused: the worker queue was full.",
          pool_.refused());
  counter("tidemark_api_graph_cache_hits_total", "Graph queries answered from loaded graphs.",
          cache_.hits());
  counter("tidemark_api_graph_cache_misses_total", "Graph queries that loaded their graph.",
          cache_.misses());
  out +=
      "# HELP tidemark_api_graph_cache_bytes Loaded graphs kept for the query API.\n"
      "# TYPE tidemark_api_graph_cache_bytes gauge\ntidemark_api_graph_cache_bytes " +
      std::to_string(cache_.bytes()) + "\n";
  return out;
}

}  // namespace tidemark::collector
