// The leak detector on synthetic series: it fires on leaks (linear, slow, step-wise, under
// noise) and stays quiet on normal behaviour (warm-up that plateaus, sawtooth, noise, restart),
// with the embedded default rules and a real-looking 60 s agent interval.
#include "diff/detector.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <random>

#include "diff/json.h"
#include "diff/service_view.h"

namespace tidemark::diff {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kMin = 60 * kS;
constexpr int64_t kT0 = int64_t{1'790'000'000} * kS;  // Some wall-clock time.
constexpr double kMiB = 1 << 20;

using Curve = std::function<double(int64_t t_ns)>;  // Bytes of the watched type at t.

snapshot::Identity Who(const std::string& service, int64_t pid, int64_t start = kT0) {
  snapshot::Identity id;
  id.service = service;
  id.host = "host-1";
  id.pid = pid;
  id.start_time_ns = start;
  id.labels = {{"env", "test"}};
  return id;
}

class Sim {
 public:
  explicit Sim(DetectorConfig config = {}) : detector(std::move(config)) {}

  // One summary: the watched type plus steady neighbours; RSS = heap + native.
  void Summary(const snapshot::Identity& who, int64_t t, double watched,
               double native = 50 * kMiB) {
    snapshot::Header h;
    h.identity = who;
    h.timestamp_ns = t;
    std::vector<snapshot::TypeStat> types = {
        {"dict", 40'000, static_cast<uint64_t>(8 * kMiB), 0},
        {"str", 90'000, static_cast<uint64_t>(6 * kMiB), 0},
        {"app.Thing", static_cast<uint64_t>(watched / 128), static_cast<uint64_t>(watched), 0}};
    for (const auto& t2 : types) h.bytes += t2.bytes;
    h.rss_bytes = h.bytes + static_cast<uint64_t>(native);
    state.Fold(store_key(who), h, types, t);
  }

  static std::string store_key(const snapshot::Identity& who) {
    return who.service + "/" + who.host + "/" + std::to_string(who.pid);
  }

  void Pass(int64_t now) {
    DetectorPass pass = detector.Evaluate(state, now);
    for (const std::string& key : pass.forget) state.Forget(key);
    for (AlertEvent& e : pass.events) {
      if (e.what == AlertEvent::What::kFiring && first_fired < 0) first_fired = now - kT0;
      events.push_back(std::move(e));
    }
  }

  // Summaries every `interval` and detector passes every 30 s for `duration`.
  void Run(
      const snapshot::Identity& who, int64_t from, int64_t duration, const Curve& watched,
      const Curve& native = [](int64_t) { return 50 * kMiB; }, int64_t interval = kMin) {
    for (int64_t t = from; t < from + duration; t += 30 * kS) {
      if ((t - from) % interval == 0) Summary(who, kT0 + t, watched(t), native(t));
      Pass(kT0 + t);
    }
  }

  // A summary a minute and a pass after each, for two hours, with the type table `at(hours)`.
  void RunTables(const std::function<std::vector<snapshot::TypeStat>(double hours)>& at) {
    for (int64_t t = 0; t < 2 * kNsPerHour; t += kMin) {
      snapshot::Header h;
      h.identity = Who("api", 1);
      h.timestamp_ns = kT0 + t;
      state.Fold("k", h, at(static_cast<double>(t) / kNsPerHour), kT0 + t);
      Pass(kT0 + t);
    }
  }

  int Fired(AlertKind kind) const {
    int n = 0;
    for (const AlertEvent& e : events) {
      n += e.what == AlertEvent::What::kFiring && e.alert.kind == kind;
    }
    return n;
  }
  const Alert* FirstFiring() const {
    for (const AlertEvent& e : events) {
      if (e.what == AlertEvent::What::kFiring) return &e.alert;
    }
    return nullptr;
  }

  RollingState state{kNsPerHour};
  Detector detector;
  std::vector<AlertEvent> events;
  int64_t first_fired = -1;
};

double Hours(int64_t t) { return static_cast<double>(t) / kNsPerHour; }

// A memory-pressure alert as the collector raises it for an agent's threshold snapshot.
Alert MemoryAlert(const snapshot::Identity& who, uint32_t crossed) {
  Alert a;
  a.id = "memory/api/host-1/1";
  a.service = who.service;
  a.agents = {Sim::store_key(who)};
  a.memory = {.current = crossed * 10, .limit = 1000, .source = "cgroup2", .crossed_pct = crossed};
  return a;
}

// One summary with memory figures: `share` of a 1000-byte limit.
void MemorySummary(Sim& sim, const snapshot::Identity& who, int64_t t, double share) {
  snapshot::Header h;
  h.identity = who;
  h.timestamp_ns = t;
  h.memory = {.current = static_cast<uint64_t>(share * 1000), .limit = 1000, .source = "cgroup2"};
  const std::vector<snapshot::TypeStat> types = {{"dict", 10, 1000, 0}};
  sim.state.Fold(Sim::store_key(who), h, types, t);
}

TEST(Detector, MemoryPressureFiresAtOnceUpdatesAtAHigherThresholdAndStaysWhileMemoryIsHigh) {
  Sim sim;
  const auto who = Who("api", 1);
  MemorySummary(sim, who, kT0, 0.85);
  EXPECT_TRUE(sim.detector.RaiseMemory(MemoryAlert(who, 80), kT0));
  const Alert& firing = sim.detector.active().at("memory/api/host-1/1");
  EXPECT_EQ(firing.state, AlertState::kFiring);
  EXPECT_EQ(firing.kind, AlertKind::kMemory);
  EXPECT_FALSE(sim.detector.RaiseMemory(MemoryAlert(who, 90), kT0 + kS));
  EXPECT_EQ(sim.detector.active().at("memory/api/host-1/1").memory.crossed_pct, 90u);
  EXPECT_EQ(sim.detector.active().at("memory/api/host-1/1").since_ns, kT0);
  // Leak rules do not see it: passes with memory still high leave it firing.
  for (int64_t t = kS; t < 10 * kMin; t += 30 * kS) {
    MemorySummary(sim, who, kT0 + t, 0.95);
    sim.Pass(kT0 + t);
  }
  EXPECT_TRUE(sim.events.empty());
  EXPECT_EQ(sim.detector.active().size(), 1u);
}

TEST(Detector, MemoryPressureResolvesOnceMemoryIsTenPointsBelowTheThreshold) {
  Sim sim;
  const auto who = Who("api", 1);
  MemorySummary(sim, who, kT0, 0.92);
  sim.detector.RaiseMemory(MemoryAlert(who, 90), kT0);
  MemorySummary(sim, who, kT0 + kS, 0.81);  // Within ten points: still pressing.
  sim.Pass(kT0 + kS);
  EXPECT_TRUE(sim.events.empty());
  MemorySummary(sim, who, kT0 + 2 * kS, 0.79);
  sim.Pass(kT0 + 2 * kS);
  ASSERT_EQ(sim.events.size(), 1u);
  EXPECT_EQ(sim.events[0].what, AlertEvent::What::kResolved);
  EXPECT_EQ(sim.events[0].alert.note, "memory fell back below the threshold");
  EXPECT_TRUE(sim.detector.active().empty());
}

TEST(Detector, MemoryPressureResolvesWhenItsAgentIsGone) {
  Sim sim;
  const auto who = Who("api", 1);
  MemorySummary(sim, who, kT0, 0.92);
  sim.detector.RaiseMemory(MemoryAlert(who, 90), kT0);
  sim.state.Forget(Sim::store_key(who));  // Its goodbye.
  sim.Pass(kT0 + kS);
  ASSERT_EQ(sim.events.size(), 1u);
  EXPECT_NE(sim.events[0].alert.note.find("the agent is gone"), std::string::npos);
}

TEST(Detector, MemoryPressureAlertSurvivesTheJournal) {
  Alert a = MemoryAlert(Who("api", 1), 90);
  a.kind = AlertKind::kMemory;
  a.graphs = {"api/host-1/1@1:7"};
  a.type = "bytes";
  auto back = AlertFromJson(ToJson(a));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->kind, AlertKind::kMemory);
  EXPECT_EQ(back->memory.crossed_pct, 90u);
  EXPECT_EQ(back->memory.source, "cgroup2");
  EXPECT_EQ(ToJson(a)["evidence"][0], "tidemark why api/host-1/1@1:7 bytes");
  EXPECT_NE(a.Summary().find("past 90% of its cgroup2 memory limit"), std::string::npos)
      << a.Summary();
}

TEST(Detector, SteadyLinearLeakFiresWithinAnHourAtTheTrueRate) {
  Sim sim;
  sim.Run(Who("api", 1), 0, 2 * kNsPerHour,
          [](int64_t t) { return 20 * kMiB + 6 * kMiB * Hours(t); });
  const Alert* fired = sim.FirstFiring();
  ASSERT_NE(fired, nullptr);
  EXPECT_EQ(fired->kind, AlertKind::kLeak);
  EXPECT_EQ(fired->type, "app.Thing");
  EXPECT_EQ(fired->service, "api");
  EXPECT_LE(sim.first_fired, kNsPerHour);
  EXPECT_NEAR(fired->bytes_per_hour / kMiB, 6.0, 0.3);
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 1) << "one alert, not one per pass";
  EXPECT_EQ(sim.Fired(AlertKind::kNative), 0);
}

TEST(Detector, SlowLeakNearTheMinimumRateFires) {
  Sim sim;
  sim.Run(Who("api", 1), 0, 2 * kNsPerHour,
          [](int64_t t) { return 20 * kMiB + 1.5 * kMiB * Hours(t); });
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 1);
}

TEST(Detector, StepwiseGrowthThatKeepsSteppingFires) {
  Sim sim;
  // +1 MiB every 8 minutes, flat in between.
  sim.Run(Who("api", 1), 0, 2 * kNsPerHour,
          [](int64_t t) { return 20 * kMiB + kMiB * static_cast<double>(t / (8 * kMin)); });
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 1);
}

