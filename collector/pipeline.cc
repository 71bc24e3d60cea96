#include "collector/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <sstream>
#include <unordered_map>

#include "analysis/dominators.h"
#include "analysis/graph_diff.h"
#include "analysis/heap_graph.h"
#include "collector/clock.h"
#include "collector/metrics.h"
#include "diff/json.h"
#include "diff/service_view.h"
#include "diff/type_diff.h"
#include "snapshot/wire.h"
#include "store/store.h"

namespace tidemark::collector {
namespace {

constexpr int64_t kMsToNs = 1'000'000;
constexpr int64_t kSecondNs = 1'000'000'000;

std::string Seconds(int64_t ns) {
  std::ostringstream out;
  out.precision(3);
  out << static_cast<double>(ns) / kSecondNs << " s";
  return out.str();
}

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

snapshot::Result<diff::Report> BuildReport(const std::string& store_dir,
                                           const std::string& schedule, int64_t created_ns,
                                           int64_t age_ns, size_t rows) {
  auto catalog = store::ReadCatalog(store_dir);
  if (!catalog) return std::unexpected(catalog.error());
  std::map<uint32_t, std::vector<const store::IndexEntry*>> by_agent;
  for (const store::IndexEntry& e : catalog->entries) {
    if (e.kind == snapshot::Kind::kSummary && e.timestamp_ns <= created_ns) {
      by_agent[e.agent].push_back(&e);
    }
  }
  auto types_of =
      [&](const store::IndexEntry& e) -> snapshot::Result<std::vector<snapshot::TypeStat>> {
    auto message = store::ReadMessage(store_dir, e);
    if (!message) return std::unexpected(message.error());
    auto decoded = snapshot::Decode(*message);
    if (!decoded) return std::unexpected(decoded.error());
    return std::move(decoded->types);
  };
  auto totals = [](const std::vector<snapshot::TypeStat>& t, int64_t& count, int64_t& bytes) {
    for (const auto& s : t) {
      count += static_cast<int64_t>(s.count);
      bytes += static_cast<int64_t>(s.bytes);
    }
  };
  struct ServiceSums {
    std::map<std::string, snapshot::TypeStat> before, after;
    int64_t from = INT64_MAX, to = 0;
  };
  std::map<std::string, ServiceSums> services;
  diff::Report report;
  std::vector<diff::ReportSection> agent_sections;
  for (auto& [agent, entries] : by_agent) {
    std::sort(entries.begin(), entries.end(),
              [](auto* a, auto* b) { return a->timestamp_ns < b->timestamp_ns; });
    const store::IndexEntry& newest = *entries.back();
    if (created_ns - newest.timestamp_ns > age_ns || entries.size() < 2) continue;
    const int64_t target = created_ns - age_ns;
    const store::IndexEntry* nearest = entries.front();
    for (const store::IndexEntry* e : entries) {
      if (std::llabs(e->timestamp_ns - target) < std::llabs(nearest->timestamp_ns - target)) {
        nearest = e;
      }
    }
    if (nearest == &newest) continue;
    auto before = types_of(*nearest);
    auto after = types_of(newest);
    if (!before || !after) continue;  // Removed by retention meanwhile: skip the agent.
    const auto found = catalog->agents.find(agent);
    if (found == catalog->agents.end()) continue;
    const snapshot::Identity& who = found->second.identity;
    diff::ReportSection section;
    section.scope = "agent";
    section.name = snapshot::AgentName(who);
    section.service = who.service;
    section.from_ns = nearest->timestamp_ns;
    section.to_ns = newest.timestamp_ns;
    totals(*before, section.count_before, section.bytes_before);
    totals(*after, section.count_after, section.bytes_after);
    section.rows = diff::DiffTypes(*before, *after);
    ServiceSums& sums = services[who.service];
    for (const auto& [side, table] :
         {std::pair{&sums.before, &*before}, std::pair{&sums.after, &*after}}) {
      for (const snapshot::TypeStat& t : *table) {
        snapshot::TypeStat& s = (*side)[t.name];
        s.name = t.name;
        s.count += t.count;
        s.bytes += t.bytes;
      }
    }
    sums.from = std::min(sums.from, section.from_ns);
    sums.to = std::max(sums.to, section.to_ns);
    if (section.rows.size() > rows) section.rows.resize(rows);
    agent_sections.push_back(std::move(section));
  }
  for (auto& [service, sums] : services) {
    std::vector<snapshot::TypeStat> before, after;
    for (auto& [name, t] : sums.before) before.push_back(t);
    for (auto& [name, t] : sums.after) after.push_back(t);
    diff::ReportSection section;
    section.scope = "service";
    section.name = service;
    section.service = service;
    section.from_ns = sums.from;
    section.to_ns = sums.to;
    totals(before, section.count_before, section.bytes_before);
    totals(after, section.count_after, section.bytes_after);
    section.rows = diff::DiffTypes(before, after);
    if (section.rows.size() > rows) section.rows.resize(rows);
    report.sections.push_back(std::move(section));
  }
  for (auto& s : agent_sections) report.sections.push_back(std::move(s));
  report.schedule = schedule;
  report.created_ns = created_ns;
  report.age_ns = age_ns;
  std::string stamp = diff::Rfc3339(created_ns);  // 2026-11-26T03:00:00.000Z
  stamp.erase(
      std::remove_if(stamp.begin(), stamp.end(), [](char c) { return c == '-' || c == ':'; }),
      stamp.end());
  report.id = schedule + "-" + stamp.substr(0, 15) + "Z";
  return report;
}

struct Pipeline::Investigation {
  enum class Stage { kWaitingToAsk, kAwaitFirst, kAwaitSecond, kDiffing, kDone };
  std::string alert_id, agent_key, type;
  Stage stage = Stage::kWaitingToAsk;
  int64_t started_ns = 0, requested_ns = 0, second_due_ns = 0, first_taken_ns = 0;
  std::string first;    // The first graph's message, until the second arrives.
  std::string failure;  // Why it stopped, until Investigate() reports it.
};

struct Pipeline::Job {
  std::string alert_id, type, first, second;       // A graph diff...
  std::optional<config::ScheduleConfig> schedule;  // ...or a report.
  int64_t created_ns = 0;
};

Pipeline::Pipeline(const config::Config& config, std::string store_dir, Notifier& notifier)
    : store_dir_(std::move(store_dir)),
      notifier_(notifier),
      config_(config),
      rolling_(config.growth_span_ms * kMsToNs, static_cast<size_t>(config.max_types_per_agent),
               static_cast<size_t>(config.growth_max_memory_bytes)),
      detector_(DetectorConfigOf(config)),
      investigate_(config.investigate) {}

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
  investigate_ = config.investigate;
  next_report_ns_.clear();  // Recomputed from now for the new schedules.
}

snapshot::Result<void> Pipeline::Start(int64_t now) {
  started_ns_ = now;
  // Alerts: what was firing fires on (its condition is checked again at the first pass).
  std::vector<std::string> records;
  auto journal = store::Journal::Open(store_dir_ + "/alerts.jnl", "TDMA", now, &records);
  if (!journal) return std::unexpected(journal.error());
  alerts_journal_ = std::move(*journal);
  diff::AlertLog log = diff::ReplayAlertRecords(records);
  for (const diff::Alert& a : log.active) notified_firing_[a.id] = true;
  alert_records_ = std::move(records);
  const size_t restored = log.active.size();
  detector_.Restore(std::move(log.active));
  Journal(alerts_journal_.get(), "", 0);  // Compacts if the history grew past its bound.

  auto reports = store::Journal::Open(store_dir_ + "/reports.jnl", "TDMR", now, &report_records_);
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
      restored, folded, Seconds(rolling_.span_ns()), rolling_.agents().size(), rolling_.series());
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
  std::lock_guard lock(state_mutex_);
  rolling_.Fold(agent, header, types, received_ns);
  summaries_folded_.fetch_add(1, std::memory_order_relaxed);
}

