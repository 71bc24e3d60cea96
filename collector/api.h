// The read-only query API under /api/v1/ on tidemarkd's HTTP port (docs/api.md, and
// docs/openapi.json, which a test checks against what this serves). Every request runs on a
// bounded worker pool, never on the I/O thread: when `max_queued` requests already wait, one
// more is answered 503 at once (counted). Answers are JSON; errors are
// {"error": MESSAGE, "parameter": NAME} with 400 (a bad parameter, named), 404 (what was named
// does not exist), 405, 503 or 500.
//
// Thread-safety: Handle from the I/O thread; the reply is called from a worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "collector/graph_cache.h"
#include "collector/http_server.h"
#include "collector/worker_pool.h"

namespace tidemark::collector {

struct ApiOptions {
  size_t workers = 2;
  size_t max_queued = 32;
  uint64_t graph_cache_bytes = uint64_t{512} << 20;
  uint64_t max_graph_objects = 20'000'000;
};

class Api {
 public:
  static constexpr char kPrefix[] = "/api/v1/";

  Api(std::string store_dir, ApiOptions options);

  // REQUIRES: the request's path starts with kPrefix.
  void Handle(const HttpRequest& request, HttpServer::Reply reply);

  // Prometheus text: requests answered, refused (pool full), failed.
  std::string RenderMetrics() const;

 private:
  HttpResponse Answer(const std::string& path, const std::string& query) const;

  const std::string store_dir_;
  const ApiOptions options_;
  mutable GraphCache cache_;
  WorkerPool pool_;  // Last: its workers stop before what they use goes.
  mutable std::atomic<uint64_t> answered_{0}, errors_{0};
};

}  // namespace tidemark::collector
