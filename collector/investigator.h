// What holds a leak: the investigation of each pending leak alert, as a state machine.
//
// When a leak alert goes pending, the agent growing it most is asked for a graph snapshot,
// and for a second one once investigate.gap has passed since the first arrived and the
// agent's summaries show the type grew since (a leak in steps may pause between batches);
// if it has not grown within investigate.wait, the second is asked anyway and the pair says
// so. The two graphs are handed out
// as a GraphPair to be diffed elsewhere (the pipeline's analysis thread), which reports back
// with Finish(). An alert that fires meanwhile is held back so that its notification can name
// the holders, at most until investigate.wait after the investigation started. Requests are
// rate-limited per agent (investigate.min_interval between two investigations), and one not
// answered within investigate.wait is given up.
//
//   Start ──ask──▶ kAwaitFirst ──graph──▶ kAwaitSecond ──gap, ask──▶ (asked) ──graph──▶
//   kDiffing ──Finish──▶ kDone.      No connection, or no graph in time: kDone with a note.
//
// Pure: no thread, no clock (each call takes `now`), no I/O. Asking an agent goes through the
// Ask function passed to the calls that may ask.
// Thread-safety: none; the pipeline guards it with a mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "diff/detector.h"

namespace tidemark::collector {

class Investigator {
 public:
  // A graph snapshot to ask an agent for.
  struct GraphRequest {
    std::string agent, alert_id;
    bool second = false;  // The investigation's second graph.
    bool values = false;  // With short values (names dict keys in paths).
  };
  // Sends a graph request to an agent; false if it cannot (no open connection).
  using Ask = std::function<bool(const GraphRequest& request)>;
  // Whether the agent's summaries show `type` grew since since_ns (collector clock).
  using Grew =
      std::function<bool(const std::string& agent, const std::string& type, int64_t since_ns)>;

  // Two graph snapshots of one agent, to diff for what holds `type`.
  struct GraphPair {
    std::string alert_id, type, first, second;
    std::vector<std::string> references;  // Where each is stored: AGENT:SEQ, first then second.
    bool grew = true;                     // The summaries showed the type growing between the two.
  };
  // An investigation given up: what holds the alert's growth is unknown, and why.
  struct Failure {
    std::string alert_id, note;
  };
  struct Progress {
    std::vector<Failure> failed;
    std::vector<diff::Alert> release;  // Held firing alerts due now: notify them.
  };
  // What Finish() means for the alert's notification.
  struct Finished {
    bool release = false;   // It was held back: notify it now.
    bool notified = false;  // Its firing went out before: send an update.
  };

  explicit Investigator(config::InvestigateConfig settings) : settings_(settings) {}
  void Configure(config::InvestigateConfig settings) { settings_ = settings; }
  const config::InvestigateConfig& settings() const { return settings_; }

  // A leak alert went pending: investigate it, once.
  // REQUIRES: !alert.agents.empty().
  void Start(const diff::Alert& alert, int64_t now_ns, const Ask& ask);
  // A firing alert: true if its notification is held until its holders are known (released
  // by Finish() or Advance()), false if it goes out now.
  bool HoldFiring(const diff::Alert& alert);
  // Its firing notification went out.
  void Notified(const std::string& alert_id) { notified_.insert(alert_id); }
  bool WasNotified(const std::string& alert_id) const { return notified_.count(alert_id) > 0; }
  // Resolved: forgotten. True if its firing had been notified.
  bool Resolved(const std::string& alert_id);
  // Investigations of alerts no longer active are dropped.
  void Retain(const std::set<std::string>& active);
  // A graph snapshot from `agent`, taken at taken_ns and stored as `reference`: the pairs it
  // completes.
  std::vector<GraphPair> OnGraph(const std::string& agent, int64_t taken_ns,
                                 const std::string& reference, std::string_view message,
                                 int64_t received_ns);
  // Moves every investigation on: asks when due, gives up on silence, releases held alerts
  // whose wait is over.
  Progress Advance(int64_t now_ns, const Ask& ask, const Grew& grew);
  // The holders are known, or will not be: the investigation ends.
  Finished Finish(const std::string& alert_id);

  size_t investigations() const { return investigations_.size(); }
  uint64_t requests() const { return requests_; }
  uint64_t failures() const { return failures_; }

 private:
  enum class Stage { kAwaitFirst, kAwaitSecond, kDiffing, kDone };
  struct Investigation {
    std::string agent, type;
    Stage stage = Stage::kAwaitFirst;
    int64_t started_ns = 0;
    int64_t requested_ns = 0;  // 0: not asked (yet) at this stage.
    int64_t second_due_ns = 0, first_taken_ns = 0, first_received_ns = 0;
    bool grew = true;
    std::string first;  // The first graph, until the second arrives.
    std::string first_reference;
    std::string failure;  // Why it stopped, until Advance() reports it.
  };
  void Request(const std::string& alert_id, Investigation& inv, int64_t now, const Ask& ask);
  void GiveUp(Investigation& inv, std::string why);

  config::InvestigateConfig settings_;
  std::map<std::string, Investigation> investigations_;  // By alert id.
  std::map<std::string, int64_t> last_request_;          // By agent, within min_interval.
  std::map<std::string, diff::Alert> held_;              // Firing, waiting for holders.
  std::set<std::string> notified_;                       // Alert ids whose firing went out.
  uint64_t requests_ = 0, failures_ = 0;
};

}  // namespace tidemark::collector
