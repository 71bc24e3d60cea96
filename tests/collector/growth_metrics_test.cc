// What /metrics shows of the growth pipeline, rendered from a rolling state and alerts.
#include "collector/growth_metrics.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>

namespace tidemark::collector {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kT0 = int64_t{1'790'000'000} * kS;

void Fold(diff::RollingState& state, const std::string& service, int64_t pid, int64_t t,
          uint64_t leaked) {
  snapshot::Header h;
  h.identity.service = service;
  h.identity.host = "h";
  h.identity.pid = pid;
  h.timestamp_ns = t;
  std::vector<snapshot::TypeStat> types = {{"dict", 100, 10'000, 0},
                                           {"app.Leak", leaked / 100, leaked, 0}};
  for (const auto& s : types) h.bytes += s.bytes;
  h.rss_bytes = h.bytes * 2;
  state.Fold(snapshot::AgentName(h.identity), h, types, t);
}

std::string Rendered() {
  diff::RollingState state(3600 * kS, 100, 1 << 20);
  for (int i = 0; i < 10; ++i) {
    Fold(state, "web", 1, kT0 + i * 60 * kS, 1'000'000 * (i + 1));
    Fold(state, "web", 2, kT0 + i * 60 * kS, 1'000);
    Fold(state, "batch \"q\"", 3, kT0 + i * 60 * kS, 1'000);
  }
  std::map<std::string, diff::Alert> active;
  diff::Alert a;
  a.id = "leak/r/web";
  a.kind = diff::AlertKind::kLeak;
  a.state = diff::AlertState::kFiring;
  a.rule = "r";
  a.service = "web";
  a.type = "app.Leak";
  active[a.id] = a;
  config::Config config;
  config.metrics_top_k = 1;
  PipelineCounters counters;
  counters.graph_requests = 3;
  return RenderGrowthGauges(state, active, config) +
         RenderPipelineCounters(counters, {HookStats{"ops", "webhook", 1, 2, 3, 4}});
}

TEST(GrowthMetrics, ServicesAreSummedOverTheirAgentsAndLabelsEscaped) {
  const std::string text = Rendered();
  EXPECT_NE(text.find("tidemark_service_agents{service=\"web\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("tidemark_service_agents{service=\"batch \\\"q\\\"\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("tidemark_type_bytes{service=\"web\",type=\"app.Leak\"} 10001000\n"),
            std::string::npos);
}

TEST(GrowthMetrics, AlertsAreOneSeriesEachAndCountedByState) {
  const std::string text = Rendered();
  EXPECT_NE(text.find("tidemark_alert{kind=\"leak\",rule=\"r\",service=\"web\",type=\"app.Leak\","
                      "state=\"firing\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("tidemark_alerts{state=\"firing\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("tidemark_alerts{state=\"pending\"} 0\n"), std::string::npos);
}

TEST(GrowthMetrics, CountersAndHooksAreRendered) {
  const std::string text = Rendered();
  EXPECT_NE(text.find("tidemark_graph_requests_total 3\n"), std::string::npos);
  EXPECT_NE(text.find("tidemark_hook_dropped_total{hook=\"ops\",kind=\"webhook\"} 4\n"),
            std::string::npos);
}

TEST(GrowthMetrics, EveryFamilyIsDeclaredOnce) {
  std::istringstream lines(Rendered());
  std::set<std::string> seen;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    const std::string name = line.substr(7, line.find(' ', 7) - 7);
    EXPECT_TRUE(seen.insert(name).second) << name << " is declared twice";
  }
  EXPECT_GE(seen.size(), 15u);
}

}  // namespace
}  // namespace tidemark::collector
