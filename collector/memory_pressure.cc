#include "collector/memory_pressure.h"

#include <algorithm>

#include "analysis/dominators.h"
#include "analysis/heap_graph.h"
#include "analysis/holders.h"
#include "diff/sites.h"
#include "snapshot/wire.h"

namespace tidemark::collector {
namespace {

// The largest types of a graph and what holds the largest; a note if it did not load.
void AnalyseGraph(std::string message, diff::Alert& alert) {
  auto decoded = snapshot::Decode(message);
  std::string().swap(message);
  if (!decoded) {
    alert.note = "the graph snapshot did not load: " + decoded.error().message;
    return;
  }
  const std::vector<diff::SiteRow> sites = diff::SiteRows(*decoded);
  auto g = analysis::HeapGraph::Load(std::move(*decoded));
  if (!g) {
    alert.note = "the graph snapshot did not load: " + g.error().message;
    return;
  }
  g->BuildParents();
  const analysis::Dominators d = analysis::Dominators::Compute(*g);
  const auto largest = analysis::LargestTypesHeld(*g, d, kMemoryAlertTypes, 3);
  for (const analysis::TypeHeld& t : largest) {
    alert.top_growing.push_back(
        {t.type, static_cast<double>(t.bytes), static_cast<double>(t.count), 0, 0});
  }
  if (largest.empty()) return;
  const analysis::TypeHeld& top = largest.front();
  alert.type = top.type;
  alert.bytes_now = static_cast<double>(top.bytes);
  alert.count_now = static_cast<double>(top.count);
  for (const analysis::Holder& h : top.holders) {
    alert.holders.push_back({h.description, h.path, h.count, h.bytes});
  }
  alert.site = diff::LiveSiteLine(sites, top.type);
  alert.note = "the largest type is " + top.type + ": " + std::to_string(top.count) + " objects, " +
               diff::HumanBytes(static_cast<double>(top.bytes)) +
               (top.holders.empty() ? ""
                                    : ", " + diff::HumanBytes(top.holders.front().bytes) +
                                          " of it held by " + top.holders.front().description);
  if (g->refs_capped())
    alert.note += "; the agent capped reference lists: holders may be incomplete";
}

}  // namespace

diff::Alert MemoryPressureAlert(MemorySnapshot s) {
  const snapshot::Identity& who = s.header.identity;
  diff::Alert alert;
  alert.kind = diff::AlertKind::kMemory;
  alert.id = "memory/" + who.service + "/" + who.host + "/" + std::to_string(who.pid);
  alert.rule = "memory-pressure";
  alert.service = who.service;
  alert.agents = {s.agent};
  alert.labels = who.labels;
  alert.memory = s.header.memory;
  alert.note = s.note;
  if (!s.message.empty()) {
    alert.graphs = {s.reference};
    AnalyseGraph(std::move(s.message), alert);
    return alert;
  }
  std::sort(s.types.begin(), s.types.end(),
            [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
  for (size_t i = 0; i < s.types.size() && i < kMemoryAlertTypes; ++i) {
    alert.top_growing.push_back({s.types[i].name, static_cast<double>(s.types[i].bytes),
                                 static_cast<double>(s.types[i].count), 0, 0});
  }
  if (!alert.top_growing.empty()) {
    alert.type = alert.top_growing.front().type;
    alert.bytes_now = alert.top_growing.front().bytes_now;
    alert.count_now = alert.top_growing.front().count_now;
  }
  return alert;
}

}  // namespace tidemark::collector
