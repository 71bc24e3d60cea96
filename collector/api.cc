#include "collector/api.h"

#include <map>
#include <nlohmann/json.hpp>

#include "collector/api_graph_queries.h"
#include "collector/api_queries.h"
#include "collector/api_store_files.h"
#include "diff/json.h"
#include "snapshot/clock.h"

namespace tidemark::collector {
namespace {

using nlohmann::json;

HttpResponse Json(int status, const json& body) {
  return {status, "application/json", diff::Dump(body) + "\n"};
}

HttpResponse Error(const QueryError& e) {
  json body = {{"error", e.message}};
  if (!e.parameter.empty()) body["parameter"] = e.parameter;
  return Json(e.status, body);
}

using Query = std::function<QueryResult(const GraphSource&, const QueryParams&, int64_t)>;

const std::map<std::string, Query>& Routes() {
  static const std::map<std::string, Query> routes = {
      {"services", [](auto& s, auto& p, int64_t) { return Services(s.store_dir, *s.listing, p); }},
      {"agents", [](auto& s, auto& p, int64_t) { return Agents(s.store_dir, *s.listing, p); }},
      {"snapshots",
       [](auto& s, auto& p, int64_t t) { return Snapshots(s.store_dir, *s.listing, p, t); }},
      {"snapshot/types",
       [](auto& s, auto& p, int64_t t) { return SnapshotTypes(s.store_dir, *s.listing, p, t); }},
      {"snapshot/diff",
       [](auto& s, auto& p, int64_t t) { return SnapshotDiff(s.store_dir, *s.listing, p, t); }},
      {"series", [](auto& s, auto& p, int64_t t) { return Series(s.store_dir, s.rollup, p, t); }},
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
      snapshot_limiter_(options.snapshot_interval_ns, 10'000),
      cache_(options.graph_cache_bytes),
      rollup_(RollupOptions{.max_bytes = options.series_memory_bytes,
                            .horizon_ns = options.series_span_ns}),
      pool_(options.workers, options.max_queued) {}

void Api::Start(int64_t now_ns) {
  rollup_.StartRebuild(store_dir_, now_ns);
  (void)pool_.Submit([this] { (void)listing_.Read(store_dir_); });
}

void Api::Handle(const HttpRequest& request, HttpServer::Reply reply) {
  const size_t q = request.target.find('?');
  std::string path = request.target.substr(0, q);
  std::string query = q == std::string::npos ? "" : request.target.substr(q + 1);
  const bool write = request.method == "POST" && path == std::string(kPrefix) + kSnapshotNow;
  if (request.method != "GET" && request.method != "HEAD" && !write) {
    reply(Error({405,
                 "GET only, but for POST " + std::string(kPrefix) + kSnapshotNow +
                     " (a graph snapshot of an agent now)",
                 ""}));
    return;
  }
  auto job = [this, write, path = std::move(path), query = std::move(query), reply]() {
    HttpResponse answer;
    try {
      answer = write ? SnapshotNow(query) : Answer(path, query);
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

namespace {

using RawQuery =
    std::function<std::expected<HttpResponse, QueryError>(const std::string&, const QueryParams&)>;

// Answers that are not JSON documents of their own: the store's files (api_store_files.h).
const std::map<std::string, RawQuery>& RawRoutes() {
  static const std::map<std::string, RawQuery> routes = {{"store/file", StoreFile},
                                                         {"store/list", StoreList}};
  return routes;
}

}  // namespace

HttpResponse Api::Answer(const std::string& path, const std::string& query) const {
  const std::string name = path.substr(sizeof(kPrefix) - 1);
  auto route = Routes().find(name);
  auto raw = RawRoutes().find(name);
  if (route == Routes().end() && raw == RawRoutes().end()) {
    std::string known;
    for (const auto& [n, q] : Routes())
      known += (known.empty() ? "" : ", ") + std::string(kPrefix) + n;
    for (const auto& [n, q] : RawRoutes()) known += ", " + std::string(kPrefix) + n;
    return Error({404, "no endpoint " + path + " (endpoints: " + known + ")", ""});
  }
  auto params = QueryParams::Parse(query);
  if (!params) return Error({400, params.error().message, ""});
  if (raw != RawRoutes().end()) {
    auto answer = raw->second(store_dir_, *params);
    return answer ? std::move(*answer) : Error(answer.error());
  }
  const GraphSource source{store_dir_, cache_, options_.max_graph_objects, &rollup_, &listing_};
  QueryResult result = route->second(source, *params, snapshot::WallNowNs());
  if (!result) return Error(result.error());
  return Json(200, *result);
}

HttpResponse Api::SnapshotNow(const std::string& query) {
  if (!options_.writes_enabled) {
    return Error({403,
                  "taking snapshots needs a token: set http.token_file in tidemarkd's "
                  "configuration",
                  ""});
  }
  auto params = QueryParams::Parse(query);
  if (!params) return Error({400, params.error().message, ""});
  if (auto unknown = params->Unknown({"agent"})) {
    return Error({400, "unknown parameter '" + *unknown + "'", *unknown});
  }
  auto ref = params->Required("agent");
  if (!ref) return Error({400, ref.error().message, "agent"});
  auto agent = AgentNamed(store_dir_, listing_, *ref, "agent");
  if (!agent) return Error(agent.error());
  const int64_t now = snapshot::WallNowNs();
  if (auto wait = snapshot_limiter_.Acquire(*agent, now)) {
    const int64_t seconds = (*wait + 999'999'999) / 1'000'000'000;
    HttpResponse busy = Json(429, {{"error", "a snapshot of " + *agent +
                                                 " was asked for less than http.snapshot_interval "
                                                 "ago; try again in " +
                                                 std::to_string(seconds) + " s"},
                                   {"parameter", "agent"}});
    busy.headers.emplace_back("Retry-After", std::to_string(seconds));
    return busy;
  }
  if (!requester_ || !requester_(*agent)) {
    snapshot_limiter_.Release(*agent, now);  // Not asked: no interval used up.
    return Error({409, *agent + " has no open connection to this collector", "agent"});
  }
  ++snapshots_requested_;
  return Json(202, {{"agent", *agent}, {"requested", "graph"}});
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
  counter("tidemark_api_snapshots_requested_total",
          "Graph snapshots asked of agents through POST /api/v1/agents/snapshot.",
          snapshots_requested_.load());
  counter("tidemark_api_snapshot_table_overflows_total",
          "Snapshot requests refused because the per-agent rate table was full.",
          snapshot_limiter_.overflows());
  const RollupStats rollup = rollup_.stats();
  counter("tidemark_api_series_blocks_evicted_total",
          "Hours of a service's series rollup dropped for http.series_memory or http.series_span.",
          rollup.blocks_evicted);
  counter("tidemark_api_series_late_records_total",
          "Summaries older than their agent's latest when they reached the series rollup.",
          rollup.records_late);
  counter("tidemark_api_series_types_folded_total",
          "Type figures summed under one row: a service had more types than the rollup keeps.",
          rollup.types_folded);
  auto gauge = [&out](const char* name, const char* help, double value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name +
           " " + std::to_string(value) + "\n";
  };
  gauge("tidemark_api_series_rollup_bytes", "Memory of the series rollups.",
        static_cast<double>(rollup.bytes));
  gauge("tidemark_api_series_rollup_live",
        "1 once the series rollups are rebuilt from the files (series queries read no file).",
        rollup.live ? 1 : 0);
  gauge("tidemark_api_series_covered_from_seconds",
        "Unix time from which the series rollups hold every summary.",
        rollup.live ? static_cast<double>(rollup.covered_from_ns) / 1e9 : 0);
  out +=
      "# HELP tidemark_api_graph_cache_bytes Loaded graphs kept for the query API.\n"
      "# TYPE tidemark_api_graph_cache_bytes gauge\ntidemark_api_graph_cache_bytes " +
      std::to_string(cache_.bytes()) + "\n";
  return out;
}

}  // namespace tidemark::collector
