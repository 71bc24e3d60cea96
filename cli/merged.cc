#include "cli/merged.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "store/journal.h"

namespace tidemark::cli {
namespace {

using snapshot::Fail;
using snapshot::Result;

// Renumbers agents by name: (source, store id) -> merged id.
class AgentNumbers {
 public:
  void Add(size_t source, const std::map<uint32_t, store::AgentRecord>& agents) {
    for (const auto& [id, record] : agents) {
      const std::string name = snapshot::AgentName(record.identity);
      auto [at, added] = by_name_.emplace(name, 0);
      if (added) {
        at->second = static_cast<uint32_t>(by_name_.size());
        merged_[at->second] = store::AgentRecord{at->second, record.identity};
      }
      ids_[{source, id}] = at->second;
    }
  }
  // 0: an id the source's agents do not name.
  uint32_t Of(size_t source, uint32_t id) const {
    auto found = ids_.find({source, id});
    return found == ids_.end() ? 0 : found->second;
  }
  const std::map<uint32_t, store::AgentRecord>& agents() const { return merged_; }

 private:
  std::map<std::string, uint32_t> by_name_;
  std::map<std::pair<size_t, uint32_t>, uint32_t> ids_;
  std::map<uint32_t, store::AgentRecord> merged_;
};

int64_t LastEvent(const diff::Alert& a) {
  return std::max({a.fired_ns, a.resolved_ns, a.updated_ns, a.since_ns});
}

}  // namespace

Result<store::Catalog> ReadMergedCatalog(const std::vector<Source>& sources) {
  AgentNumbers numbers;
  std::vector<store::Catalog> catalogs;
  for (size_t s = 0; s < sources.size(); ++s) {
    auto catalog = store::ReadCatalog(sources[s].dir, *sources[s].fs);
    if (!catalog) return Fail(sources[s].dir + ": " + catalog.error().message);
    numbers.Add(s, catalog->agents);
    catalogs.push_back(std::move(*catalog));
  }
  store::Catalog merged;
  merged.agents = numbers.agents();
  std::set<std::tuple<uint32_t, int, uint64_t>> seen;
  for (size_t s = 0; s < catalogs.size(); ++s) {
    for (store::IndexEntry e : catalogs[s].entries) {
      e.agent = numbers.Of(s, e.agent);
      if (e.agent != 0 && seen.emplace(e.agent, static_cast<int>(e.kind), e.seq).second) {
        merged.entries.push_back(e);
      }
    }
    for (const std::string& p : catalogs[s].problems) {
      merged.problems.push_back(sources[s].dir + ": " + p);
    }
  }
  return merged;
}

Result<MergedSeries> ReadMergedSeries(const std::vector<Source>& sources, int64_t since_ns) {
  AgentNumbers numbers;
  MergedSeries merged;
  for (size_t s = 0; s < sources.size(); ++s) {
    auto agents = store::ReadAgents(sources[s].dir, *sources[s].fs);
    if (!agents) return Fail(sources[s].dir + ": " + agents.error().message);
    numbers.Add(s, *agents);
    auto points = store::ReadSeries(sources[s].dir, std::nullopt, since_ns, *sources[s].fs);
    if (!points) return Fail(sources[s].dir + ": " + points.error().message);
    for (store::SeriesPoint& p : *points) {
      p.agent = numbers.Of(s, p.agent);
      if (p.agent != 0) merged.points.push_back(std::move(p));
    }
  }
  merged.agents = numbers.agents();
  std::stable_sort(merged.points.begin(), merged.points.end(),
                   [](const auto& a, const auto& b) { return a.timestamp_ns < b.timestamp_ns; });
  std::set<std::tuple<uint32_t, uint64_t, bool>> seen;
  std::erase_if(merged.points, [&](const store::SeriesPoint& p) {
    return !seen.emplace(p.agent, p.seq, p.goodbye).second;
  });
  return merged;
}

Result<diff::AlertLog> ReadMergedAlerts(const std::vector<Source>& sources) {
  diff::AlertLog merged;
  std::map<std::string, diff::Alert> newest;
  for (const Source& source : sources) {
    auto records = store::ReadJournal(source.dir + "/alerts.jnl", "TDMA", *source.fs);
    if (!records) return Fail(source.dir + ": " + records.error().message);
    diff::AlertLog log = diff::ReplayAlertRecords(*records);
    merged.unreadable += log.unreadable;
    for (diff::Alert& a : log.active) {
      auto [at, added] = newest.emplace(a.id, a);
      if (!added && LastEvent(a) > LastEvent(at->second)) at->second = std::move(a);
    }
    for (diff::Alert& a : log.history) merged.history.push_back(std::move(a));
  }
  // An alert firing on one collector and resolved later on another is resolved.
  for (auto& [id, a] : newest) {
    const bool superseded = std::any_of(
        merged.history.begin(), merged.history.end(),
        [&](const diff::Alert& h) { return h.id == id && LastEvent(h) > LastEvent(a); });
    if (!superseded) merged.active.push_back(std::move(a));
  }
  auto by_time = [](const diff::Alert& x, const diff::Alert& y) {
    return LastEvent(x) < LastEvent(y);
  };
  std::sort(merged.active.begin(), merged.active.end(), by_time);
  std::sort(merged.history.begin(), merged.history.end(), by_time);
  return merged;
}

}  // namespace tidemark::cli
