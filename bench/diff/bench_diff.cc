// bench_diff: the diff pipeline's costs at fleet scale (10,000 agents x 500 types by default).
//
//   fold          Summary folded into the rolling state, per summary (decoded already).
//   decode+fold   The same from the message as the agent sends it (zstd + msgpack decode first).
//   baseline      In the same process: hashing every type name of the summary once and summing
//                 its counts -- the least any per-type fold must do. Ratios are to it.
//   detector      One full detector pass (default rules, native, silence) over every series.
//   memory        Rolling-state bytes per (agent, type) series, as accounted and as RSS grew.
//
// Usage: bench_diff [--agents N] [--types N] [--rounds N] [--markdown]
#include <sys/resource.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "diff/detector.h"
#include "diff/rolling.h"
#include "diff/service_view.h"
#include "snapshot/wire.h"

namespace {

using tidemark::diff::Detector;
using tidemark::diff::RollingState;
using tidemark::snapshot::Header;
using tidemark::snapshot::TypeStat;
using Clock = std::chrono::steady_clock;

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kT0 = int64_t{1'790'000'000} * kS;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

uint64_t RssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

struct Fleet {
  std::vector<Header> headers;                // One per agent.
  std::vector<std::vector<TypeStat>> tables;  // One per service; agents share their service's.
  std::vector<std::string> keys;
};

// 20 services; each agent's table: 100 builtin names every service has, 400 of its service.
Fleet MakeFleet(int agents, int types) {
  Fleet f;
  const int services = 20;
  const int shared = std::min(100, types);
  for (int s = 0; s < services; ++s) {
    std::vector<TypeStat> table;
    for (int t = 0; t < types; ++t) {
      std::string name = t < shared
                             ? "builtins.type_" + std::to_string(t)
                             : "service" + std::to_string(s) + ".models.Model" + std::to_string(t);
      table.push_back(
          {name, static_cast<uint64_t>(100 + t), static_cast<uint64_t>(6400 + 64 * t), 64});
    }
    f.tables.push_back(std::move(table));
  }
  for (int a = 0; a < agents; ++a) {
    Header h;
    h.identity.service = "service" + std::to_string(a % services);
    h.identity.host = "host-" + std::to_string(a / 8);
    h.identity.pid = 1000 + a;
    h.identity.start_time_ns = kT0;
    h.identity.labels = {{"env", "prod"}};
    f.headers.push_back(h);
    f.keys.push_back(h.identity.service + "/" + h.identity.host + "/" + std::to_string(a));
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int agents = 10'000, types = 500, rounds = 24;
  bool markdown = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (a == "--agents")
      agents = next();
    else if (a == "--types")
      types = next();
    else if (a == "--rounds")
      rounds = next();
    else if (a == "--markdown")
      markdown = true;
    else {
      std::fprintf(stderr,
                   "usage: bench_diff [--agents N] [--types N] [--rounds N] [--markdown]\n");
      return 2;
    }
  }
  Fleet fleet = MakeFleet(agents, types);
  std::mt19937 rng(1);
  std::normal_distribution<double> noise(0, 0.02);

  // Baseline: hash every name and sum every count, as any per-type fold must at least.
  size_t sink = 0;
  auto baseline_start = Clock::now();
  for (int a = 0; a < agents; ++a) {
    for (const TypeStat& t : fleet.tables[a % fleet.tables.size()]) {
      sink += std::hash<std::string_view>{}(t.name) + t.count;
    }
  }
  const double baseline_us = Seconds(Clock::now() - baseline_start) / agents * 1e6;

  // Fold `rounds` summaries per agent, 150 s apart: a 1 h span of history at 24 x 2.5 min.
  const uint64_t rss_before = RssBytes();
  RollingState state(int64_t{3600} * kS);
  double fold_seconds = 0;
  std::vector<TypeStat> table;
  for (int r = 0; r < rounds; ++r) {
    for (int a = 0; a < agents; ++a) {
      table = fleet.tables[a % fleet.tables.size()];
      // Noise on every type; 1% of agents leak in type 7.
      for (TypeStat& t : table) t.bytes = static_cast<uint64_t>(t.bytes * (1 + noise(rng)));
      if (a % 100 == 0) table[7].bytes += static_cast<uint64_t>(r) * 200'000;
      Header& h = fleet.headers[a];
      h.timestamp_ns = kT0 + r * 150 * kS + a * 1000;
      const auto start = Clock::now();
      state.Fold(fleet.keys[a], h, table, h.timestamp_ns);
      fold_seconds += Seconds(Clock::now() - start);
    }
  }
  const double fold_us = fold_seconds / (static_cast<double>(agents) * rounds) * 1e6;
  const uint64_t rss_after = RssBytes();

  // The detector: every agent live at `now`.
  Detector detector;
  const int64_t now = kT0 + (rounds - 1) * 150 * kS + 10 * kS;
  const auto detect_start = Clock::now();
  const auto pass = detector.Evaluate(state, now);
  const double detect_s = Seconds(Clock::now() - detect_start);
  const auto second_start = Clock::now();
  detector.Evaluate(state, now + 30 * kS);
  const double detect2_s = Seconds(Clock::now() - second_start);
  const auto view_start = Clock::now();
  const auto view = tidemark::diff::ServiceView(state, {});
  const double view_s = Seconds(Clock::now() - view_start);

  // Decode + fold: one message per service, decoded and folded for every agent once more.
  std::vector<std::string> messages;
  for (size_t s = 0; s < fleet.tables.size(); ++s) {
    tidemark::snapshot::Snapshot snap;
    snap.header = fleet.headers[s];
    snap.header.seq = 1;
    snap.header.types = types;
    snap.types = fleet.tables[s];
    messages.push_back(*tidemark::snapshot::Encode(snap));
  }
  double decode_fold_seconds = 0;
  for (int a = 0; a < agents; ++a) {
    const auto start = Clock::now();
    auto decoded = tidemark::snapshot::Decode(messages[a % messages.size()]);
    decoded->header.identity = fleet.headers[a].identity;
    decoded->header.timestamp_ns = kT0 + (rounds + 1) * 150 * kS + a * 1000;
    state.Fold(fleet.keys[a], decoded->header, decoded->types, decoded->header.timestamp_ns);
    decode_fold_seconds += Seconds(Clock::now() - start);
  }
  const double decode_fold_us = decode_fold_seconds / agents * 1e6;

  const double series = static_cast<double>(state.series());
  const double accounted = state.memory_bytes() / series;
  const double by_rss = static_cast<double>(rss_after - rss_before) / series;
  const char* row = markdown ? "| %-34s | %14s | %s |\n" : "%-34s %14s   %s\n";
  auto print = [&](const char* what, const std::string& value, const std::string& note) {
    std::printf(row, what, value.c_str(), note.c_str());
  };
  auto fmt = [](const char* f, double v) {
    char out[64];
    std::snprintf(out, sizeof out, f, v);
    return std::string(out);
  };
  std::printf("%d agents x %d types (%.0f series), %d summaries per agent folded, sink %zu\n\n",
              agents, types, series, rounds, sink % 10);
  if (markdown) std::printf("| measure | value | target, ratio |\n|---|---:|---|\n");
  print("fold, per summary", fmt("%.1f us", fold_us),
        "<= 20 us; " + fmt("%.1fx", fold_us / baseline_us) + " the baseline");
  print("decode + fold, per summary", fmt("%.1f us", decode_fold_us),
        "<= 100 us; " + fmt("%.1fx", decode_fold_us / baseline_us) + " the baseline");
  print("baseline (hash names, sum counts)", fmt("%.2f us", baseline_us), "per summary");
  print("detector pass", fmt("%.3f s", detect_s),
        "<= 1 s; " + fmt("%.0f", static_cast<double>(pass.series_examined)) + " of " +
            fmt("%.0f", static_cast<double>(pass.series_checked)) +
            " series past the cheap bound, " + std::to_string(pass.events.size()) +
            " alerts pending");
  print("detector pass, again", fmt("%.3f s", detect2_s), "alert state already built");
  print(
      "per-service view (/metrics)", fmt("%.3f s", view_s),
      "top 20 types of " + std::to_string(view.size()) + " services, with rates; after each pass");
  print("memory per series (accounted)", fmt("%.0f B", accounted), "<= 256 B");
  print("memory per series (RSS growth)", fmt("%.0f B", by_rss),
        "<= 256 B; includes allocator overhead");
  return 0;
}
