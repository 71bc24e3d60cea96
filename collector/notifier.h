// Delivery of alerts and reports to the configured hooks (config::HookConfig).
//
// Each hook has its own thread and queue, so a slow or failing hook delays nobody else, and
// Notify() never blocks: it only queues. A failed attempt is retried after the hook's backoff,
// doubling up to kMaxBackoff, until max_attempts; then it is given up and counted. A queue
// holds at most kMaxQueued notifications; past that the oldest is dropped and counted.
//
// What a hook receives (docs/alerts.md documents every field):
//   webhook      POST url, Content-Type application/json, the document below
//   alertmanager POST <url>/api/v2/alerts, a JSON array of one Alertmanager v2 alert
//                (reports are not sent to Alertmanager: it has no place for them); a firing
//                alert is valid for the hook's alert_ttl (endsAt), and Refresh() posts every
//                firing alert again each resend_interval, as Prometheus does: Alertmanager
//                keeps a live alert firing, and lets one that no collector speaks for expire
//   command      the document on stdin; a non-zero exit or the timeout is a failed attempt
//   log          the document on one log line
// The document: {"version": 1, "kind": "alert"|"report", "event": "firing"|"resolved"|"report",
//                "alert": {...} | "report": {...}}.
//
// Thread-safety: thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "snapshot/result.h"

namespace tidemark::collector {

struct Notification {
  std::string kind;                // "alert" or "report".
  std::string event;               // "firing", "updated", "resolved", "report" or "refresh".
  nlohmann::json payload;          // diff::ToJson of the alert or report (refresh: an array).
  std::vector<std::string> hooks;  // Reports: these hooks only. Alerts: every hook taking them.

  nlohmann::json Document() const;
};

struct HookStats {
  std::string name;
  std::string kind;
  uint64_t delivered = 0, failed_attempts = 0, given_up = 0, dropped = 0;
  uint64_t superseded = 0;  // Refreshes not sent (again): an alert event came after them.
};

class Notifier {
 public:
  static constexpr size_t kMaxQueued = 1000;
  static constexpr int64_t kMaxBackoffMs = 300'000;

  explicit Notifier(const std::vector<config::HookConfig>& hooks);
  ~Notifier();  // Stops the threads; what is still queued is given up (logged).
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  void Notify(const Notification& notification);
  // The firing alerts (diff::ToJson each), for Alertmanager hooks whose resend_interval has
  // passed since their last refresh: one POST of them all, replacing a refresh still queued.
  // A refresh is never sent after an alert event notified later (it could fire again what was
  // just resolved): one still waiting then, or waiting to be retried, is dropped (superseded).
  void Refresh(const nlohmann::json& firing);
  std::vector<HookStats> stats() const;

 private:
  struct Hook;
  void Run(Hook& hook);
  std::vector<std::unique_ptr<Hook>> hooks_;
};

// One attempt at delivering to one hook; a failure (kIo) says what went wrong: the HTTP
// status, the connection, the command's exit. Blocks for at most the hook's timeout (plus
// name resolution).
snapshot::Result<void> Deliver(const config::HookConfig& hook, const Notification& notification);

// The Alertmanager v2 form of an alert (diff::ToJson's form in, one element of the array out);
// a firing one ends at valid_until_ns unless posted again.
nlohmann::json AlertmanagerAlert(const nlohmann::json& alert, const std::string& event,
                                 int64_t valid_until_ns);

}  // namespace tidemark::collector
