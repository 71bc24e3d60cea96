// Scheduled reports: how each type changed, per agent and per service, between the newest
// summary and the one nearest to a given age, built from a store.
//
// Thread-safety: reentrant; reads the store as any reader does (store/store.h).
#pragma once

#include <cstdint>
#include <string>

#include "diff/report.h"
#include "snapshot/result.h"

namespace tidemark::collector {

// Each agent's newest summary at or before created_ns against its summary nearest to
// created - age, and the same summed per service; at most `rows` rows per section. Agents
// whose newest summary is older than `age` are left out.
snapshot::Result<diff::Report> BuildReport(const std::string& store_dir,
                                           const std::string& schedule, int64_t created_ns,
                                           int64_t age_ns, size_t rows);

}  // namespace tidemark::collector