TEST(Detector, GrowthUnderNoiseFires) {
  Sim sim;
  std::mt19937 rng(7);
  std::normal_distribution<double> noise(0, 0.5 * kMiB);
  sim.Run(Who("api", 1), 0, 2 * kNsPerHour,
          [&](int64_t t) { return 30 * kMiB + 5 * kMiB * Hours(t) + noise(rng); });
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 1);
}

TEST(Detector, WarmupThatPlateausStaysQuiet) {
  Sim sim;
  // A cache filling to its bound over 15 minutes: 40 MiB, then flat for hours.
  sim.Run(Who("api", 1), 0, 3 * kNsPerHour,
          [](int64_t t) { return 2 * kMiB + 40 * kMiB * std::min(1.0, Hours(t) * 4); });
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 0);
}

TEST(Detector, SawtoothFromPeriodicCleanupStaysQuiet) {
  Sim sim;
  // Grows 12 MiB over 10 minutes, then a cleanup drops it back: a steep, steady sawtooth.
  sim.Run(Who("api", 1), 0, 3 * kNsPerHour, [](int64_t t) {
    const double phase = static_cast<double>(t % (10 * kMin)) / (10 * kMin);
    return 10 * kMiB + 12 * kMiB * phase;
  });
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 0);
}

TEST(Detector, NoiseAroundASteadyLevelStaysQuiet) {
  Sim sim;
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(0, 3 * kMiB);
  sim.Run(Who("api", 1), 0, 3 * kNsPerHour, [&](int64_t) { return 60 * kMiB + noise(rng); });
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 0);
}

