// What /metrics shows of the growth pipeline, as Prometheus text: the per-service and per-type
// gauges, the alerts by state, and the pipeline's own counters.
//
// Pure functions of what they are given. Thread-safety: reentrant; the caller holds whatever
// guards the rolling state and the alerts while they run.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "collector/notifier.h"
#include "config/config.h"
#include "diff/detector.h"
#include "diff/rolling.h"

namespace tidemark::collector {

// The gauges a detector pass leaves: agents, RSS and heap per service; bytes, objects and
// growth rate of the top types per service (metrics.top_k, always the types of leak alerts);
// one series per active alert and the count by state; the rolling state's size.
std::string RenderGrowthGauges(const diff::RollingState& rolling,
                               const std::map<std::string, diff::Alert>& active,
                               const config::Config& config);

// The pipeline's counters since the daemon started.
struct PipelineCounters {
  uint64_t summaries_folded = 0, detector_passes = 0, goodbyes = 0, moved_away = 0;
  uint64_t graph_requests = 0, graph_diffs = 0, investigations_failed = 0;
  uint64_t reports_made = 0;
  uint64_t memory_alerts = 0, memory_graphs_skipped = 0;
  // The rolling state's.
  uint64_t late_summaries = 0, untracked_types = 0, agents_evicted = 0, summaries_refused = 0;
};
std::string RenderPipelineCounters(const PipelineCounters& counters,
                                   const std::vector<HookStats>& hooks);

}  // namespace tidemark::collector
