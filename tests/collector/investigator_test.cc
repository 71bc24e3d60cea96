// The investigation of leak alerts on its own: which agent is asked for which graph and when,
// what is given up and why, when a held firing alert goes out. The clock is passed in.
#include "collector/investigator.h"

#include <gtest/gtest.h>

namespace tidemark::collector {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kT0 = int64_t{1'790'000'000} * kS;

config::InvestigateConfig Settings() {
  config::InvestigateConfig s;
  s.min_interval_ms = 900'000;
  s.gap_ms = 120'000;
  s.wait_ms = 600'000;
  s.values = true;
  return s;
}

diff::Alert Leak(const std::string& id, const std::string& agent = "svc/host/1@1") {
  diff::Alert a;
  a.id = id;
  a.type = "bytearray";
  a.agents = {agent, "svc/host/2@1"};
  return a;
}

// The summaries always show growth.
bool Grows(const std::string&, const std::string&, int64_t) { return true; }

// Records every request; answers with `connected`.
struct Agents {
  std::vector<Investigator::GraphRequest> asked;
  bool connected = true;
  Investigator::Ask ask() {
    return [this](const Investigator::GraphRequest& r) {
      asked.push_back(r);
      return connected;
    };
  }
};

TEST(Investigator, AsksTheAgentGrowingMostForAFirstGraphWhenTheAlertGoesPending) {
  Investigator inv(Settings());
  Agents agents;
  inv.Start(Leak("leak/r/svc"), kT0, agents.ask());
  ASSERT_EQ(agents.asked.size(), 1u);
  EXPECT_EQ(agents.asked[0].agent, "svc/host/1@1");
  EXPECT_EQ(agents.asked[0].alert_id, "leak/r/svc");
  EXPECT_FALSE(agents.asked[0].second);
  EXPECT_TRUE(agents.asked[0].values);
  inv.Start(Leak("leak/r/svc"), kT0 + kS, agents.ask());
  EXPECT_EQ(agents.asked.size(), 1u) << "one investigation per alert";
  EXPECT_EQ(inv.requests(), 1u);
}

TEST(Investigator, AsksForTheSecondGraphAGapAfterTheFirstArrivedThenPairsThem) {
  Investigator inv(Settings());
  Agents agents;
  inv.Start(Leak("leak/r/svc"), kT0, agents.ask());
  EXPECT_TRUE(inv.OnGraph("svc/host/1@1", kT0 + kS, "a:1", "first", kT0 + 2 * kS).empty());
  inv.Advance(kT0 + 100 * kS, agents.ask(), Grows);
  EXPECT_EQ(agents.asked.size(), 1u) << "not before the gap";
  inv.Advance(kT0 + 122 * kS, agents.ask(), Grows);
  ASSERT_EQ(agents.asked.size(), 2u);
  EXPECT_TRUE(agents.asked[1].second);
  auto pairs = inv.OnGraph("svc/host/1@1", kT0 + 123 * kS, "a:2", "second", kT0 + 124 * kS);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].alert_id, "leak/r/svc");
  EXPECT_EQ(pairs[0].type, "bytearray");
  EXPECT_EQ(pairs[0].first, "first");
  EXPECT_EQ(pairs[0].second, "second");
  EXPECT_EQ(pairs[0].references, (std::vector<std::string>{"a:1", "a:2"}));
}

TEST(Investigator, TheSecondGraphWaitsForGrowthSinceTheFirstUpToTheWait) {
  Investigator inv(Settings());
  Agents agents;
  bool grown = false;
  int64_t asked_since = 0;
  const Investigator::Grew grew = [&](const std::string& agent, const std::string& type,
                                      int64_t since) {
    EXPECT_EQ(agent, "svc/host/1@1");
    EXPECT_EQ(type, "bytearray");
    asked_since = since;
    return grown;
  };
  inv.Start(Leak("leak/r/svc"), kT0, agents.ask());
  inv.OnGraph("svc/host/1@1", kT0 + kS, "a:1", "first", kT0 + 2 * kS);
  inv.Advance(kT0 + 200 * kS, agents.ask(), grew);
  EXPECT_EQ(agents.asked.size(), 1u) << "a leak in steps: no growth yet, no second graph";
  EXPECT_EQ(asked_since, kT0 + 2 * kS) << "growth since the first graph arrived";
  grown = true;
  inv.Advance(kT0 + 201 * kS, agents.ask(), grew);
  ASSERT_EQ(agents.asked.size(), 2u);
  auto pairs = inv.OnGraph("svc/host/1@1", kT0 + 202 * kS, "a:2", "second", kT0 + 202 * kS);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_TRUE(pairs[0].grew);
}