TEST(Detector, ProcessRestartStaysQuiet) {
  Sim sim;
  auto warmup = [](int64_t since) {
    return
        [since](int64_t t) { return 2 * kMiB + 40 * kMiB * std::min(1.0, Hours(t - since) * 4); };
  };
  sim.Run(Who("api", 1), 0, kNsPerHour, warmup(0));
  // Same host and service, a new pid and start time: the old instance is replaced.
  sim.Run(Who("api", 2, kT0 + kNsPerHour), kNsPerHour, 2 * kNsPerHour, warmup(kNsPerHour));
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 0);
  EXPECT_EQ(sim.Fired(AlertKind::kSilent), 0) << "a replaced instance is not silent";
  EXPECT_EQ(sim.state.agents().size(), 1u);
}

TEST(Detector, FiresOnlyOnceTheConditionHeldForItsForDuration) {
  DetectorConfig config;
  config.rules[0].for_ns = 20 * kMin;
  Sim sim(config);
  sim.Run(Who("api", 1), 0, 2 * kNsPerHour,
          [](int64_t t) { return 20 * kMiB + 6 * kMiB * Hours(t); });
  int64_t pending_at = -1;
  for (const AlertEvent& e : sim.events) {
    if (e.what == AlertEvent::What::kPending && pending_at < 0) pending_at = e.alert.since_ns - kT0;
  }
  ASSERT_GE(pending_at, 0);
  ASSERT_GE(sim.first_fired, 0);
  EXPECT_GE(sim.first_fired - pending_at, 20 * kMin);
  EXPECT_LE(sim.first_fired - pending_at, 21 * kMin);
}

TEST(Detector, ResolvesAfterTheGrowthStops) {
  Sim sim;
  sim.Run(Who("api", 1), 0, 4 * kNsPerHour,
          [](int64_t t) { return 20 * kMiB + 6 * kMiB * std::min(Hours(t), 1.5); });
  ASSERT_EQ(sim.Fired(AlertKind::kLeak), 1);
  const AlertEvent& last = sim.events.back();
  EXPECT_EQ(last.what, AlertEvent::What::kResolved);
  EXPECT_EQ(last.alert.state, AlertState::kResolved);
  EXPECT_GT(last.alert.resolved_ns - kT0, static_cast<int64_t>(1.5 * kNsPerHour));
  EXPECT_TRUE(sim.detector.active().empty());
}

TEST(Detector, AnAlertWhoseAgentMovedToAnotherCollectorIsHandedOverNeverResolvedHere) {
  Sim sim;
  const snapshot::Identity api = Who("api", 1);
  sim.Run(api, 0, 2 * kNsPerHour, [](int64_t t) { return 20 * kMiB + 6 * kMiB * Hours(t); });
  ASSERT_EQ(sim.Fired(AlertKind::kLeak), 1);
  EXPECT_TRUE(sim.detector.HandOver("api/host-1/99", kT0).empty());  // Not its agent.
  const std::vector<Alert> handed = sim.detector.HandOver(Sim::store_key(api), kT0);
  ASSERT_EQ(handed.size(), 1u);
  EXPECT_EQ(handed[0].state, AlertState::kFiring);
  EXPECT_NE(handed[0].note.find("moved to another collector"), std::string::npos);
  EXPECT_TRUE(sim.detector.active().empty());
  sim.state.Forget(Sim::store_key(api));
  const size_t before = sim.events.size();
  for (int64_t t = 2 * kNsPerHour; t < 4 * kNsPerHour; t += 30 * kS) sim.Pass(kT0 + t);
  EXPECT_EQ(sim.events.size(), before);  // Neither resolved nor silent here.
}

