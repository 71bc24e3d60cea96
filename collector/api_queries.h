// What the query API answers (docs/api.md): JSON read from a store directory, the same data the
// CLI reads, named the same way (store/references.h). Each query reads what it needs and no
// more: listings read the catalog, series read only the series files since `from`.
//
// Pure (but for reading the store). Thread-safety: reentrant; the store may be written meanwhile.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "collector/series_rollup.h"
#include "snapshot/result.h"
#include "store/store.h"

namespace tidemark::collector {

// A query's parameters, decoded; errors name the parameter.
class QueryParams {
 public:
  // "a=1&b=x%2Fy" (the part after '?'). An undecodable escape is an error naming it.
  static snapshot::Result<QueryParams> Parse(const std::string& query);
  std::optional<std::string> Get(const std::string& name) const;
  snapshot::Result<std::string> Required(const std::string& name) const;
  snapshot::Result<int64_t> Integer(const std::string& name, int64_t fallback, int64_t min,
                                    int64_t max) const;
  // A time: RFC 3339 UTC ("2026-11-26T03:00:00Z"), a time ago ("-6h"), or "now".
  snapshot::Result<int64_t> Time(const std::string& name, int64_t fallback, int64_t now_ns) const;
  // A duration: "30s", "5m", "1h", "1d", or seconds.
  snapshot::Result<int64_t> Duration(const std::string& name, int64_t fallback_ns) const;
  bool Flag(const std::string& name) const;  // Present as 1 or true.
  // The first name not in `known`, if any.
  std::optional<std::string> Unknown(std::initializer_list<const char*> known) const;

 private:
  std::map<std::string, std::string> values_;
};

// The error a query failed with: the HTTP status, and the parameter when one was wrong.
struct QueryError {
  int status = 400;
  std::string message;
  std::string parameter;
};
using QueryResult = std::expected<nlohmann::json, QueryError>;

inline constexpr int64_t kMaxSeriesPoints = 2000;  // Steps one series query may return.

// Services and agents read the listing (`cache`: only what the index files gained since).
QueryResult Services(const std::string& store_dir, store::ListingCache& cache,
                     const QueryParams& params);
QueryResult Agents(const std::string& store_dir, store::ListingCache& cache,
                   const QueryParams& params);
// The snapshot queries read the entries of the agents they name (ListingCache::CatalogFor).
QueryResult Snapshots(const std::string& store_dir, store::ListingCache& cache,
                      const QueryParams& params, int64_t now_ns);
QueryResult SnapshotTypes(const std::string& store_dir, store::ListingCache& cache,
                          const QueryParams& params, int64_t now_ns);
QueryResult SnapshotDiff(const std::string& store_dir, store::ListingCache& cache,
                         const QueryParams& params, int64_t now_ns);
// A service's series from `rollup` when it holds the range (may be null), else from the files;
// an agent's from the records the rollup locates, else from the files.
QueryResult Series(const std::string& store_dir, const SeriesRollup* rollup,
                   const QueryParams& params, int64_t now_ns);
// The name ("SERVICE/HOST/PID@START") of the newest stored agent `name` matches (parameter
// `parameter` in errors).
std::expected<std::string, QueryError> AgentNamed(const std::string& store_dir,
                                                  store::ListingCache& cache,
                                                  const std::string& name,
                                                  const std::string& parameter);
QueryResult Alerts(const std::string& store_dir, const QueryParams& params);
QueryResult Reports(const std::string& store_dir, const QueryParams& params);

}  // namespace tidemark::collector
