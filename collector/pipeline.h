// The diff pipeline inside tidemarkd: summaries fold into the rolling state (diff/rolling.h),
// the detector (diff/detector.h) runs every growth.detect_interval, and its alerts are
// investigated, stored and sent to the hooks.
//
// What holds the leak: when a leak alert goes pending, the pipeline asks the agent that grows
// most for a graph snapshot (over its own connection, through the requester the daemon
// installs), and for a second one investigate.gap after the first arrived. A thread of its
// own diffs the two graphs (analysis/graph_diff.h) and attaches the holders of the alert's type
// to the alert. A firing notification waits for that, at most until investigate.wait after
// the request; then it goes out with what is known. Graph requests are rate-limited per agent
// (investigate.min_interval), and the agent has a limit of its own.
//
// Alerts are journaled in <store>/alerts.jnl ({"event", "alert"} records: firing, resolved,
// updated) and restored at start; reports in <store>/reports.jnl. The rolling state is rebuilt
// from the store's series files at start.
//
// Thread-safety: OnSummary/OnGraph from any thread (validation threads); the rest from the
// daemon's thread. One pipeline thread runs the detector, schedules and investigations; one
// analysis thread runs graph diffs and reports.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "collector/notifier.h"
#include "config/config.h"
#include "diff/detector.h"
#include "diff/report.h"
#include "diff/rolling.h"
#include "snapshot/result.h"
#include "snapshot/snapshot.h"
#include "store/journal.h"

namespace tidemark::collector {

// When a schedule runs next after `after_ns`: `every` after it, or the next `at` local time
// strictly after it (mktime: daylight-saving changes are the C library's).
int64_t NextScheduledRun(const config::ScheduleConfig& schedule, int64_t after_ns);

// The detector's settings from the configuration (config/ does not know diff/).
diff::DetectorConfig DetectorConfigOf(const config::Config& config);

// Builds a scheduled report from a store: each agent's newest summary against its summary
// nearest to created - age, and the same summed per service. Agents whose newest summary is
// older than `age` are left out.
snapshot::Result<diff::Report> BuildReport(const std::string& store_dir,
                                           const std::string& schedule, int64_t created_ns,
                                           int64_t age_ns, size_t rows);

class Pipeline {
 public:
  // Sends a graph request to an agent; false if the agent has no known connection.
  using GraphRequester = std::function<bool(const std::string& agent_key, bool values)>;

  Pipeline(const config::Config& config, std::string store_dir, Notifier& notifier);
  ~Pipeline();  // Stop().
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Restores alerts and the rolling state from the store, then starts the threads.
  snapshot::Result<void> Start(int64_t now_ns);
  void Stop();
  // Rules, native, silence, investigate, schedules, metrics sizes: applied at the next pass.
  void Reconfigure(const config::Config& config);
  void SetGraphRequester(GraphRequester requester);

  // `agent` is snapshot::AgentName(header.identity), which the caller has at hand.
  void OnSummary(const std::string& agent, const snapshot::Header& header,
                 const std::vector<snapshot::TypeStat>& types, int64_t received_ns);
  void OnGraph(const std::string& agent, const snapshot::Header& header, std::string_view message,
               int64_t received_ns);
  // The agent stopped (its goodbye): it is forgotten, so its silence is no alert.
  void OnGoodbye(const std::string& agent);

  // Prometheus text: per-service per-type gauges, growth rates, alert states, own figures.
  std::string RenderMetrics() const;
  // Pending and firing alerts, as a JSON array (diff::ToJson).
  std::string ActiveAlertsJson() const;

 private:
  struct Investigation;
  struct Job;
  void Run();
  void RunAnalysis();
  void Detect(int64_t now);
  void Investigate(int64_t now);
  void RunSchedules(int64_t now);
  void StartInvestigation(const diff::Alert& alert, int64_t now);
  bool RequestGraph(Investigation& inv, int64_t now);
  void FinishInvestigation(const std::string& alert_id, std::vector<diff::HeldBy> holders,
                           std::string holders_type, std::string note, int64_t now);
  void Emit(const diff::Alert& alert, const std::string& event, bool notify);
  void Journal(store::Journal* journal, const std::string& record, size_t keep_hint);
  void ComputeView();

  const std::string store_dir_;
  Notifier& notifier_;

  // Settings; guarded by state_mutex_.
  config::Config config_;

  mutable std::mutex state_mutex_;  // The rolling state and the detector.
  diff::RollingState rolling_;
  diff::Detector detector_;
  int64_t started_ns_ = 0;

  // The pipeline thread's, and OnGraph's: guarded by work_mutex_.
  std::mutex work_mutex_;
  config::InvestigateConfig investigate_;
  std::condition_variable work_wake_;
  bool stopping_ = false;
  std::map<std::string, std::unique_ptr<Investigation>> investigations_;  // By alert id.
  std::map<std::string, int64_t> last_graph_request_;                     // By agent key.
  std::map<std::string, diff::Alert> deferred_;  // Firing, waiting for holders.
  std::map<std::string, bool> notified_firing_;  // Alert ids whose firing went out.
  std::deque<std::unique_ptr<Job>> jobs_;        // For the analysis thread.
  std::condition_variable jobs_wake_;
  GraphRequester requester_;
  std::map<std::string, int64_t> next_report_ns_;  // By schedule name.

  std::mutex journal_mutex_;
  std::unique_ptr<store::Journal> alerts_journal_;
  std::unique_ptr<store::Journal> reports_journal_;
  std::vector<std::string> alert_records_;  // What alerts.jnl holds, for compaction.
  std::vector<std::string> report_records_;

  // What /metrics shows, made by each detector pass.
  mutable std::mutex view_mutex_;
  std::string view_;

  std::atomic<uint64_t> graph_requests_{0}, graph_diffs_{0}, investigations_failed_{0};
  std::atomic<uint64_t> reports_made_{0}, summaries_folded_{0}, goodbyes_{0};
  std::atomic<uint64_t> detector_passes_{0};

  std::thread thread_;
  std::thread analysis_thread_;
};

}  // namespace tidemark::collector
