#include "collector/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace tidemark::collector {
namespace {

snapshot::Header Summary(int64_t pid, int64_t start_ns, uint64_t rss) {
  snapshot::Header h;
  h.identity.service = "api";
  h.identity.host = "box";
  h.identity.pid = pid;
  h.identity.start_time_ns = start_ns;
  h.rss_bytes = rss;
  return h;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Metrics, ARestartWithTheSamePidReplacesTheSeriesInsteadOfDuplicatingThem) {
  Metrics metrics;
  metrics.Received(Summary(1, 100, 1000), 10, 1);
  metrics.Received(Summary(1, 200, 2000), 10, 2);  // The container restarted: PID 1 again.
  metrics.Received(Summary(1, 100, 3000), 10, 3);  // A late one from the old instance.
  const std::string text = metrics.Render({}, 4);
  const std::string series = "tidemark_agent_rss_bytes{service=\"api\",host=\"box\",pid=\"1\"}";
  EXPECT_EQ(Count(text, series + " "), 1u) << text;
  EXPECT_NE(text.find(series + " 2000"), std::string::npos) << text;
}

TEST(Metrics, AgentsPastTheTableAreCountedNotChartedAndTheSilentMakeRoom) {
  Metrics metrics;
  const int64_t hour = Metrics::kAgentForgetAfterNs;
  for (size_t pid = 1; pid <= Metrics::kMaxAgents; ++pid)
    metrics.Received(Summary(pid, 1, 1), 10, 1);
  for (int i = 0; i < 3; ++i) metrics.Received(Summary(999'999, 1, 1), 10, 2);  // No room.
  metrics.Received(Summary(1, 1, 1), 10, hour);  // Known: still charted.
  std::string text = metrics.Render({}, hour);
  EXPECT_NE(text.find("tidemark_agent_snapshots_uncharted_total 3\n"), std::string::npos);
  EXPECT_NE(text.find("tidemark_agents 10000\n"), std::string::npos);
  EXPECT_EQ(text.find("pid=\"999999\""), std::string::npos);
  // An hour on, all but agent 1 are silent: the next newcomer finds room.
  metrics.Received(Summary(999'999, 1, 1), 10, hour + 2);
  text = metrics.Render({}, hour + 2);
  EXPECT_NE(text.find("tidemark_agents 2\n"), std::string::npos) << text.substr(0, 2000);
  EXPECT_NE(text.find("pid=\"999999\""), std::string::npos);
  EXPECT_NE(text.find("tidemark_agent_snapshots_uncharted_total 3\n"), std::string::npos);
}

}  // namespace
}  // namespace tidemark::collector
