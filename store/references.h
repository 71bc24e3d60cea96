// References to stored snapshots and agents, as every tool names them: an agent as
// "SERVICE/HOST/PID@START" (snapshot::AgentName), "SERVICE/HOST/PID", "SERVICE/PID", "SERVICE"
// or its store id; a snapshot as AGENT:SEQ, AGENT:first, AGENT:last or AGENT@TIME (TIME a UTC
// time like 2026-11-26T03:00:00Z or a time ago like -30m); the CLI and the query API read both.
//
// Thread-safety: reentrant (they read the catalog given).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "snapshot/result.h"
#include "store/store.h"

namespace tidemark::store {

// A UTC time like 2026-11-26T03:00:00Z, or a time ago like -30m, -6h, -2d, in ns.
snapshot::Result<int64_t> ParseTime(const std::string& text, int64_t now_ns);

// Where a snapshot reference's agent part ends: at the last ':' followed by a seq, "first" or
// "last", or the last '@' followed by a time (ParseTime) — so that the colons of
// "web@2026-12-07T21:25:00Z" and the '@' of an agent named SERVICE/HOST/PID@START are read as
// parts of what they belong to. npos when there is neither.
size_t AgentPartEnd(const std::string& ref);

// The agent ids a name matches, newest instance first; kNotFound if none.
snapshot::Result<std::vector<uint32_t>> ResolveAgent(const Catalog& catalog,
                                                     const std::string& name);

// The index entry a snapshot reference names (of the newest instance the agent part matches).
snapshot::Result<IndexEntry> ResolveRef(const Catalog& catalog, const std::string& ref,
                                        int64_t now_ns);

}  // namespace tidemark::store