TEST(Detector, APendingAlertKeepsThroughALapseShorterThanResolveAfter) {
  // A leak whose heap drops back for a few minutes while pending: once dropped and pending
  // again moments later, its investigation lost and min_interval forbidding another.
  auto run = [](int64_t resolve_after_ns) {
    DetectorConfig config;
    config.rules[0].resolve_after_ns = resolve_after_ns;
    config.rules[0].for_ns = 10 * kNsPerHour;  // Pending all along.
    auto sim = std::make_unique<Sim>(config);
    const auto who = Who("api", 1);
    sim->Run(who, 0, 40 * kMin, [](int64_t t) { return 20 * kMiB + 6 * kMiB * Hours(t); });
    sim->Run(who, 40 * kMin, 3 * kMin, [](int64_t) { return 10 * kMiB; });  // Dropped back.
    return sim;
  };
  const auto without = run(0);  // The lapse is real: with no tolerance the alert goes.
  ASSERT_EQ(without->events.size(), 1u);
  EXPECT_EQ(without->events[0].what, AlertEvent::What::kPending);
  EXPECT_TRUE(without->detector.active().empty());

  const auto kept = run(DetectorConfig{}.rules[0].resolve_after_ns);
  ASSERT_EQ(kept->events.size(), 1u);
  ASSERT_EQ(kept->detector.active().size(), 1u) << "kept through the lapse";
  const Alert& pending = kept->detector.active().begin()->second;
  EXPECT_EQ(pending.state, AlertState::kPending);
  EXPECT_EQ(pending.since_ns, kept->events[0].alert.since_ns);
}

TEST(Detector, CooldownKeepsAResolvedAlertFromFiringAgainAtOnce) {
  DetectorConfig config;
  config.rules[0].cooldown_ns = 10 * kNsPerHour;
  Sim sim(config);
  // Leak, pause long enough to resolve, leak again.
  sim.Run(Who("api", 1), 0, 5 * kNsPerHour, [](int64_t t) {
    const double h = Hours(t);
    return 20 * kMiB + 6 * kMiB * (std::min(h, 1.5) + std::max(0.0, h - 3.0));
  });
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 1);
  ASSERT_FALSE(sim.detector.active().empty()) << "pending again, held back by the cooldown";
  EXPECT_EQ(sim.detector.active().begin()->second.state, AlertState::kPending);
}

TEST(Detector, RulesSelectServicesAndTypesByGlob) {
  DetectorConfig config;
  config.rules[0].services = {"batch-*"};
  Sim sim(config);
  sim.Run(Who("api", 1), 0, 2 * kNsPerHour,
          [](int64_t t) { return 20 * kMiB + 6 * kMiB * Hours(t); });
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 0);
  config.rules[0].services = {"a?i"};
  config.rules[0].types = {"app.*"};
  Sim matching(config);
  matching.Run(Who("api", 1), 0, 2 * kNsPerHour,
               [](int64_t t) { return 20 * kMiB + 6 * kMiB * Hours(t); });
  EXPECT_EQ(matching.Fired(AlertKind::kLeak), 1);
}

TEST(Detector, NativeGrowthWithoutHeapGrowthIsItsOwnAlert) {
  Sim sim;
  sim.Run(
      Who("api", 1), 0, 2 * kNsPerHour, [](int64_t) { return 20 * kMiB; },
      [](int64_t t) { return 50 * kMiB + 30 * kMiB * Hours(t); });
  EXPECT_EQ(sim.Fired(AlertKind::kNative), 1);
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 0);
  EXPECT_NEAR(sim.FirstFiring()->bytes_per_hour / kMiB, 30, 1.5);
}

TEST(Detector, PythonLeakWithAllocatorOverheadIsNotANativeAlert) {
  Sim sim;
  // RSS grows with the heap plus 20% allocator overhead.
  sim.Run(
      Who("api", 1), 0, 2 * kNsPerHour, [](int64_t t) { return 20 * kMiB + 40 * kMiB * Hours(t); },
      [](int64_t t) { return 50 * kMiB + 8 * kMiB * Hours(t); });
  EXPECT_EQ(sim.Fired(AlertKind::kLeak), 1);
  EXPECT_EQ(sim.Fired(AlertKind::kNative), 0);
}

TEST(Detector, SilentAgentRaisesAnAlertThatResolvesWhenItSpeaksAgain) {
  Sim sim;
  const auto who = Who("api", 1);
  sim.Run(who, 0, 30 * kMin, [](int64_t) { return 20 * kMiB; });
  for (int64_t t = 30 * kMin; t < 40 * kMin; t += 30 * kS) sim.Pass(kT0 + t);  // 10 min gap.
  ASSERT_EQ(sim.Fired(AlertKind::kSilent), 1);
  EXPECT_EQ(sim.FirstFiring()->agents, std::vector<std::string>{Sim::store_key(who)});
  sim.Run(who, 40 * kMin, 2 * kMin, [](int64_t) { return 20 * kMiB; });
  EXPECT_EQ(sim.events.back().what, AlertEvent::What::kResolved);
  EXPECT_EQ(sim.events.back().alert.kind, AlertKind::kSilent);
}

