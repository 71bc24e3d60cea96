// A scheduled diff report: per agent and per service, how each type changed between the
// newest snapshot and the one nearest to a given age.
//
// Plain values. Thread-safety: none needed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "diff/type_diff.h"

namespace tidemark::diff {

struct ReportSection {
  std::string scope;  // "agent" or "service".
  std::string name;   // Agent key or service name.
  std::string service;
  int64_t from_ns = 0, to_ns = 0;  // Taken times of the two sides (service: the newest agent's).
  int64_t count_before = 0, count_after = 0, bytes_before = 0, bytes_after = 0;
  std::vector<TypeDelta> rows;  // Largest byte growth first, cut to the report's row limit.
};

struct Report {
  std::string id;        // "<schedule>-<created, UTC, yyyymmddThhmmssZ>".
  std::string schedule;  // Its name in the configuration.
  int64_t created_ns = 0;
  int64_t age_ns = 0;                   // Compared with the snapshot nearest to created - age.
  std::vector<ReportSection> sections;  // Services first, then agents.
};

}  // namespace tidemark::diff