void Pipeline::OnGoodbye(const std::string& agent) {
  std::lock_guard lock(state_mutex_);
  rolling_.Forget(agent);
  goodbyes_.fetch_add(1, std::memory_order_relaxed);
}

void Pipeline::OnGraph(const std::string& agent, const snapshot::Header& header,
                       std::string_view message, int64_t received_ns) {
  std::lock_guard lock(work_mutex_);
  bool queued = false;
  for (auto& [id, inv] : investigations_) {
    if (inv->agent_key != agent) continue;
    if (inv->stage == Investigation::Stage::kAwaitFirst) {
      inv->first = std::string(message);
      inv->first_taken_ns = header.timestamp_ns;
      inv->stage = Investigation::Stage::kAwaitSecond;
      inv->requested_ns = 0;
      inv->second_due_ns = received_ns + investigate_.gap_ms * kMsToNs;
    } else if (inv->stage == Investigation::Stage::kAwaitSecond && inv->requested_ns > 0 &&
               header.timestamp_ns > inv->first_taken_ns) {
      inv->stage = Investigation::Stage::kDiffing;
      auto job = std::make_unique<Job>();
      job->alert_id = id;
      job->type = inv->type;
      job->first = std::move(inv->first);
      job->second = std::string(message);
      jobs_.push_back(std::move(job));
      queued = true;
    }
  }
  if (queued) jobs_wake_.notify_all();
}