TEST(Detector, ARestoredSilentAlertStaysUntilTheEvidenceSaysOtherwise) {
  // tidemarkd restarted; the kill -9ed agent's last summary is older than what was folded
  // back. Once its silent alert resolved at the first pass (hooks were told it recovered).
  Sim before;
  const auto who = Who("api", 1);
  before.Run(who, 0, 30 * kMin, [](int64_t) { return 20 * kMiB; });
  for (int64_t t = 30 * kMin; t < 40 * kMin; t += 30 * kS) before.Pass(kT0 + t);
  ASSERT_EQ(before.Fired(AlertKind::kSilent), 1);
  const Alert silent = *before.FirstFiring();

  Sim after;  // Restarted: an empty rolling state, the journal's firing alert.
  after.detector.Restore({silent});
  for (int64_t t = 3 * kNsPerHour; t < 4 * kNsPerHour; t += 30 * kS) after.Pass(kT0 + t);
  EXPECT_TRUE(after.events.empty());
  ASSERT_EQ(after.detector.active().count(silent.id), 1u);

  // Another service on the host changes nothing; a new instance of its own service replaces it.
  after.Run(Who("worker", 7), 4 * kNsPerHour, 2 * kMin, [](int64_t) { return 20 * kMiB; });
  EXPECT_TRUE(after.events.empty());
  after.Run(Who("api", 2, kT0 + 4 * kNsPerHour), 4 * kNsPerHour, 2 * kMin,
            [](int64_t) { return 20 * kMiB; });
  ASSERT_FALSE(after.events.empty());
  EXPECT_EQ(after.events.back().what, AlertEvent::What::kResolved);
  EXPECT_EQ(after.events.back().alert.id, silent.id);

  Sim forgotten;  // Nobody came back: forget_after (24 h) ends it.
  forgotten.detector.Restore({silent});
  forgotten.Pass(kT0 + 23 * kNsPerHour);
  EXPECT_TRUE(forgotten.events.empty());
  forgotten.Pass(kT0 + 25 * kNsPerHour);
  ASSERT_EQ(forgotten.events.size(), 1u);
  EXPECT_EQ(forgotten.events.back().what, AlertEvent::What::kResolved);
}

TEST(Detector, SilentAgentsDoNotKeepALeakAlertUp) {
  Sim sim;
  const auto who = Who("api", 1);
  sim.Run(who, 0, 90 * kMin, [](int64_t t) { return 20 * kMiB + 6 * kMiB * Hours(t); });
  ASSERT_EQ(sim.Fired(AlertKind::kLeak), 1);
  for (int64_t t = 90 * kMin; t < 150 * kMin; t += 30 * kS) sim.Pass(kT0 + t);
  bool resolved = false;
  for (const AlertEvent& e : sim.events) {
    resolved |= e.what == AlertEvent::What::kResolved && e.alert.kind == AlertKind::kLeak;
  }
  EXPECT_TRUE(resolved);
}

TEST(Detector, AlertNamesOtherGrowingTypes) {
  Sim sim;
  sim.RunTables([](double x) {
    return std::vector<snapshot::TypeStat>{
        {"app.Big", 1, static_cast<uint64_t>(10 * kMiB + 8 * kMiB * x), 0},
        {"app.Small", 1, static_cast<uint64_t>(1 * kMiB + 2 * kMiB * x), 0},
        {"dict", 1, static_cast<uint64_t>(5 * kMiB), 0}};
  });
  const Alert* big = nullptr;
  for (const auto& [id, al] : sim.detector.active()) {
    if (al.type == "app.Big") big = &al;
  }
  ASSERT_NE(big, nullptr);
  ASSERT_FALSE(big->top_growing.empty());
  EXPECT_EQ(big->top_growing.front().type, "app.Small");
}

TEST(Detector, ALeakDraggingItsContentsAlongIsOneAlertAboutTheFastestType) {
  Sim sim;
  // Each leaked order holds a str and a list: all three grow, the order fastest.
  sim.RunTables([](double x) {
    return std::vector<snapshot::TypeStat>{
        {"str", 1, static_cast<uint64_t>(5 * kMiB + 3 * kMiB * x), 0},
        {"app.Order", 1, static_cast<uint64_t>(1 * kMiB + 8 * kMiB * x), 0},
        {"list", 1, static_cast<uint64_t>(2 * kMiB + 4 * kMiB * x), 0}};
  });
  ASSERT_EQ(sim.Fired(AlertKind::kLeak), 1);
  const Alert* alert = sim.FirstFiring();
  EXPECT_EQ(alert->id, "leak/python-heap-growth/api");
  EXPECT_EQ(alert->type, "app.Order");
  ASSERT_EQ(alert->top_growing.size(), 2u);
  EXPECT_EQ(alert->top_growing[0].type, "list");
  EXPECT_EQ(alert->top_growing[1].type, "str");
}