TEST(Investigator, WithoutGrowthTheSecondGraphIsTakenAtTheWaitAndSaysSo) {
  Investigator inv(Settings());
  Agents agents;
  const Investigator::Grew never = [](const std::string&, const std::string&, int64_t) {
    return false;
  };
  inv.Start(Leak("leak/r/svc"), kT0, agents.ask());
  inv.OnGraph("svc/host/1@1", kT0 + kS, "a:1", "first", kT0 + kS);
  inv.Advance(kT0 + 600 * kS, agents.ask(), never);
  EXPECT_EQ(agents.asked.size(), 1u);
  inv.Advance(kT0 + 601 * kS, agents.ask(), never);
  ASSERT_EQ(agents.asked.size(), 2u) << "investigate.wait after the first graph";
  auto pairs = inv.OnGraph("svc/host/1@1", kT0 + 602 * kS, "a:2", "second", kT0 + 602 * kS);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_FALSE(pairs[0].grew);
}

TEST(Investigator, IgnoresGraphsOfOtherAgentsAndAnOlderSecondGraph) {
  Investigator inv(Settings());
  Agents agents;
  inv.Start(Leak("leak/r/svc"), kT0, agents.ask());
  EXPECT_TRUE(inv.OnGraph("svc/host/2@1", kT0 + kS, "ref", "other", kT0 + kS).empty());
  inv.OnGraph("svc/host/1@1", kT0 + 10 * kS, "ref", "first", kT0 + 10 * kS);
  inv.Advance(kT0 + 200 * kS, agents.ask(), Grows);
  EXPECT_TRUE(inv.OnGraph("svc/host/1@1", kT0 + 5 * kS, "ref", "stale", kT0 + 201 * kS).empty())
      << "a graph taken before the first is not the second";
  EXPECT_EQ(inv.OnGraph("svc/host/1@1", kT0 + 202 * kS, "ref", "second", kT0 + 202 * kS).size(),
            1u);
}

TEST(Investigator, AnAgentWithoutConnectionFailsTheInvestigationWithAReason) {
  Investigator inv(Settings());
  Agents agents;
  agents.connected = false;
  inv.Start(Leak("leak/r/svc"), kT0, agents.ask());
  auto progress = inv.Advance(kT0 + kS, agents.ask(), Grows);
  ASSERT_EQ(progress.failed.size(), 1u);
  EXPECT_EQ(progress.failed[0].alert_id, "leak/r/svc");
  EXPECT_NE(progress.failed[0].note.find("no open connection"), std::string::npos);
  EXPECT_EQ(inv.failures(), 1u);
  EXPECT_TRUE(inv.Advance(kT0 + 2 * kS, agents.ask(), Grows).failed.empty()) << "reported once";
}

TEST(Investigator, AGraphNotReceivedWithinTheWaitIsGivenUp) {
  Investigator inv(Settings());
  Agents agents;
  inv.Start(Leak("leak/r/svc"), kT0, agents.ask());
  EXPECT_TRUE(inv.Advance(kT0 + 600 * kS, agents.ask(), Grows).failed.empty());
  auto progress = inv.Advance(kT0 + 601 * kS, agents.ask(), Grows);
  ASSERT_EQ(progress.failed.size(), 1u);
  EXPECT_NE(progress.failed[0].note.find("sent no graph snapshot within 600 s"), std::string::npos)
      << progress.failed[0].note;
  EXPECT_TRUE(inv.OnGraph("svc/host/1@1", kT0 + 602 * kS, "ref", "late", kT0 + 602 * kS).empty());
}

TEST(Investigator, OneAgentIsAskedAtMostOncePerMinIntervalAcrossInvestigations) {
  Investigator inv(Settings());
  Agents agents;
  inv.Start(Leak("leak/a/svc"), kT0, agents.ask());
  inv.Start(Leak("leak/b/svc"), kT0 + kS, agents.ask());
  EXPECT_EQ(agents.asked.size(), 1u);
  inv.Advance(kT0 + 899 * kS, agents.ask(), Grows);
  EXPECT_EQ(agents.asked.size(), 1u);
  inv.Advance(kT0 + 900 * kS, agents.ask(), Grows);
  ASSERT_EQ(agents.asked.size(), 2u) << "asked once min_interval has passed";
  EXPECT_EQ(agents.asked[1].alert_id, "leak/b/svc");
}

