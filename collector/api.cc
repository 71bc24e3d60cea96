#include "collector/api.h"

#include <map>
#include <nlohmann/json.hpp>

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

using Query = std::function<QueryResult(const std::string&, const QueryParams&, int64_t)>;

const std::map<std::string, Query>& Routes() {
  static const std::map<std::string, Query> routes = {
      {"services", [](auto& d, auto& p, int64_t) { return Services(d, p); }},
      {"agents", [](auto& d, auto& p, int64_t) { return Agents(d, p); }},
      {"snapshots", Snapshots},
      {"snapshot/types", SnapshotTypes},
      {"snapshot/diff", SnapshotDiff},
      {"series", Series},
      {"alerts", [](auto& d, auto& p, int64_t) { return Alerts(d, p); }},
      {"reports", [](auto& d, auto& p, int64_t) { return Reports(d, p); }},
  };
  return routes;
}

}  // namespace

Api::Api(std::string store_dir, ApiOptions options)
    : store_dir_(std::move(store_dir)), pool_(options.workers, options.max_queued) {}

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
  QueryResult result = route->second(store_dir_, *params, snapshot::WallNowNs());
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
  return out;
}

}  // namespace tidemark::collector