TEST(Detector, TwoLeaksUnderDifferentHoldersAreTwoAlertsEachWithItsHolder) {
  Sim sim;
  // Orders leak into app.ORDERS dragging strs along; jobs leak into app.QUEUE on their own.
  const std::string base = "leak/python-heap-growth/api";
  bool investigated = false;
  for (int64_t t = 0; t < 2 * kNsPerHour; t += kMin) {
    const double x = static_cast<double>(t) / kNsPerHour;
    snapshot::Header h;
    h.identity = Who("api", 1);
    h.timestamp_ns = kT0 + t;
    const std::vector<snapshot::TypeStat> types = {
        {"str", 1, static_cast<uint64_t>(5 * kMiB + 3 * kMiB * x), 0},
        {"app.Order", 1, static_cast<uint64_t>(1 * kMiB + 8 * kMiB * x), 0},
        {"app.Job", 1, static_cast<uint64_t>(1 * kMiB + 4 * kMiB * x), 0}};
    sim.state.Fold("k", h, types, kT0 + t);
    sim.Pass(kT0 + t);
    if (!investigated && sim.detector.active().count(base)) {
      investigated = true;  // What the investigation's graph diff says, as the pipeline says it.
      auto holder = [](const std::string& path) {
        return std::vector<HeldBy>{{"dict@0x10", path, 100, 4096}};
      };
      ASSERT_TRUE(sim.detector.SetHolders(base, "app.Order", holder("app.ORDERS"), "",
                                          {"a:1", "a:2"}, "orders site", kT0 + t));
      sim.detector.SetCauses(
          "api",
          {{"app.Order", "app.ORDERS", "app.Order", holder("app.ORDERS"), {"a:1", "a:2"}, "", ""},
           // Objects both leaks refer to are held by what holds both: still the first leak.
           {"str", "app", "str", holder("app"), {"a:1", "a:2"}, "", ""},
           {"app.Job",
            "app.QUEUE",
            "app.Job",
            holder("app.QUEUE"),
            {"a:1", "a:2"},
            "jobs",
            "jobs site"}},
          kT0 + t);
    }
  }
  ASSERT_TRUE(investigated);
  std::map<std::string, const Alert*> fired;
  for (const AlertEvent& e : sim.events) {
    if (e.what == AlertEvent::What::kFiring) fired[e.alert.id] = &e.alert;
  }
  ASSERT_EQ(fired.size(), 2u);
  ASSERT_TRUE(fired.count(base));
  EXPECT_EQ(fired[base]->type, "app.Order");
  EXPECT_EQ(fired[base]->holders.front().path, "app.ORDERS");
  ASSERT_FALSE(fired[base]->top_growing.empty());
  EXPECT_EQ(fired[base]->top_growing.front().type, "str");  // Dragged along: the same leak.
  const Alert* jobs = fired[base + "/app.QUEUE"];
  ASSERT_NE(jobs, nullptr);
  EXPECT_EQ(jobs->type, "app.Job");
  ASSERT_EQ(jobs->holders.size(), 1u);
  EXPECT_EQ(jobs->holders.front().path, "app.QUEUE");
  EXPECT_EQ(jobs->note, "jobs");
  EXPECT_EQ(jobs->site, "jobs site");  // Each alert names its own allocation site.
  EXPECT_EQ(fired[base]->site, "orders site");
  EXPECT_NE(fired[base]->Summary().find("; orders site"), std::string::npos);
  EXPECT_EQ(jobs->graphs, (std::vector<std::string>{"a:1", "a:2"}));
  for (const TypeGrowthRow& row : jobs->top_growing) EXPECT_NE(row.type, "app.Order");
}

TEST(Detector, CausesPerServiceAreBoundedAndExpire) {
  Detector detector;
  for (size_t i = 0; i < Detector::kMaxCausesPerService + 5; ++i) {
    detector.SetCauses("api", {{"t" + std::to_string(i), "app.X", "", {}, {}, "", ""}},
                       kT0 + static_cast<int64_t>(i));
  }
  EXPECT_EQ(detector.cause_count("api"), Detector::kMaxCausesPerService);
  RollingState state{kNsPerHour};
  detector.Evaluate(state, kT0 + Detector::kCauseTtlNs / 2);
  EXPECT_EQ(detector.cause_count("api"), Detector::kMaxCausesPerService);
  detector.Evaluate(state, kT0 + Detector::kCauseTtlNs + kNsPerHour);
  EXPECT_EQ(detector.cause_count("api"), 0u);
}

TEST(RollingState, BucketedRateMatchesTheTrueRate) {
  RollingState state(kNsPerHour);
  snapshot::Identity who = Who("api", 1);
  for (int64_t t = 0; t < 3 * kNsPerHour; t += 17 * kS) {
    snapshot::Header h;
    h.identity = who;
    h.timestamp_ns = kT0 + t;
    std::vector<snapshot::TypeStat> types = {
        {"app.Thing", static_cast<uint64_t>(t / kS),
         static_cast<uint64_t>(100 * kMiB + 3 * kMiB * Hours(t)), 0}};
    state.Fold("k", h, types, kT0 + t);
  }
  const auto* a = state.Find("k");
  ASSERT_NE(a, nullptr);
  std::vector<Sample> samples;
  state.Samples(*a, 0, samples);
  const Growth g = ComputeGrowth(samples, kNsPerHour);
  EXPECT_NEAR(g.bytes_per_hour / kMiB, 3.0, 0.03);
  EXPECT_NEAR(g.count_per_hour, 3600, 36);
  EXPECT_GE(g.covered_ns, kNsPerHour - state.bucket_ns());
  EXPECT_LE(g.covered_ns, kNsPerHour);
}

TEST(RollingState, MemoryPerSeriesIsBoundedWhateverTheHistoryLength) {
  RollingState state(kNsPerHour);
  // 20 agents of 200 types each: type names are shared, as across a fleet.
  std::vector<snapshot::TypeStat> types;
  for (int i = 0; i < 200; ++i) types.push_back({"app.models.Type" + std::to_string(i), 5, 500, 0});
  auto fold_for = [&](int64_t hours) {
    for (int64_t t = 0; t < hours * kNsPerHour; t += 10 * kS) {
      for (int agent = 0; agent < 20; ++agent) {
        snapshot::Header h;
        h.identity = Who("api", agent);
        h.timestamp_ns = kT0 + t;
        state.Fold("agent-" + std::to_string(agent), h, types, kT0 + t);
      }
    }
  };
  fold_for(1);
  const size_t after_an_hour = state.memory_bytes();
  fold_for(24);
  EXPECT_EQ(state.memory_bytes(), after_an_hour);
  EXPECT_EQ(state.series(), 20u * 200u);
  EXPECT_LE(after_an_hour / state.series(), 256u);
}

