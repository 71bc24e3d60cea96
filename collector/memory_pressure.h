// The memory-pressure alert of one snapshot an agent took for a crossed memory threshold
// (snapshot::MemoryFigures::crossed_pct): what the process is made of — its largest types —
// and, from a graph snapshot, what holds the largest (nearest dominators outside the type,
// analysis/holders.h) and where its live bytes were allocated (sampled sites, when present).
//
// Pure: decodes and analyses what it is given. Thread-safety: reentrant.
#pragma once

#include <string>
#include <vector>

#include "diff/detector.h"
#include "snapshot/snapshot.h"

namespace tidemark::collector {

struct MemorySnapshot {
  std::string agent;  // snapshot::AgentName(header.identity).
  snapshot::Header header;
  std::vector<snapshot::TypeStat> types;  // A summary's type table; empty for a graph.
  std::string message;                    // A graph's message as received; "" for a summary.
  std::string reference;                  // Where it is stored (AGENT:SEQ).
  std::string note;                       // Why it is not analysed further, if so.
};

inline constexpr size_t kMemoryAlertTypes = 5;  // Largest types listed.

// The alert (kind kMemory, id "memory/<service>/<host>/<pid>", firing state left to
// diff::Detector::RaiseMemory). Frees `s.message` once decoded.
diff::Alert MemoryPressureAlert(MemorySnapshot s);

}  // namespace tidemark::collector
