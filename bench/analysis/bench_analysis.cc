// bench/analysis: loading and questioning one graph snapshot, timed in one process.
//
//   bench_analysis SNAPSHOT [--paths 1000] [--markdown]
//
// Reports: read + decode time, graph build time (collapse, order by address, CSR), the
// structure's bytes per object and per reference with parents built (against the budget of
// 32 bytes/object + 8 bytes/reference), peak RSS of the load, BuildParents, the dominator
// tree, the type table, and path to root for N random objects. bench/analysis/RESULTS.md
// keeps the figures.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>

#include "analysis/dominators.h"
#include "analysis/heap_graph.h"
#include "analysis/queries.h"
#include "snapshot/wire.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

uint64_t StatusKb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stoull(line.substr(std::string(field).size()));
  }
  return 0;
}

void ResetPeak() { std::ofstream("/proc/self/clear_refs") << "5"; }

}  // namespace

int main(int argc, char** argv) {
  using namespace tidemark;
  if (argc < 2) {
    std::cerr << "usage: bench_analysis SNAPSHOT [--paths N] [--markdown]\n";
    return 2;
  }
  size_t path_queries = 1000;
  bool markdown = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--paths" && i + 1 < argc) path_queries = std::stoul(argv[++i]);
    if (a == "--markdown") markdown = true;
  }
  const uint64_t rss_start_kb = StatusKb("VmRSS:");
  ResetPeak();
  auto t = Clock::now();
  std::string message;
  {
    std::ifstream in(argv[1], std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    message = bytes.str();
  }
  auto decoded = snapshot::Decode(message);
  if (!decoded) {
    std::cerr << decoded.error().message << "\n";
    return 1;
  }
  const size_t message_bytes = message.size();
  std::string().swap(message);
  const double decode_s = Seconds(t);
  const uint64_t objects_in_file = decoded->graph.object_count();
  t = Clock::now();
  auto graph = analysis::HeapGraph::Load(std::move(*decoded));
  const double build_s = Seconds(t);
  if (!graph) {
    std::cerr << graph.error().message << "\n";
    return 1;
  }

  analysis::HeapGraph& g = *graph;
  t = Clock::now();
  g.BuildParents();
  const double parents_s = Seconds(t);
  const uint64_t peak_load_kb = StatusKb("VmHWM:");
  const uint64_t rss_loaded_kb = StatusKb("VmRSS:");
  const double budget = 32.0 * g.size() + 8.0 * g.reference_count();

  ResetPeak();
  t = Clock::now();
  const analysis::Dominators d = analysis::Dominators::Compute(g);
  const double dominators_s = Seconds(t);
  const uint64_t peak_dominators_kb = StatusKb("VmHWM:");
  t = Clock::now();
  const auto rows = analysis::TypeTable(g);
  const double summary_s = Seconds(t);

  std::mt19937_64 rng(7);
  analysis::PathFinder finder(g);
  size_t found = 0, steps = 0;
  t = Clock::now();
  for (size_t k = 0; k < path_queries; ++k) {
    const uint32_t target = static_cast<uint32_t>(rng() % g.size());
    auto paths = finder.Find({target}, analysis::PathOptions{.max_paths = 1});
    if (!paths.empty()) {
      ++found;
      steps += paths[0].objects.size() - 1;
    }
  }
  const double paths_s = Seconds(t);

  const double mb = 1e6;
  if (markdown) {
    std::printf("| measure | value |\n|---|---|\n");
    std::printf(
        "| snapshot | %s: %.1f MB, %llu objects (%zu after folding instance dicts), %llu "
        "references |\n",
        argv[1], message_bytes / mb, static_cast<unsigned long long>(objects_in_file), g.size(),
        static_cast<unsigned long long>(g.reference_count()));
    std::printf("| read + decode | %.3f s |\n", decode_s);
    std::printf("| build (fold dicts, order by address, CSR, roots) | %.3f s |\n", build_s);
    std::printf("| **load total** (read, decode, build) | **%.3f s** |\n", decode_s + build_s);
    std::printf("| parents (de-duplicated, capped at 100) | %.3f s |\n", parents_s);
    std::printf(
        "| structure with parents | %.1f MB: %.1f B/object + 8 B/reference is %.0f%% of the "
        "32 + 8 budget |\n",
        g.memory_bytes() / mb, (g.memory_bytes() - 8.0 * g.reference_count()) / g.size(),
        100.0 * g.memory_bytes() / budget);
    std::printf(
        "| RSS after load and parents | %.1f MB (%.0f B/object); peak during load %.1f MB |\n",
        (rss_loaded_kb - rss_start_kb) * 1024 / mb,
        (rss_loaded_kb - rss_start_kb) * 1024.0 / g.size(), peak_load_kb * 1024 / mb);
    std::printf("| **dominator tree** + retained sizes | **%.3f s** (peak RSS %.1f MB) |\n",
                dominators_s, peak_dominators_kb * 1024 / mb);
    std::printf("| type table (%zu types) | %.3f s |\n", rows.size(), summary_s);
    std::printf(
        "| path to root, %zu random objects | %.3f s (%.2f ms each; %zu found, %.1f steps on "
        "average) |\n",
        path_queries, paths_s, 1e3 * paths_s / path_queries, found,
        found ? static_cast<double>(steps) / found : 0.0);
  } else {
    std::printf(
        "{\"objects\": %zu, \"references\": %llu, \"decode_s\": %.3f, \"build_s\": %.3f, "
        "\"parents_s\": %.3f, \"memory_bytes\": %llu, \"budget_bytes\": %.0f, \"dominators_s\": "
        "%.3f, "
        "\"summary_s\": %.3f, \"paths_s\": %.3f, \"peak_load_kb\": %llu}\n",
        g.size(), static_cast<unsigned long long>(g.reference_count()), decode_s, build_s,
        parents_s, static_cast<unsigned long long>(g.memory_bytes()), budget, dominators_s,
        summary_s, paths_s, static_cast<unsigned long long>(peak_load_kb));
  }
  return 0;
}