TEST(RollingState, TypesGoneForTheWholeSpanAreDropped) {
  RollingState state(kNsPerHour);
  for (int64_t t = 0; t < 3 * kNsPerHour; t += kMin) {
    snapshot::Header h;
    h.identity = Who("api", 1);
    h.timestamp_ns = kT0 + t;
    std::vector<snapshot::TypeStat> types = {{"stays", 1, 100, 0}};
    if (t < kNsPerHour) types.push_back({"goes", 1, 100, 0});
    state.Fold("k", h, types, kT0 + t);
  }
  EXPECT_EQ(state.series(), 1u);
  EXPECT_EQ(state.names().Name(state.Find("k")->type_id(0)), "stays");
}

// Folds agent `agent` (100 types of its own, as a hostile or very varied fleet would send) at
// `t`; false if the state did not take it.
bool FoldOwnTypes(RollingState& state, int agent, int64_t t) {
  std::vector<snapshot::TypeStat> types;
  for (int i = 0; i < 100; ++i) {
    types.push_back({"a" + std::to_string(agent) + ".Type" + std::to_string(i), 1, 100, 0});
  }
  snapshot::Header h;
  h.identity = Who("api", agent);
  h.timestamp_ns = t;
  return state.Fold("agent-" + std::to_string(agent), h, types, t);
}

TEST(RollingState, AFullStateForgetsQuietAgentsToFollowNewOnes) {
  const size_t bound = 4 << 20;
  RollingState state(kNsPerHour, 5000, bound);
  size_t peak = 0;
  for (int agent = 0; agent < 2000; ++agent) {  // Each heard once, 10 minutes apart.
    EXPECT_TRUE(FoldOwnTypes(state, agent, kT0 + agent * 600 * kS));
    peak = std::max(peak, state.memory_bytes());
  }
  EXPECT_LE(peak, bound);
  EXPECT_GT(state.evicted(), 0u);
  EXPECT_EQ(state.refused(), 0u);
  EXPECT_EQ(state.agents().size() + state.evicted(), 2000u);
  EXPECT_NE(state.Find("agent-1999"), nullptr);  // The newest are kept...
  EXPECT_EQ(state.Find("agent-0"), nullptr);     // ...the oldest forgotten,
  // ...and so are their type names.
  EXPECT_LT(state.names().memory_bytes(), bound / 2);
  EXPECT_EQ(state.names().Find("a0.Type0"), -1);
  EXPECT_NE(state.names().Find("a1999.Type0"), -1);
}

TEST(RollingState, AFullStateOfAgentsHeardRecentlyKeepsThemAndRefusesNewOnes) {
  // 2000 agents each sending every 100 s, in turn, into room for about 180: forgetting the
  // least recently heard would forget each agent before its next summary.
  const size_t bound = 4 << 20;
  RollingState state(kNsPerHour, 5000, bound);
  for (int round = 0; round < 5; ++round) {
    for (int agent = 0; agent < 2000; ++agent) {
      FoldOwnTypes(state, agent, kT0 + round * 100 * kS + agent * kS / 20);
      EXPECT_LE(state.memory_bytes(), bound);
    }
  }
  const size_t followed = state.agents().size();
  EXPECT_GT(followed, 100u);
  EXPECT_EQ(state.evicted(), 0u);
  EXPECT_EQ(state.refused(), 5 * (2000 - followed));
  for (size_t agent = 0; agent < followed; ++agent) {  // The first ones, with all five summaries.
    const RollingState::Agent* a = state.Find("agent-" + std::to_string(agent));
    ASSERT_NE(a, nullptr) << agent;
    EXPECT_EQ(a->summaries, 5u);
  }
}

TEST(RollingState, ForgettingAnAgentFreesTheNamesOnlyItUsed) {
  RollingState state(kNsPerHour);
  snapshot::Header h;
  h.timestamp_ns = kT0;
  h.identity = Who("api", 1);
  state.Fold("one", h, std::vector<snapshot::TypeStat>{{"shared", 1, 1, 0}, {"mine", 1, 1, 0}},
             kT0);
  h.identity = Who("api", 2);
  state.Fold("two", h, std::vector<snapshot::TypeStat>{{"shared", 1, 1, 0}}, kT0);
  state.Forget("one");
  EXPECT_EQ(state.names().Find("mine"), -1);
  EXPECT_NE(state.names().Find("shared"), -1);
  state.Fold("one", h, std::vector<snapshot::TypeStat>{{"again", 1, 1, 0}}, kT0);
  EXPECT_EQ(state.names().Name(state.Find("one")->type_id(0)), "again");
}

TEST(RollingState, SummaryOlderThanTheRingIsIgnored) {
  RollingState state(kNsPerHour);
  snapshot::Header h;
  h.identity = Who("api", 1);
  h.timestamp_ns = kT0 + 5 * kNsPerHour;
  state.Fold("k", h, {}, 0);
  h.timestamp_ns = kT0;
  EXPECT_FALSE(state.Fold("k", h, {}, 0));
  EXPECT_EQ(state.late(), 1u);
}

