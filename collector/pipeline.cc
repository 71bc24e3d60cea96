#include "collector/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "analysis/dominators.h"
#include "analysis/graph_diff.h"
#include "analysis/heap_graph.h"
#include "collector/diagnosis.h"
#include "collector/growth_metrics.h"
#include "collector/memory_pressure.h"
#include "collector/reports.h"
#include "diff/json.h"
#include "diff/sites.h"
#include "snapshot/clock.h"
#include "snapshot/wire.h"
#include "store/store.h"

namespace tidemark::collector {
namespace {

constexpr int64_t kMsToNs = 1'000'000;

// A rule's tests and timing, from the configuration's units to the detector's.
template <typename Rule>
void CopyGrowthRule(const config::GrowthRule& from, Rule& to) {
  to.criteria.min_bytes_per_hour = static_cast<double>(from.min_rate);
  to.criteria.min_growth_bytes = static_cast<double>(from.min_growth);
  to.criteria.min_fit = from.min_fit;
  to.criteria.window_ns = from.window_ms * kMsToNs;
  to.for_ns = from.for_ms * kMsToNs;
  to.cooldown_ns = from.cooldown_ms * kMsToNs;
  to.resolve_after_ns = from.resolve_after_ms * kMsToNs;
}

}  // namespace

diff::DetectorConfig DetectorConfigOf(const config::Config& c) {
  diff::DetectorConfig d;
  d.rules.clear();
  for (const config::LeakRuleConfig& r : c.rules) {
    diff::LeakRule rule;
    rule.name = r.name;
    rule.services = r.services;
    rule.types = r.types;
    CopyGrowthRule(r, rule);
    d.rules.push_back(std::move(rule));
  }
  d.native.enabled = c.native.enabled;
  d.native.max_python_share = c.native.max_python_share;
  CopyGrowthRule(c.native, d.native);
  d.silence.enabled = c.silence.enabled;
  d.silence.intervals = c.silence.intervals;
  d.silence.min_silence_ns = c.silence.min_silence_ms * kMsToNs;
  d.silence.forget_after_ns = c.silence.forget_after_ms * kMsToNs;
  return d;
}

struct Pipeline::Job {
  std::optional<Investigator::GraphPair> graphs;   // A graph diff...
  std::optional<config::ScheduleConfig> schedule;  // ...or a report...
  std::optional<MemorySnapshot> memory;            // ...or a memory-pressure alert.
  int64_t created_ns = 0;
};

Pipeline::Pipeline(const config::Config& config, std::string store_dir, Notifier& notifier)
    : store_dir_(std::move(store_dir)),
      notifier_(notifier),
      config_(config),
      rolling_(config.growth_span_ms * kMsToNs, static_cast<size_t>(config.max_types_per_agent),
               static_cast<size_t>(config.growth_max_memory_bytes)),
      detector_(DetectorConfigOf(config)),
      investigator_(config.investigate) {}

Pipeline::~Pipeline() { Stop(); }

void Pipeline::SetGraphRequester(GraphRequester requester) {
  std::lock_guard lock(work_mutex_);
  requester_ = std::move(requester);
}

void Pipeline::Reconfigure(const config::Config& config) {
  {
    std::lock_guard lock(state_mutex_);
    config_ = config;
    detector_.Configure(DetectorConfigOf(config));
  }
  std::lock_guard lock(work_mutex_);
  investigator_.Configure(config.investigate);
  scheduler_.Reset();  // Next runs computed from now for the new schedules.
}

snapshot::Result<void> Pipeline::Start(int64_t now) {
  started_ns_ = now;
  // Alerts: what was firing fires on (its condition is checked again at the first pass).
  auto alerts = RecordJournal::Open(store_dir_ + "/alerts.jnl", "TDMA", now);
  if (!alerts) return std::unexpected(alerts.error());
  alerts_journal_ = std::move(*alerts);
  diff::AlertLog log = diff::ReplayAlertRecords(alerts_journal_->records());
  for (const diff::Alert& a : log.active) investigator_.Notified(a.id);
  const size_t restored = log.active.size();
  detector_.Restore(std::move(log.active));
  const size_t history = static_cast<size_t>(config_.alert_history);
  if (auto r = alerts_journal_->Append(
          "", history + restored,
          [history](const std::vector<std::string>& r) { return KeepAlerts(r, history); }, now);
      !r) {
    return std::unexpected(r.error());  // Compacts if the history grew past its bound.
  }
  auto reports = RecordJournal::Open(store_dir_ + "/reports.jnl", "TDMR", now);
  if (!reports) return std::unexpected(reports.error());
  reports_journal_ = std::move(*reports);

  // The rolling state from the series files: the span and a bucket of slack.
  const int64_t since = now - rolling_.span_ns() - 2 * rolling_.bucket_ns();
  auto agents = store::ReadAgents(store_dir_);
  auto points = store::ReadSeries(store_dir_, std::nullopt, since);
  size_t folded = 0;
  if (agents && points) {
    std::lock_guard lock(state_mutex_);
    std::vector<snapshot::TypeStat> types;
    for (const store::SeriesPoint& p : *points) {
      auto who = agents->find(p.agent);
      if (who == agents->end()) continue;
      if (p.goodbye) {  // Stopped: neither silent nor part of any rule.
        rolling_.Forget(snapshot::AgentName(who->second.identity));
        continue;
      }
      snapshot::Header h;
      h.identity = who->second.identity;
      h.timestamp_ns = p.timestamp_ns;
      h.rss_bytes = p.rss_bytes;
      types.clear();
      for (const store::TypePoint& t : p.types) {
        types.push_back({t.type, t.count, t.bytes, 0});
        h.bytes += t.bytes;
        h.objects += t.count;
      }
      // Silence counts from this start, not from before the daemon was down.
      folded +=
          rolling_.Fold(snapshot::AgentName(h.identity), h, types, std::max(p.timestamp_ns, now));
    }
  }
  spdlog::info(
      "growth: {} alerts restored, {} summaries of the last {} folded ({} agents, {} series)",
      restored, folded, diff::HumanSeconds(rolling_.span_ns() / 1e9), rolling_.agents().size(),
      rolling_.series());
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
  analysis_thread_ = std::thread([this] { RunAnalysis(); });
  return {};
}

void Pipeline::Stop() {
  {
    std::lock_guard lock(work_mutex_);
    stopping_ = true;
  }
  work_wake_.notify_all();
  jobs_wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (analysis_thread_.joinable()) analysis_thread_.join();
}

void Pipeline::OnSummary(const std::string& agent, const snapshot::Header& header,
                         const std::vector<snapshot::TypeStat>& types, int64_t received_ns) {
  {
    std::lock_guard lock(state_mutex_);
    rolling_.Fold(agent, header, types, received_ns);
    summaries_folded_.fetch_add(1, std::memory_order_relaxed);
  }
  if (header.memory.crossed_pct > 0) {
    QueueMemory({agent, header, types, "", agent + ":" + std::to_string(header.seq),
                 "a summary, not a graph: the agent had too little memory left for a graph walk"});
  }
}

void Pipeline::QueueMemory(MemorySnapshot s) {
  std::lock_guard lock(work_mutex_);
  if (!s.message.empty()) {
    const size_t waiting = std::count_if(jobs_.begin(), jobs_.end(), [](const auto& j) {
      return j->memory && !j->memory->message.empty();
    });
    if (waiting >= kMaxMemoryGraphsQueued) {
      std::string().swap(s.message);
      s.note = "not analysed: " + std::to_string(waiting) +
               " memory-pressure graphs were already waiting for analysis";
      memory_graphs_skipped_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  auto job = std::make_unique<Job>();
  job->memory = std::move(s);
  jobs_.push_back(std::move(job));
  jobs_wake_.notify_all();
}

void Pipeline::RaiseMemory(MemorySnapshot s, int64_t now) {
  diff::Alert alert = MemoryPressureAlert(std::move(s));
  bool fresh;
  {
    std::lock_guard lock(state_mutex_);
    fresh = detector_.RaiseMemory(alert, now);
    alert = detector_.active().at(alert.id);
  }
  memory_alerts_.fetch_add(1, std::memory_order_relaxed);
  Emit(alert, fresh ? "firing" : "updated", true);
}

void Pipeline::OnGoodbye(const std::string& agent, bool moved) {
  std::vector<diff::Alert> handed;
  {
    std::lock_guard lock(state_mutex_);
    rolling_.Forget(agent);
    if (moved) handed = detector_.HandOver(agent, snapshot::WallNowNs());
  }
  (moved ? moved_away_ : goodbyes_).fetch_add(1, std::memory_order_relaxed);
  for (const diff::Alert& alert : handed) {
    {
      std::lock_guard lock(work_mutex_);
      investigator_.Resolved(alert.id);  // Forgotten here: no refresh, no investigation.
    }
    Emit(alert, "handed-over", false);
  }
}

void Pipeline::OnGraph(const std::string& agent, const snapshot::Header& header,
                       std::string_view message, int64_t received_ns) {
  if (header.memory.crossed_pct > 0) {
    QueueMemory(
        {agent, header, {}, std::string(message), agent + ":" + std::to_string(header.seq), ""});
  }
  std::lock_guard lock(work_mutex_);
  for (Investigator::GraphPair& pair :
       investigator_.OnGraph(agent, header.timestamp_ns, agent + ":" + std::to_string(header.seq),
                             message, received_ns)) {
    auto job = std::make_unique<Job>();
    job->graphs = std::move(pair);
    jobs_.push_back(std::move(job));
    jobs_wake_.notify_all();
  }
}

Investigator::Ask Pipeline::AskFunction() {
  return [this](const Investigator::GraphRequest& r) {
    if (!requester_ || !requester_(r.agent, r.values)) return false;
    spdlog::info("asked agent {} for a {} graph snapshot ({})", r.agent,
                 r.second ? "second" : "first", r.alert_id);
    return true;
  };
}

void Pipeline::Run() {
  int64_t next_detect = 0;
  std::unique_lock lock(work_mutex_);
  while (!stopping_) {
    lock.unlock();
    const int64_t now = snapshot::WallNowNs();
    try {
      if (now >= next_detect) {
        Detect(now);
        int64_t interval;
        {
          std::lock_guard state(state_mutex_);
          interval = config_.detect_interval_ms * kMsToNs;
        }
        next_detect = now + interval;
      }
      Investigate(now);
      RunSchedules(now);
    } catch (const std::exception& e) {
      spdlog::error("growth pipeline: {}", e.what());  // Nothing may escape this thread.
    }
    lock.lock();
    // Investigations move on a scale of seconds: look at them at least twice a second.
    const int64_t wait = std::clamp<int64_t>(next_detect - snapshot::WallNowNs(), 0, 500 * kMsToNs);
    work_wake_.wait_for(lock, std::chrono::nanoseconds(wait));
  }
}

void Pipeline::Detect(int64_t now) {
  const auto start = std::chrono::steady_clock::now();
  diff::DetectorPass pass;
  std::set<std::string> active;
  std::vector<diff::Alert> firing;
  bool investigate;
  std::string view;
  {
    std::lock_guard lock(state_mutex_);
    pass = detector_.Evaluate(rolling_, now);
    for (const std::string& key : pass.forget) rolling_.Forget(key);
    for (const auto& [id, alert] : detector_.active()) {
      active.insert(id);
      if (alert.state == diff::AlertState::kFiring) firing.push_back(alert);
    }
    investigate = config_.investigate.enabled;
    view = RenderGrowthGauges(rolling_, detector_.active(), config_);
  }
  nlohmann::json notified = nlohmann::json::array();
  {
    std::lock_guard lock(work_mutex_);
    investigator_.Retain(active);
    for (const diff::Alert& alert : firing) {
      if (investigator_.WasNotified(alert.id)) notified.push_back(diff::ToJson(alert));
    }
  }
  notifier_.Refresh(notified);  // Alertmanager: what is still firing, before this pass's news.
  for (const diff::AlertEvent& e : pass.events) {
    const diff::Alert& alert = e.alert;
    switch (e.what) {
      case diff::AlertEvent::What::kPending:
        spdlog::info("alert pending: {}", alert.Summary());
        // An alert split off by cause is born knowing its holders: nothing to investigate.
        if (investigate && alert.kind == diff::AlertKind::kLeak && !alert.agents.empty() &&
            alert.holders.empty()) {
          std::lock_guard lock(work_mutex_);
          investigator_.Start(alert, now, AskFunction());
        }
        break;
      case diff::AlertEvent::What::kFiring: {
        bool held;
        {
          std::lock_guard lock(work_mutex_);
          held = investigator_.HoldFiring(alert);
        }
        if (!held) Emit(alert, "firing", true);
        break;
      }
      case diff::AlertEvent::What::kResolved: {
        bool was_notified;
        {
          std::lock_guard lock(work_mutex_);
          was_notified = investigator_.Resolved(alert.id);
        }
        Emit(alert, "resolved", was_notified);
        break;
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  detector_passes_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(view_mutex_);
  view_ = std::move(view) +
          "# HELP tidemark_detector_pass_seconds The last detector pass, wall time.\n"
          "# TYPE tidemark_detector_pass_seconds gauge\ntidemark_detector_pass_seconds " +
          std::to_string(seconds) + "\n";
}

void Pipeline::Investigate(int64_t now) {
  Investigator::Progress progress;
  {
    std::lock_guard lock(work_mutex_);
    progress = investigator_.Advance(
        now, AskFunction(),
        [this](const std::string& agent, const std::string& type, int64_t since) {
          std::lock_guard state(state_mutex_);  // Taken inside work_mutex_, never the other way.
          return GrewSince(agent, type, since);
        });
  }
  for (Investigator::Failure& f : progress.failed) {
    spdlog::warn("what holds {} is unknown: {}", f.alert_id, f.note);
    Diagnosis nothing;
    nothing.note = std::move(f.note);
    FinishInvestigation(f.alert_id, std::move(nothing), {}, now);
  }
  for (diff::Alert& alert : progress.release) {
    {
      std::lock_guard lock(state_mutex_);
      auto current = detector_.active().find(alert.id);
      if (current != detector_.active().end()) alert = current->second;
    }
    if (alert.holders.empty() && alert.note.empty()) {
      alert.note = "graph snapshots did not arrive in time to say what holds the growth";
    }
    Emit(alert, "firing", true);
  }
}

// REQUIRES: state_mutex_ held.
bool Pipeline::GrewSince(const std::string& agent, const std::string& type, int64_t since) const {
  const diff::RollingState::Agent* a = rolling_.Find(agent);
  const int64_t id = rolling_.names().Find(type);
  if (a == nullptr || id < 0) return false;
  const int64_t slot = a->SlotOf(static_cast<uint32_t>(id));
  if (slot < 0) return false;
  std::vector<diff::Sample> samples;
  rolling_.Samples(*a, static_cast<size_t>(slot), samples);
  for (const diff::Sample& s : samples) {
    if (s.t_ns >= since) return a->bytes_now(static_cast<size_t>(slot)) > s.bytes;
  }
  return false;
}

void Pipeline::FinishInvestigation(const std::string& alert_id, Diagnosis found,
                                   std::vector<std::string> graphs, int64_t now,
                                   std::vector<diff::Cause> causes) {
  std::optional<diff::Alert> alert;
  {
    std::lock_guard lock(state_mutex_);
    if (detector_.SetHolders(alert_id, found.type, std::move(found.holders), std::move(found.note),
                             std::move(graphs), std::move(found.site), now)) {
      // What holds each growing type: a type under another holder than this alert's becomes
      // an alert of its own.
      detector_.SetCauses(detector_.active().at(alert_id).service, std::move(causes), now);
      alert = detector_.active().at(alert_id);
    }
  }
  Investigator::Finished finished;
  {
    std::lock_guard lock(work_mutex_);
    finished = investigator_.Finish(alert_id);
  }
  if (!alert) return;
  if (finished.release) {
    Emit(*alert, "firing", true);
  } else if (finished.notified) {
    Emit(*alert, "updated", false);  // Stored, so `tidemark alerts` shows the holders.
  }
}

void Pipeline::RunAnalysis() {
  std::unique_lock lock(work_mutex_);
  while (true) {
    jobs_wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    std::unique_ptr<Job> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    try {
      if (job->schedule) {
        MakeReport(*job->schedule, job->created_ns);
      } else if (job->memory) {
        RaiseMemory(std::move(*job->memory), snapshot::WallNowNs());
      } else {
        DiffGraphs(std::move(*job->graphs), snapshot::WallNowNs());
      }
    } catch (const std::exception& e) {
      spdlog::error("analysis: {}", e.what());  // Nothing may escape this thread.
    }
    lock.lock();
  }
}

void Pipeline::MakeReport(const config::ScheduleConfig& s, int64_t created_ns) {
  auto report = BuildReport(store_dir_, s.name, created_ns, s.compare_age_ms * kMsToNs,
                            static_cast<size_t>(s.rows));
  if (!report) {
    spdlog::error("report {}: {}", s.name, report.error().message);
    return;
  }
  reports_made_.fetch_add(1, std::memory_order_relaxed);
  const nlohmann::json json = diff::ToJson(*report);
  size_t keep;
  {
    std::lock_guard lock(state_mutex_);
    keep = static_cast<size_t>(config_.report_history);
  }
  auto compact = [keep](const std::vector<std::string>& r) { return KeepNewest(r, keep); };
  if (auto r = reports_journal_->Append(diff::Dump(json), keep, compact, created_ns); !r) {
    spdlog::error("cannot write {}: {}", reports_journal_->path(), r.error().message);
  }
  notifier_.Notify({"report", "report", json, s.hooks});
  spdlog::info("report {}: {} sections (tidemark reports {})", report->id, report->sections.size(),
               report->id);
}

// Diffs an investigation's two graphs and attaches what holds its type's growth to the alert.
void Pipeline::DiffGraphs(Investigator::GraphPair pair, int64_t now) {
  // The allocation sites are read before the graph takes the snapshot over.
  auto load = [](std::string& message,
                 std::vector<diff::SiteRow>& sites) -> snapshot::Result<analysis::HeapGraph> {
    auto decoded = snapshot::Decode(message);
    std::string().swap(message);
    if (!decoded) return std::unexpected(decoded.error());
    sites = diff::SiteRows(*decoded);
    return analysis::HeapGraph::Load(std::move(*decoded));
  };
  std::vector<diff::SiteRow> first_sites, second_sites;
  auto first = load(pair.first, first_sites);
  auto second = load(pair.second, second_sites);
  Diagnosis found;
  std::vector<diff::Cause> causes;
  if (!first || !second) {
    found.note = "a graph snapshot did not load: " +
                 (first ? second.error().message : first.error().message);
  } else {
    second->BuildParents();
    const analysis::Dominators dominators = analysis::Dominators::Compute(*second);
    const analysis::GraphDiffResult r =
        analysis::DiffGraphs(*first, *second, dominators, {.groups = 20, .holders = 3});
    graph_diffs_.fetch_add(1, std::memory_order_relaxed);
    const bool capped = first->refs_capped() || second->refs_capped();
    found = Diagnose(r, pair.type, pair.grew, capped);
    found.site = diff::GrowthSiteLine(first_sites, second_sites,
                                      found.type.empty() ? pair.type : found.type);
    causes = Causes(r, pair.references, pair.grew, capped);
    for (diff::Cause& cause : causes) {
      cause.site = diff::GrowthSiteLine(
          first_sites, second_sites, cause.holders_type.empty() ? cause.type : cause.holders_type);
    }
    spdlog::info("{}: {}{}", pair.alert_id, found.note,
                 found.holders.empty() ? "" : "; held by " + found.holders.front().path);
  }
  FinishInvestigation(pair.alert_id, std::move(found), std::move(pair.references), now,
                      std::move(causes));
}

void Pipeline::RunSchedules(int64_t now) {
  std::vector<config::ScheduleConfig> schedules;
  {
    std::lock_guard lock(state_mutex_);
    schedules = config_.schedules;
  }
  std::lock_guard lock(work_mutex_);
  for (config::ScheduleConfig& s : scheduler_.Due(schedules, now, started_ns_)) {
    auto job = std::make_unique<Job>();
    job->schedule = std::move(s);
    job->created_ns = now;
    jobs_.push_back(std::move(job));
    jobs_wake_.notify_all();
  }
}

void Pipeline::Emit(const diff::Alert& alert, const std::string& event, bool notify) {
  if (event == "firing") {
    spdlog::warn("ALERT firing: {}", alert.Summary());
  } else if (event == "resolved" || event == "handed-over") {
    spdlog::info("alert {}: {} ({})", event, alert.id, alert.note);
  }
  size_t history, active;
  {
    std::lock_guard lock(state_mutex_);
    history = static_cast<size_t>(config_.alert_history);
    active = detector_.active().size();
  }
  // Compacted once it holds twice the active alerts and the history.
  auto compact = [history](const std::vector<std::string>& r) { return KeepAlerts(r, history); };
  if (auto r = alerts_journal_->Append(diff::AlertRecord(event, alert), history + active, compact,
                                       snapshot::WallNowNs());
      !r) {
    spdlog::error("cannot write {}: {}", alerts_journal_->path(), r.error().message);
  }
  if (!notify) return;
  if (event == "firing") {
    std::lock_guard lock(work_mutex_);
    investigator_.Notified(alert.id);
  }
  notifier_.Notify({"alert", event, diff::ToJson(alert), {}});
}

std::string Pipeline::ActiveAlertsJson() const {
  nlohmann::json out = nlohmann::json::array();
  std::lock_guard lock(state_mutex_);
  for (const auto& [id, alert] : detector_.active()) out.push_back(diff::ToJson(alert));
  return diff::Dump(out);
}

std::string Pipeline::RenderMetrics() const {
  PipelineCounters c;
  c.summaries_folded = summaries_folded_.load();
  c.detector_passes = detector_passes_.load();
  c.goodbyes = goodbyes_.load();
  c.moved_away = moved_away_.load();
  c.graph_diffs = graph_diffs_.load();
  c.reports_made = reports_made_.load();
  c.memory_alerts = memory_alerts_.load();
  c.memory_graphs_skipped = memory_graphs_skipped_.load();
  {
    std::lock_guard lock(work_mutex_);
    c.graph_requests = investigator_.requests();
    c.investigations_failed = investigator_.failures();
  }
  {
    std::lock_guard lock(state_mutex_);
    c.late_summaries = rolling_.late();
    c.untracked_types = rolling_.untracked();
    c.agents_evicted = rolling_.evicted();
    c.summaries_refused = rolling_.refused();
  }
  std::string out;
  {
    std::lock_guard lock(view_mutex_);
    out = view_;
  }
  return out + RenderPipelineCounters(c, notifier_.stats());
}

}  // namespace tidemark::collector