void Pipeline::Run() {
  int64_t next_detect = 0;
  std::unique_lock lock(work_mutex_);
  while (!stopping_) {
    lock.unlock();
    const int64_t now = WallNowNs();
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
    const int64_t wait = std::clamp<int64_t>(next_detect - WallNowNs(), 0, 500 * kMsToNs);
    work_wake_.wait_for(lock, std::chrono::nanoseconds(wait));
  }
}

void Pipeline::Detect(int64_t now) {
  const auto start = std::chrono::steady_clock::now();
  diff::DetectorPass pass;
  std::set<std::string> active;
  bool investigate;
  {
    std::lock_guard lock(state_mutex_);
    pass = detector_.Evaluate(rolling_, now);
    for (const std::string& key : pass.forget) rolling_.Forget(key);
    for (const auto& [id, alert] : detector_.active()) active.insert(id);
    investigate = config_.investigate.enabled;
    ComputeView();
  }
  {
    std::lock_guard lock(work_mutex_);
    std::erase_if(investigations_, [&](const auto& e) { return !active.count(e.first); });
  }
  for (const diff::AlertEvent& e : pass.events) {
    const diff::Alert& alert = e.alert;
    switch (e.what) {
      case diff::AlertEvent::What::kPending:
        spdlog::info("alert pending: {}", alert.Summary());
        if (investigate && alert.kind == diff::AlertKind::kLeak && !alert.agents.empty()) {
          StartInvestigation(alert, now);
        }
        break;
      case diff::AlertEvent::What::kFiring: {
        bool wait_for_holders = false;
        {
          std::lock_guard lock(work_mutex_);
          auto inv = investigations_.find(alert.id);
          if (inv != investigations_.end() && inv->second->stage != Investigation::Stage::kDone) {
            deferred_[alert.id] = alert;
            wait_for_holders = true;
          }
        }
        if (!wait_for_holders) Emit(alert, "firing", true);
        break;
      }
      case diff::AlertEvent::What::kResolved: {
        bool was_notified;
        {
          std::lock_guard lock(work_mutex_);
          investigations_.erase(alert.id);
          deferred_.erase(alert.id);
          was_notified = notified_firing_.erase(alert.id) > 0;
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
  view_ +=
      "# HELP tidemark_detector_pass_seconds The last detector pass, wall time.\n"
      "# TYPE tidemark_detector_pass_seconds gauge\ntidemark_detector_pass_seconds " +
      std::to_string(seconds) + "\n";
}

void Pipeline::StartInvestigation(const diff::Alert& alert, int64_t now) {
  std::lock_guard lock(work_mutex_);
  if (investigations_.count(alert.id)) return;
  auto inv = std::make_unique<Investigation>();
  inv->alert_id = alert.id;
  inv->agent_key = alert.agents.front();
  inv->type = alert.type;
  inv->started_ns = now;
  Investigation& ref = *inv;
  investigations_[alert.id] = std::move(inv);
  RequestGraph(ref, now);
}

// REQUIRES: work_mutex_ held.
bool Pipeline::RequestGraph(Investigation& inv, int64_t now) {
  const bool second = inv.stage == Investigation::Stage::kAwaitSecond;
  if (!second) {
    // Between investigations, not between the two graphs of one.
    auto last = last_graph_request_.find(inv.agent_key);
    if (last != last_graph_request_.end() &&
        now - last->second < investigate_.min_interval_ms * kMsToNs) {
      return false;
    }
  }
  if (!requester_ || !requester_(inv.agent_key, investigate_.values)) {
    inv.stage = Investigation::Stage::kDone;
    investigations_failed_.fetch_add(1, std::memory_order_relaxed);
    inv.failure = "agent " + inv.agent_key + " has no open connection to this collector";
    return false;
  }
  last_graph_request_[inv.agent_key] = now;
  inv.requested_ns = now;
  if (!second) inv.stage = Investigation::Stage::kAwaitFirst;
  graph_requests_.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("asked agent {} for a {} graph snapshot ({})", inv.agent_key,
               second ? "second" : "first", inv.alert_id);
  return true;
}

void Pipeline::Investigate(int64_t now) {
  struct Outcome {
    std::string id, note;
  };
  std::vector<Outcome> failed;
  std::vector<diff::Alert> release;
  {
    std::lock_guard lock(work_mutex_);
    const int64_t wait = investigate_.wait_ms * kMsToNs;
    for (auto& [id, inv] : investigations_) {
      using Stage = Investigation::Stage;
      switch (inv->stage) {
        case Stage::kWaitingToAsk:
          RequestGraph(*inv, now);
          break;
        case Stage::kAwaitFirst:
        case Stage::kAwaitSecond:
          if (inv->stage == Stage::kAwaitSecond && inv->requested_ns == 0) {
            if (now >= inv->second_due_ns) RequestGraph(*inv, now);
            break;
          }
          if (now - inv->requested_ns > wait) {
            inv->stage = Stage::kDone;
            inv->first.clear();
            inv->failure = "agent " + inv->agent_key + " sent no graph snapshot within " +
                           Seconds(wait) + " of the request";
            investigations_failed_.fetch_add(1, std::memory_order_relaxed);
          }
          break;
        default:
          break;
      }
      if (!inv->failure.empty()) {
        failed.push_back({id, std::move(inv->failure)});
        inv->failure.clear();
      }
    }
    // Bounded by the agents asked within min_interval.
    const int64_t min_interval = investigate_.min_interval_ms * kMsToNs;
    std::erase_if(last_graph_request_,
                  [&](const auto& e) { return now - e.second >= min_interval; });
    // Firing alerts held back for their holders go out once known, or at the deadline.
    for (auto it = deferred_.begin(); it != deferred_.end();) {
      auto inv = investigations_.find(it->first);
      const bool due = inv == investigations_.end() || now - inv->second->started_ns > wait;
      if (due) {
        release.push_back(std::move(it->second));
        it = deferred_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Outcome& f : failed) {
    spdlog::warn("what holds {} is unknown: {}", f.id, f.note);
    FinishInvestigation(f.id, {}, "", f.note, now);
  }
  for (diff::Alert& alert : release) {
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

void Pipeline::FinishInvestigation(const std::string& alert_id, std::vector<diff::HeldBy> holders,
                                   std::string holders_type, std::string note, int64_t now) {
  std::optional<diff::Alert> alert;
  {
    std::lock_guard lock(state_mutex_);
    if (detector_.SetHolders(alert_id, holders_type, std::move(holders), std::move(note), now)) {
      alert = detector_.active().at(alert_id);
    }
  }
  bool release = false, notified = false;
  {
    std::lock_guard lock(work_mutex_);
    if (auto inv = investigations_.find(alert_id); inv != investigations_.end()) {
      inv->second->stage = Investigation::Stage::kDone;
    }
    release = deferred_.erase(alert_id) > 0;
    notified = notified_firing_.count(alert_id) > 0;
  }
  if (!alert) return;
  if (release) {
    Emit(*alert, "firing", true);
  } else if (notified) {
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
    const int64_t now = WallNowNs();
    try {
      if (job->schedule) {
        const config::ScheduleConfig& s = *job->schedule;
        auto report = BuildReport(store_dir_, s.name, job->created_ns, s.compare_age_ms * kMsToNs,
                                  static_cast<size_t>(s.rows));
        if (!report) {
          spdlog::error("report {}: {}", s.name, report.error().message);
        } else {
          reports_made_.fetch_add(1, std::memory_order_relaxed);
          const nlohmann::json json = diff::ToJson(*report);
          Journal(reports_journal_.get(), json.dump(), 0);
          notifier_.Notify({"report", "report", json, s.hooks});
          spdlog::info("report {}: {} sections (tidemark reports {})", report->id,
                       report->sections.size(), report->id);
        }
      } else {
        std::vector<diff::HeldBy> holders;
        std::string type, note;
        auto load = [](const std::string& message) -> snapshot::Result<analysis::HeapGraph> {
          auto decoded = snapshot::Decode(message);
          if (!decoded) return std::unexpected(decoded.error());
          return analysis::HeapGraph::Load(std::move(*decoded));
        };
        auto first = load(job->first);
        auto second = load(job->second);
        job->first.clear();
        job->second.clear();
        if (!first || !second) {
          note = "a graph snapshot did not load: " +
                 (first ? second.error().message : first.error().message);
        } else {
          second->BuildParents();
          const analysis::Dominators dominators = analysis::Dominators::Compute(*second);
          const analysis::GraphDiffResult r =
              analysis::DiffGraphs(*first, *second, dominators, {.groups = 20, .holders = 3});
          graph_diffs_.fetch_add(1, std::memory_order_relaxed);
          const analysis::NewGroup* group = nullptr;
          for (const analysis::NewGroup& g : r.groups) {
            if (g.type == job->type) group = &g;
          }
          if (!group && !r.groups.empty()) group = &r.groups.front();
          if (!group) {
            note = "no new objects between the two graph snapshots";
          } else {
            type = group->type;
            for (const analysis::Holder& h : group->holders) {
              holders.push_back({h.description, h.path, h.count, h.bytes});
            }
            note = std::to_string(group->count) + " new " + group->type + " objects (" +
                   std::to_string(group->bytes) + " bytes) between two graph snapshots " +
                   Seconds(static_cast<int64_t>(r.seconds * kSecondNs)) + " apart" +
                   (first->refs_capped() || second->refs_capped()
                        ? "; an agent capped reference lists, holders may be incomplete"
                        : "");
            spdlog::info("{}: {}{}", job->alert_id, note,
                         holders.empty() ? "" : "; held by " + holders.front().path);
          }
        }
        FinishInvestigation(job->alert_id, std::move(holders), std::move(type), std::move(note),
                            now);
      }
    } catch (const std::exception& e) {
      spdlog::error("analysis: {}", e.what());  // Nothing may escape this thread.
    }
    lock.lock();
  }
}

int64_t NextScheduledRun(const config::ScheduleConfig& s, int64_t after) {
  if (s.every_ms > 0) return after + s.every_ms * kMsToNs;
  time_t t = static_cast<time_t>(after / kSecondNs);
  std::tm local{};
  localtime_r(&t, &local);
  local.tm_hour = s.at_minute / 60;
  local.tm_min = s.at_minute % 60;
  local.tm_sec = 0;
  local.tm_isdst = -1;
  time_t next = std::mktime(&local);
  if (static_cast<int64_t>(next) * kSecondNs <= after) {
    local.tm_mday += 1;
    local.tm_isdst = -1;
    next = std::mktime(&local);
  }
  return static_cast<int64_t>(next) * kSecondNs;
}

void Pipeline::RunSchedules(int64_t now) {
  std::vector<config::ScheduleConfig> schedules;
  {
    std::lock_guard lock(state_mutex_);
    schedules = config_.schedules;
  }
  std::lock_guard lock(work_mutex_);
  for (const config::ScheduleConfig& s : schedules) {
    auto [it, inserted] = next_report_ns_.try_emplace(s.name, 0);
    if (inserted) it->second = NextScheduledRun(s, std::max(now, started_ns_));
    if (now < it->second) continue;
    auto job = std::make_unique<Job>();
    job->schedule = s;
    job->created_ns = now;
    jobs_.push_back(std::move(job));
    jobs_wake_.notify_all();
    it->second = NextScheduledRun(s, now);
  }
}

void Pipeline::Emit(const diff::Alert& alert, const std::string& event, bool notify) {
  if (event == "firing") {
    spdlog::warn("ALERT firing: {}", alert.Summary());
  } else if (event == "resolved") {
    spdlog::info("alert resolved: {} ({})", alert.id, alert.note);
  }
  size_t keep;
  {
    std::lock_guard lock(state_mutex_);
    keep = static_cast<size_t>(config_.alert_history) + detector_.active().size();
  }
  Journal(alerts_journal_.get(), diff::AlertRecord(event, alert), keep);
  if (!notify) return;
  if (event == "firing") {
    std::lock_guard lock(work_mutex_);
    notified_firing_[alert.id] = true;
  }
  notifier_.Notify({"alert", event, diff::ToJson(alert), {}});
}

// Appends a record ("" appends nothing) and compacts the journal once it holds twice what it
// must keep: the alerts still active and the newest `keep` others; the newest reports.
void Pipeline::Journal(store::Journal* journal, const std::string& record, size_t keep) {
  std::lock_guard lock(journal_mutex_);
  const bool alerts = journal == alerts_journal_.get();
  std::vector<std::string>& records = alerts ? alert_records_ : report_records_;
  if (!record.empty()) {
    if (auto r = journal->Append(record); !r) {
      spdlog::error("cannot write {}: {}", journal->path(), r.error().message);
      return;
    }
    records.push_back(record);
  }
  size_t bound, history;
  {
    std::lock_guard state(state_mutex_);
    history = static_cast<size_t>(config_.alert_history);
    bound = alerts ? std::max(keep, history) : static_cast<size_t>(config_.report_history);
  }
  if (records.size() <= 2 * bound + 16) return;
  std::vector<std::string> kept;
  if (alerts) {
    diff::AlertLog log = diff::ReplayAlertRecords(records);
    const size_t skip = log.history.size() > history ? log.history.size() - history : 0;
    for (size_t i = skip; i < log.history.size(); ++i) {
      kept.push_back(diff::AlertRecord("resolved", log.history[i]));
    }
    for (const diff::Alert& a : log.active) kept.push_back(diff::AlertRecord("firing", a));
  } else {
    kept.assign(records.end() - static_cast<ptrdiff_t>(std::min(bound, records.size())),
                records.end());
  }
  if (auto r = journal->Rewrite(kept, WallNowNs()); !r) {
    spdlog::error("cannot compact {}: {}", journal->path(), r.error().message);
    return;
  }
  records = std::move(kept);
}

// REQUIRES: state_mutex_ held.
void Pipeline::ComputeView() {
  diff::ServiceViewOptions options;
  options.top_k = static_cast<size_t>(config_.metrics_top_k);
  options.max_services = static_cast<size_t>(config_.metrics_max_services);
  options.window_ns =
      config_.rules.empty() ? rolling_.span_ns() / 2 : config_.rules.front().window_ms * kMsToNs;
  for (const auto& [id, alert] : detector_.active()) {
    if (alert.kind == diff::AlertKind::kLeak) options.always.emplace(alert.service, alert.type);
  }
  std::ostringstream agents, rss, heap, bytes, objects, rates;
  for (std::ostringstream* s : {&agents, &rss, &heap, &bytes, &objects, &rates}) s->precision(15);
  for (const diff::ServiceRow& service : diff::ServiceView(rolling_, options)) {
    const std::string svc = "{service=\"" + EscapeLabel(service.service) + "\"} ";
    agents << "tidemark_service_agents" << svc << service.agents << '\n';
    rss << "tidemark_service_rss_bytes" << svc << service.rss_bytes << '\n';
    heap << "tidemark_service_heap_bytes" << svc << service.heap_bytes << '\n';
    for (const diff::ServiceTypeRow& t : service.types) {
      const std::string labels = "{service=\"" + EscapeLabel(service.service) + "\",type=\"" +
                                 EscapeLabel(t.type) + "\"} ";
      bytes << "tidemark_type_bytes" << labels << t.bytes << '\n';
      objects << "tidemark_type_objects" << labels << t.count << '\n';
      rates << "tidemark_type_growth_bytes_per_hour" << labels << t.bytes_per_hour << '\n';
    }
  }
  std::ostringstream out;
  out.precision(15);
  auto family = [&](const char* name, const char* help, const std::ostringstream& lines) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n" << lines.str();
  };
  family("tidemark_service_agents", "Agents followed per service.", agents);
  family("tidemark_service_rss_bytes", "RSS summed over a service's agents.", rss);
  family("tidemark_service_heap_bytes", "Python heap bytes summed over a service's agents.", heap);
  family("tidemark_type_bytes", "Bytes of a type summed over a service's agents (top K types).",
         bytes);
  family("tidemark_type_objects", "Objects of a type summed over a service's agents.", objects);
  family("tidemark_type_growth_bytes_per_hour",
         "Growth rate of a type (least squares over the first rule's window), summed over agents.",
         rates);
  std::ostringstream alerts;
  std::map<std::string, int> by_state = {{"pending", 0}, {"firing", 0}};
  for (const auto& [id, a] : detector_.active()) {
    ++by_state[diff::AlertStateName(a.state)];
    alerts << "tidemark_alert{kind=\"" << diff::AlertKindName(a.kind) << "\",rule=\""
           << EscapeLabel(a.rule) << "\",service=\"" << EscapeLabel(a.service) << "\",type=\""
           << EscapeLabel(a.type) << "\",state=\"" << diff::AlertStateName(a.state) << "\"} 1\n";
  }
  family("tidemark_alert", "1 for each pending or firing alert.", alerts);
  std::ostringstream counts;
  for (const auto& [state, n] : by_state)
    counts << "tidemark_alerts{state=\"" << state << "\"} " << n << '\n';
  family("tidemark_alerts", "Alerts by state.", counts);
  std::ostringstream growth;
  growth << "tidemark_growth_series " << rolling_.series() << '\n';
  family("tidemark_growth_series", "Agent and type series in the rolling state.", growth);
  std::ostringstream memory;
  memory << "tidemark_growth_memory_bytes " << rolling_.memory_bytes() << '\n';
  family("tidemark_growth_memory_bytes", "Memory of the rolling state.", memory);
  std::lock_guard lock(view_mutex_);
  view_ = out.str();
}

std::string Pipeline::ActiveAlertsJson() const {
  nlohmann::json out = nlohmann::json::array();
  std::lock_guard lock(state_mutex_);
  for (const auto& [id, alert] : detector_.active()) out.push_back(diff::ToJson(alert));
  return out.dump();
}

std::string Pipeline::RenderMetrics() const {
  std::ostringstream out;
  {
    std::lock_guard lock(view_mutex_);
    out << view_;
  }
  auto counter = [&](const char* name, const char* help, uint64_t value) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n"
        << name << ' ' << value << '\n';
  };
  counter("tidemark_growth_summaries_folded_total", "Summaries folded into the rolling state.",
          summaries_folded_.load());
  counter("tidemark_detector_passes_total", "Detector passes over the rolling state.",
          detector_passes_.load());
  counter("tidemark_agent_goodbyes_total",
          "Agents that said goodbye when they stopped (then forgotten, never silent).",
          goodbyes_.load());
  counter("tidemark_graph_requests_total", "Graph snapshots requested from agents.",
          graph_requests_.load());
  counter("tidemark_graph_diffs_total", "Graph diffs run to find what holds a leak.",
          graph_diffs_.load());
  counter("tidemark_investigations_failed_total",
          "Investigations given up (no connection, no graph in time).",
          investigations_failed_.load());
  counter("tidemark_reports_total", "Scheduled reports made.", reports_made_.load());
  {
    std::lock_guard lock(state_mutex_);
    counter("tidemark_growth_late_summaries_total", "Summaries older than the rolling state.",
            rolling_.late());
    counter("tidemark_growth_untracked_types_total",
            "Types not followed: over growth.max_types_per_agent.", rolling_.untracked());
    counter("tidemark_growth_agents_evicted_total",
            "Agents forgotten, least recently heard first, to keep the growth state within "
            "growth.max_memory.",
            rolling_.evicted());
    out << "# HELP tidemark_growth_memory_bytes The growth state's memory, as accounted.\n"
           "# TYPE tidemark_growth_memory_bytes gauge\ntidemark_growth_memory_bytes "
        << rolling_.memory_bytes() << '\n';
  }
  const std::vector<HookStats> hooks = notifier_.stats();
  const std::pair<const char*, uint64_t HookStats::*> fields[] = {
      {"tidemark_hook_delivered_total", &HookStats::delivered},
      {"tidemark_hook_failed_attempts_total", &HookStats::failed_attempts},
      {"tidemark_hook_given_up_total", &HookStats::given_up},
      {"tidemark_hook_dropped_total", &HookStats::dropped}};
  for (const auto& [name, field] : fields) {
    out << "# HELP " << name << " Hook notifications, by hook.\n# TYPE " << name << " counter\n";
    for (const HookStats& h : hooks) {
      out << name << "{hook=\"" << EscapeLabel(h.name) << "\",kind=\"" << h.kind << "\"} "
          << h.*field << '\n';
    }
  }
  return out.str();
}

}  // namespace tidemark::collector
