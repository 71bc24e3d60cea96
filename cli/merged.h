// Several collectors read as one (`tidemark VERB --collector URL1,URL2,...`, for ls, growth and
// alerts): each collector's store is read through the query API (cli/remote_file_system.h) and
// the results merged. Agents are matched by name (SERVICE/HOST/PID@START), not by store id:
// an agent that moved from one collector to another (agent/endpoints.h) is one agent whose
// snapshots and series points come from both; a snapshot stored by two (sent again after a
// move) is listed once. An alert raised by several collectors is the one with the newest event.
//
// Thread-safety: reentrant.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/flags.h"
#include "diff/json.h"
#include "snapshot/result.h"
#include "store/store.h"

namespace tidemark::cli {

// The catalogs, merged: agents renumbered from 1 in name order, entries deduplicated by
// (agent, kind, seq). Problems carry the collector they come from.
snapshot::Result<store::Catalog> ReadMergedCatalog(const std::vector<Source>& sources);

// Agents (renumbered as in ReadMergedCatalog) and their series points since `since_ns`, each
// agent's in time order, a point stored twice kept once.
struct MergedSeries {
  std::map<uint32_t, store::AgentRecord> agents;
  std::vector<store::SeriesPoint> points;
};
snapshot::Result<MergedSeries> ReadMergedSeries(const std::vector<Source>& sources,
                                                int64_t since_ns);

// The alert journals, each replayed, then merged: per alert id the newest event decides
// whether it fires; resolved ones are all kept, oldest first.
snapshot::Result<diff::AlertLog> ReadMergedAlerts(const std::vector<Source>& sources);

}  // namespace tidemark::cli
