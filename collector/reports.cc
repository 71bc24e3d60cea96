#include "collector/reports.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "diff/json.h"
#include "diff/type_diff.h"
#include "snapshot/wire.h"
#include "store/store.h"

namespace tidemark::collector {

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

}  // namespace tidemark::collector
