// The query API's graph analyses (docs/api.md, "Graph analyses"): the largest retainers, an
// object's dominator subtree, who holds a type or an object (paths to roots), the graph diff
// of two snapshots with holders, and the allocation sites a graph carries. Graphs come from a
// GraphCache; one over the configured object limit is refused before it is loaded.
//
// Thread-safety: reentrant (the cache is thread-safe).
#pragma once

#include <cstdint>
#include <string>

#include "collector/api_queries.h"
#include "collector/graph_cache.h"
#include "collector/series_rollup.h"

namespace tidemark::collector {

struct GraphSource {
  const std::string& store_dir;
  GraphCache& cache;
  uint64_t max_objects;
  const SeriesRollup* rollup = nullptr;
  store::ListingCache* listing = nullptr;
};

QueryResult GraphRetained(const GraphSource& source, const QueryParams& params, int64_t now_ns);
QueryResult GraphDominated(const GraphSource& source, const QueryParams& params, int64_t now_ns);
QueryResult GraphWhy(const GraphSource& source, const QueryParams& params, int64_t now_ns);
QueryResult GraphDiff(const GraphSource& source, const QueryParams& params, int64_t now_ns);
QueryResult GraphSites(const GraphSource& source, const QueryParams& params, int64_t now_ns);

}  // namespace tidemark::collector
