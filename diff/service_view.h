// Per-service figures from the rolling state: what tidemarkd exports as per-type gauges.
//
// Each service sums its agents' newest figures; its types are ranked by bytes and the top K
// kept, plus any type asked for (the types under an alert), so that the number of series a
// scraper sees is bounded by K x services + alerts. Rates are summed least-squares rates of
// the agents over `window_ns`.
//
// Pure function over the state. Thread-safety: reads the state; the caller guards it.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "diff/rolling.h"

namespace tidemark::diff {

struct ServiceTypeRow {
  std::string type;
  double count = 0, bytes = 0, bytes_per_hour = 0;
};

struct ServiceRow {
  std::string service;
  size_t agents = 0;
  double rss_bytes = 0, heap_bytes = 0;
  std::vector<ServiceTypeRow> types;  // Largest first; the asked-for types after the top K.
};

struct ServiceViewOptions {
  size_t top_k = 20;
  size_t max_services = 200;  // The services with the most heap bytes.
  int64_t window_ns = kNsPerHour / 2;
  std::set<std::pair<std::string, std::string>> always;  // (service, type) pairs to include.
};

std::vector<ServiceRow> ServiceView(const RollingState& state, const ServiceViewOptions& options);

}  // namespace tidemark::diff
