#include "collector/growth_metrics.h"

#include <sstream>

#include "collector/metrics.h"
#include "diff/service_view.h"

namespace tidemark::collector {
namespace {
constexpr int64_t kMsToNs = 1'000'000;
}  // namespace

std::string RenderGrowthGauges(const diff::RollingState& rolling,
                               const std::map<std::string, diff::Alert>& active,
                               const config::Config& config) {
  diff::ServiceViewOptions options;
  options.top_k = static_cast<size_t>(config.metrics_top_k);
  options.max_services = static_cast<size_t>(config.metrics_max_services);
  options.window_ns =
      config.rules.empty() ? rolling.span_ns() / 2 : config.rules.front().window_ms * kMsToNs;
  for (const auto& [id, alert] : active) {
    if (alert.kind == diff::AlertKind::kLeak) options.always.emplace(alert.service, alert.type);
  }
  std::ostringstream agents, rss, heap, bytes, objects, rates;
  for (std::ostringstream* s : {&agents, &rss, &heap, &bytes, &objects, &rates}) s->precision(15);
  for (const diff::ServiceRow& service : diff::ServiceView(rolling, options)) {
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
  for (const auto& [id, a] : active) {
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
  growth << "tidemark_growth_series " << rolling.series() << '\n';
  family("tidemark_growth_series", "Agent and type series in the rolling state.", growth);
  std::ostringstream memory;
  memory << "tidemark_growth_memory_bytes " << rolling.memory_bytes() << '\n';
  family("tidemark_growth_memory_bytes", "Memory of the rolling state.", memory);
  return out.str();
}

std::string RenderPipelineCounters(const PipelineCounters& c, const std::vector<HookStats>& hooks) {
  std::ostringstream out;
  auto counter = [&](const char* name, const char* help, uint64_t value) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n"
        << name << ' ' << value << '\n';
  };
  counter("tidemark_growth_summaries_folded_total", "Summaries folded into the rolling state.",
          c.summaries_folded);
  counter("tidemark_detector_passes_total", "Detector passes over the rolling state.",
          c.detector_passes);
  counter("tidemark_agent_goodbyes_total",
          "Agents that said goodbye when they stopped (then forgotten, never silent).", c.goodbyes);
  counter("tidemark_agents_moved_away_total",
          "Agents that moved to another of their collectors (forgotten here; the alerts about "
          "them alone handed over unresolved).",
          c.moved_away);
  counter("tidemark_graph_requests_total", "Graph snapshots requested from agents.",
          c.graph_requests);
  counter("tidemark_graph_diffs_total", "Graph diffs run to find what holds a leak.",
          c.graph_diffs);
  counter("tidemark_investigations_failed_total",
          "Investigations given up (no connection, no graph in time).", c.investigations_failed);
  counter("tidemark_reports_total", "Scheduled reports made.", c.reports_made);
  counter("tidemark_memory_pressure_alerts_total",
          "Memory-pressure alerts raised or updated (snapshots taken for a memory threshold).",
          c.memory_alerts);
  counter("tidemark_memory_pressure_graphs_unanalysed_total",
          "Memory-pressure graphs not analysed: too many were already waiting.",
          c.memory_graphs_skipped);
  counter("tidemark_growth_late_summaries_total", "Summaries older than the rolling state.",
          c.late_summaries);
  counter("tidemark_growth_untracked_types_total",
          "Types not followed: over growth.max_types_per_agent.", c.untracked_types);
  counter("tidemark_growth_agents_evicted_total",
          "Quiet agents forgotten, least recently heard first, to make room in the growth state "
          "(growth.max_memory).",
          c.agents_evicted);
  counter("tidemark_growth_summaries_refused_total",
          "Summaries of new agents not followed: the growth state (growth.max_memory) was full "
          "of agents heard recently.",
          c.summaries_refused);
  const std::pair<const char*, uint64_t HookStats::*> fields[] = {
      {"tidemark_hook_delivered_total", &HookStats::delivered},
      {"tidemark_hook_failed_attempts_total", &HookStats::failed_attempts},
      {"tidemark_hook_given_up_total", &HookStats::given_up},
      {"tidemark_hook_dropped_total", &HookStats::dropped},
      {"tidemark_hook_superseded_total", &HookStats::superseded}};
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
