// Allocation sites as people read them: a snapshot's sampled sites by type and stack, what
// grew between two snapshots by site, the one line an alert gives, and folded stacks for
// flame graphs. The estimates and how exact they are: docs/agent.md ("Allocation sites").
//
// Pure. Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "snapshot/snapshot.h"

namespace tidemark::diff {

struct SiteFrame {
  std::string file;
  std::string function;
  uint32_t line = 0;
  bool operator==(const SiteFrame&) const = default;
};

struct SiteRow {
  std::string type;              // "" for memory that is no Python object's own block.
  std::vector<SiteFrame> stack;  // Innermost frame first; empty: no Python code was running.
  uint64_t bytes = 0;            // Estimated live bytes allocated here.
  uint64_t count = 0;            // Estimated live allocations.
};

// The snapshot's sites, largest first (empty when the agent was not sampling).
std::vector<SiteRow> SiteRows(const snapshot::Snapshot& s);

// "myapp/auth.py:42 in login (called from myapp/views.py:88 in post)"; "(no Python stack)".
std::string DescribeSite(const std::vector<SiteFrame>& stack);

struct SiteDelta {
  std::string type;
  std::vector<SiteFrame> stack;
  uint64_t bytes_before = 0, bytes_after = 0;
  uint64_t count_before = 0, count_after = 0;
  int64_t bytes_delta() const {
    return static_cast<int64_t>(bytes_after) - static_cast<int64_t>(bytes_before);
  }
};

// Per (type, stack), from a to b, largest growth first.
std::vector<SiteDelta> DiffSites(const std::vector<SiteRow>& a, const std::vector<SiteRow>& b);

// Where `type`'s growth from a to b was allocated, for an alert: "92% of the new
// myapp.Session bytes were allocated at myapp/auth.py:42 in login (called from ...)". "" when
// no site of the type grew (no sampling, or too few samples).
std::string GrowthSiteLine(const std::vector<SiteRow>& a, const std::vector<SiteRow>& b,
                           const std::string& type);

// Where `type`'s live bytes in one snapshot were allocated: "64% of the live bytes objects
// were allocated at app.py:12 in fill (called from ...)"; "" when no site of the type.
std::string LiveSiteLine(const std::vector<SiteRow>& rows, const std::string& type);

// One line per row, "outermost;...;innermost;TYPE BYTES", as flamegraph.pl and speedscope
// read folded stacks. A frame reads "function (file:line)".
std::string FoldedSites(const std::vector<SiteRow>& rows);

}  // namespace tidemark::diff