TEST(Investigator, AFiringAlertIsHeldUntilItsHoldersAreKnown) {
  Investigator inv(Settings());
  Agents agents;
  inv.Start(Leak("leak/r/svc"), kT0, agents.ask());
  EXPECT_TRUE(inv.HoldFiring(Leak("leak/r/svc")));
  EXPECT_TRUE(inv.Advance(kT0 + 10 * kS, agents.ask(), Grows).release.empty());
  const Investigator::Finished finished = inv.Finish("leak/r/svc");
  EXPECT_TRUE(finished.release);
  EXPECT_FALSE(finished.notified);
  EXPECT_FALSE(inv.HoldFiring(Leak("leak/r/svc"))) << "finished: nothing to wait for";
}

TEST(Investigator, AHeldAlertGoesOutAtTheDeadlineWithoutHolders) {
  Investigator inv(Settings());
  Agents agents;
  inv.Start(Leak("leak/r/svc"), kT0, agents.ask());
  inv.OnGraph("svc/host/1@1", kT0 + kS, "ref", "first", kT0 + kS);
  ASSERT_TRUE(inv.HoldFiring(Leak("leak/r/svc")));
  EXPECT_TRUE(inv.Advance(kT0 + 600 * kS, agents.ask(), Grows).release.empty());
  auto progress = inv.Advance(kT0 + 601 * kS, agents.ask(), Grows);
  ASSERT_EQ(progress.release.size(), 1u);
  EXPECT_EQ(progress.release[0].id, "leak/r/svc");
  EXPECT_TRUE(inv.Advance(kT0 + 602 * kS, agents.ask(), Grows).release.empty()) << "released once";
}

TEST(Investigator, AnAlertWithoutInvestigationFiresAtOnce) {
  Investigator inv(Settings());
  EXPECT_FALSE(inv.HoldFiring(Leak("leak/r/svc")));
}

TEST(Investigator, HoldersFoundAfterTheFiringWentOutAreAnUpdate) {
  Investigator inv(Settings());
  Agents agents;
  inv.Start(Leak("leak/r/svc"), kT0, agents.ask());
  inv.Notified("leak/r/svc");
  const Investigator::Finished finished = inv.Finish("leak/r/svc");
  EXPECT_FALSE(finished.release);
  EXPECT_TRUE(finished.notified);
  EXPECT_TRUE(inv.Resolved("leak/r/svc")) << "its resolution is notified too";
  EXPECT_FALSE(inv.Resolved("leak/r/svc"));
}

TEST(Investigator, AlertsNoLongerActiveAreForgotten) {
  Investigator inv(Settings());
  Agents agents;
  inv.Start(Leak("leak/a/svc"), kT0, agents.ask());
  inv.Start(Leak("leak/b/svc", "svc/host/9@1"), kT0, agents.ask());
  inv.Retain({"leak/b/svc"});
  EXPECT_EQ(inv.investigations(), 1u);
  EXPECT_TRUE(inv.OnGraph("svc/host/1@1", kT0 + kS, "ref", "first", kT0 + kS).empty());
  EXPECT_TRUE(inv.Advance(kT0 + 1000 * kS, agents.ask(), Grows).release.empty());
}

TEST(Investigator, TheRateLimitTableIsBounded) {
  Investigator inv(Settings());
  Agents agents;
  for (int i = 0; i < 100; ++i) {
    inv.Start(Leak("leak/r/" + std::to_string(i), "svc/host/" + std::to_string(i) + "@1"), kT0,
              agents.ask());
  }
  EXPECT_EQ(agents.asked.size(), 100u);
  inv.Retain({});
  inv.Advance(kT0 + 900 * kS, agents.ask(), Grows);
  // Asked again at once: the per-agent entries were pruned, not kept forever.
  inv.Start(Leak("leak/r/0", "svc/host/0@1"), kT0 + 900 * kS, agents.ask());
  EXPECT_EQ(agents.asked.size(), 101u);
}

}  // namespace
}  // namespace tidemark::collector
