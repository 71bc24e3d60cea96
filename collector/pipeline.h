// The diff pipeline inside tidemarkd wires its parts: summaries fold into the rolling state
// (diff/rolling.h); the detector (diff/detector.h) runs every growth.detect_interval; its
// leak alerts are investigated (collector/investigator.h: graph snapshots asked of the agent,
// over its own connection through the requester the daemon installs, diffed here with
// analysis/graph_diff.h); alerts are journaled and sent to the hooks; scheduled reports
// (collector/schedules.h, collector/reports.h) are made and sent; /metrics gets the gauges of
// collector/growth_metrics.h.
//
// Alerts are journaled in <store>/alerts.jnl ({"event", "alert"} records: firing, resolved,
// updated) and restored at start; reports in <store>/reports.jnl (collector/record_journal.h).
// The rolling state is rebuilt from the store's series files at start.
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

#include "collector/diagnosis.h"
#include "collector/investigator.h"
#include "collector/memory_pressure.h"
#include "collector/notifier.h"
#include "collector/record_journal.h"
#include "collector/schedules.h"
#include "config/config.h"
#include "diff/detector.h"
#include "diff/report.h"
#include "diff/rolling.h"
#include "snapshot/result.h"
#include "snapshot/snapshot.h"

namespace tidemark::collector {

// The detector's settings from the configuration (config/ does not know diff/).
diff::DetectorConfig DetectorConfigOf(const config::Config& config);

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
  // The agent stopped (its goodbye): it is forgotten, so its silence is no alert. `moved`: it
  // went on at another collector; the alerts about it alone are handed over, not resolved.
  void OnGoodbye(const std::string& agent, bool moved);

  // Prometheus text: per-service per-type gauges, growth rates, alert states, own figures.
  std::string RenderMetrics() const;
  // Pending and firing alerts, as a JSON array (diff::ToJson).
  std::string ActiveAlertsJson() const;

 private:
  struct Job;
  void Run();
  void RunAnalysis();
  void Detect(int64_t now);
  void Investigate(int64_t now);
  void RunSchedules(int64_t now);
  void MakeReport(const config::ScheduleConfig& schedule, int64_t created_ns);
  void DiffGraphs(Investigator::GraphPair pair, int64_t now);
  void FinishInvestigation(const std::string& alert_id, Diagnosis found,
                           std::vector<std::string> graphs, int64_t now,
                           std::vector<diff::Cause> causes = {});
  void Emit(const diff::Alert& alert, const std::string& event, bool notify);
  // A snapshot taken for a memory threshold: analysed on the analysis thread. At most
  // kMaxMemoryGraphsQueued graphs wait; past that an alert is raised from the header alone.
  void QueueMemory(MemorySnapshot s);
  void RaiseMemory(MemorySnapshot s, int64_t now);
  static constexpr size_t kMaxMemoryGraphsQueued = 4;
  // REQUIRES: work_mutex_ held.
  Investigator::Ask AskFunction();
  bool GrewSince(const std::string& agent, const std::string& type, int64_t since_ns) const;

  const std::string store_dir_;
  Notifier& notifier_;

  mutable std::mutex state_mutex_;  // The settings, the rolling state and the detector.
  config::Config config_;
  diff::RollingState rolling_;
  diff::Detector detector_;
  int64_t started_ns_ = 0;

  // The pipeline thread's, and OnGraph's: guarded by work_mutex_.
  mutable std::mutex work_mutex_;
  std::condition_variable work_wake_;
  bool stopping_ = false;
  Investigator investigator_;
  Scheduler scheduler_;
  GraphRequester requester_;
  std::deque<std::unique_ptr<Job>> jobs_;  // For the analysis thread.
  std::condition_variable jobs_wake_;

  std::unique_ptr<RecordJournal> alerts_journal_, reports_journal_;

  // What /metrics shows of the rolling state and the alerts, made by each detector pass.
  mutable std::mutex view_mutex_;
  std::string view_;

  std::atomic<uint64_t> graph_diffs_{0}, reports_made_{0}, summaries_folded_{0}, goodbyes_{0},
      moved_away_{0};
  std::atomic<uint64_t> detector_passes_{0};
  std::atomic<uint64_t> memory_alerts_{0}, memory_graphs_skipped_{0};

  std::thread thread_;
  std::thread analysis_thread_;
};

}  // namespace tidemark::collector