TEST(ServiceView, SumsAgentsKeepsTheTopKAndTheTypesAskedFor) {
  RollingState state(kNsPerHour);
  for (int pid = 1; pid <= 3; ++pid) {
    for (int64_t t = 0; t < 30 * kMin; t += kMin) {
      snapshot::Header h;
      h.identity = Who("api", pid);
      h.timestamp_ns = kT0 + t;
      h.rss_bytes = 100;
      h.bytes = 60;
      std::vector<snapshot::TypeStat> types = {
          {"big", 10, 1000, 0},
          {"middle", 5, 500, 0},
          {"grows", 1, static_cast<uint64_t>(10 + 6 * kMiB * Hours(t)), 0}};
      state.Fold("api-" + std::to_string(pid), h, types, kT0 + t);
    }
  }
  ServiceViewOptions options;
  options.top_k = 1;
  options.always = {{"api", "middle"}, {"api", "absent"}, {"other", "big"}};
  const auto rows = ServiceView(state, options);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].service, "api");
  EXPECT_EQ(rows[0].agents, 3u);
  EXPECT_EQ(rows[0].rss_bytes, 300);
  ASSERT_EQ(rows[0].types.size(), 2u) << "the top 1 and the one asked for";
  EXPECT_EQ(rows[0].types[0].type, "grows");
  EXPECT_NEAR(rows[0].types[0].bytes_per_hour / kMiB, 18, 0.5) << "three agents' rates summed";
  EXPECT_EQ(rows[0].types[1].type, "middle");
  EXPECT_EQ(rows[0].types[1].bytes, 1500);
  EXPECT_EQ(rows[0].types[1].count, 15);
  options.max_services = 0;
  EXPECT_TRUE(ServiceView(state, options).empty());
}

TEST(Growth, LastSnapshotWindowComparesTheNewestTwo) {
  std::vector<Sample> s = {{0, 1, 100}, {kS, 2, 150}, {2 * kS, 5, 400}};
  const Growth g = ComputeGrowth(s, 0);
  EXPECT_EQ(g.points, 2u);
  EXPECT_EQ(g.bytes_delta, 250);
  EXPECT_EQ(g.count_delta, 3);
}

TEST(Glob, MatchesStarsAndQuestionMarks) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("app.*", "app.models.Order"));
  EXPECT_TRUE(GlobMatch("*Order", "app.models.Order"));
  EXPECT_TRUE(GlobMatch("a?c*z", "abcxyz"));
  EXPECT_FALSE(GlobMatch("app.*", "dict"));
  EXPECT_FALSE(GlobMatch("a?c", "ac"));
  EXPECT_TRUE(GlobMatch("*a*a*a*", "aaa"));
}

TEST(AlertJson, RoundTripsEveryField) {
  Alert a;
  a.id = "leak/r/api";
  a.kind = AlertKind::kLeak;
  a.state = AlertState::kFiring;
  a.rule = "r";
  a.service = "api";
  a.type = "app.Thing";
  a.agents = {"api/h/1"};
  a.labels = {{"env", "prod"}};
  a.since_ns = kT0;
  a.fired_ns = kT0 + kS;
  a.updated_ns = kT0 + 2 * kS;
  a.bytes_now = 123;
  a.bytes_per_hour = 4.5;
  a.window_ns = 1800 * kS;
  a.top_growing = {{"dict", 1, 2, 3, 4}};
  a.holders_type = "app.Thing";
  a.holders = {{"list of 3 items", "app.CACHE", 20, 2000}};
  a.note = "n";
  a.graphs = {"api/h/1@1:7", "api/h/1@1:9"};
  auto back = AlertFromJson(ToJson(a));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(ToJson(*back), ToJson(a));
  EXPECT_EQ(ToJson(a)["since"], Rfc3339(kT0));
  EXPECT_FALSE(AlertFromJson(nlohmann::json{{"id", 1}}));
  nlohmann::json old = ToJson(a);  // Journaled before graphs were recorded.
  old.erase("graphs");
  old.erase("evidence");
  ASSERT_TRUE(AlertFromJson(old));
  EXPECT_TRUE(AlertFromJson(old)->graphs.empty());
}

TEST(AlertJson, TheEvidenceCommandsOpenBothGraphs) {
  Alert a;
  a.type = "bytes";
  EXPECT_TRUE(a.EvidenceCommands().empty()) << "no graphs, no commands";
  a.holders_type = "app.Record";
  a.graphs = {"api/h/1@1:7", "api/h/1@1:9"};
  EXPECT_EQ(a.EvidenceCommands(),
            (std::vector<std::string>{"tidemark gdiff api/h/1@1:7 api/h/1@1:9",
                                      "tidemark why api/h/1@1:9 app.Record"}));
  EXPECT_EQ(ToJson(a)["evidence"], nlohmann::json(a.EvidenceCommands()));
}

TEST(AlertSummary, NamesWhatTheLeakIsMadeOfBeforeTheGrowingType) {
  Alert a;
  a.service = "api";
  a.type = "bytes";
  a.agents = {"api/h/1@1"};
  EXPECT_EQ(a.Summary().rfind("bytes grows ", 0), 0u) << a.Summary();
  a.holders_type = "app.Record";
  a.holders = {{"list", "app.RECORDS", 3, 300}};
  EXPECT_EQ(a.Summary().rfind("app.Record objects hold the growth: bytes grows ", 0), 0u)
      << a.Summary();
  EXPECT_NE(a.Summary().find("; held by app.RECORDS"), std::string::npos);
}

}  // namespace
}  // namespace tidemark::diff
