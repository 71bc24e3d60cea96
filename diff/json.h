// JSON forms of alerts and reports: what hooks receive, what the collector stores and what
// `tidemark alerts|reports --json` prints. docs/alerts.md documents every field.
//
// Thread-safety: reentrant functions over values.
#pragma once

#include <expected>
#include <nlohmann/json.hpp>
#include <string>

#include "diff/detector.h"
#include "diff/report.h"

namespace tidemark::diff {

// The text of `j`, any byte that is not UTF-8 (a name from outside) written as U+FFFD: never
// throws. Every JSON answer, record and --json output goes through it.
std::string Dump(const nlohmann::json& j, int indent = -1);

// Times as RFC 3339 UTC strings ("2026-11-26T03:00:00.000Z"), plus *_ns integers.
std::string Rfc3339(int64_t ns);

nlohmann::json ToJson(const Alert& alert);
std::expected<Alert, std::string> AlertFromJson(const nlohmann::json& json);

// The alert journal (<store>/alerts.jnl): one record per change, {"event": "firing" |
// "resolved" | "updated" | "handed-over", "alert": {...}}; handed over (its agents moved to
// another collector) ends it here as resolved does, with its note saying so.
std::string AlertRecord(const std::string& event, const Alert& alert);
struct AlertLog {
  std::vector<Alert> active;   // Firing, newest record of each, oldest first.
  std::vector<Alert> history;  // Resolved or handed over, oldest first.
  size_t unreadable = 0;       // Records that are not alerts (skipped).
};
AlertLog ReplayAlertRecords(const std::vector<std::string>& records);

nlohmann::json ToJson(const Report& report);
std::expected<Report, std::string> ReportFromJson(const nlohmann::json& json);

}  // namespace tidemark::diff
