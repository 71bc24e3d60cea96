// The query API under /api/v1/ on tidemarkd's HTTP port (docs/api.md, and docs/openapi.json,
// which a test checks against what this serves). Read-only but for one request,
// POST agents/snapshot ("take a graph snapshot of this agent now"): enabled only with a token
// (the daemon checks it before Handle), at most one per agent per snapshot_interval (429 with
// Retry-After otherwise; the per-agent table is bounded). Every request runs on a
// bounded worker pool, never on the I/O thread: when `max_queued` requests already wait, one
// more is answered 503 at once (counted). Answers are JSON; errors are
// {"error": MESSAGE, "parameter": NAME} with 400 (a bad parameter, named), 404 (what was named
// does not exist), 405, 503 or 500.
//
// Thread-safety: Handle from the I/O thread; the reply is called from a worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "collector/graph_cache.h"
#include "collector/http_server.h"
#include "collector/rate_limiter.h"
#include "collector/series_rollup.h"
#include "collector/worker_pool.h"

namespace tidemark::collector {

struct ApiOptions {
  size_t workers = 2;
  size_t max_queued = 32;
  uint64_t graph_cache_bytes = uint64_t{512} << 20;
  uint64_t max_graph_objects = 20'000'000;
  bool writes_enabled = false;  // A token is configured.
  int64_t snapshot_interval_ns = int64_t{60} * 1'000'000'000;
  uint64_t series_memory_bytes = uint64_t{512} << 20;
  int64_t series_span_ns = int64_t{7} * 24 * 3600 * 1'000'000'000;
};

class Api {
 public:
  static constexpr char kPrefix[] = "/api/v1/";
  static constexpr char kSnapshotNow[] = "agents/snapshot";

  // Asks the agent named (snapshot::AgentName) for a graph snapshot; false if it has no open
  // connection to this collector.
  using GraphRequester = std::function<bool(const std::string& agent)>;

  Api(std::string store_dir, ApiOptions options);

  // REQUIRES: called before the first request.
  void SetGraphRequester(GraphRequester requester) { requester_ = std::move(requester); }

  // REQUIRES: the request's path starts with kPrefix.
  void Handle(const HttpRequest& request, HttpServer::Reply reply);

  // The series rollups: the store feeds them (store::StoreOptions::on_series), and they are
  // rebuilt from the files once the store is open (SeriesRollup::StartRebuild).
  SeriesRollup& rollup() { return rollup_; }

  // Once the store is open: rebuilds the rollups (their own thread) and reads the listing on a
  // worker, so that the first queries after a start do not pay for it.
  void Start(int64_t now_ns);

  // Prometheus text: requests answered, refused (pool full), failed.
  std::string RenderMetrics() const;

 private:
  HttpResponse Answer(const std::string& path, const std::string& query) const;
  HttpResponse SnapshotNow(const std::string& query);

  const std::string store_dir_;
  const ApiOptions options_;
  GraphRequester requester_;
  RateLimiter snapshot_limiter_;
  mutable GraphCache cache_;
  SeriesRollup rollup_;
  mutable store::ListingCache listing_;
  WorkerPool pool_;  // Last: its workers stop before what they use goes.
  mutable std::atomic<uint64_t> answered_{0}, errors_{0};
  std::atomic<uint64_t> snapshots_requested_{0};
};

}  // namespace tidemark::collector
