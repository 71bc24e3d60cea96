#include "cli/pipeline_commands.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>

#include "cli/merged.h"
#include "cli/output.h"
#include "config/config.h"
#include "diff/detector.h"
#include "diff/growth.h"
#include "diff/json.h"
#include "store/journal.h"
#include "store/references.h"
#include "store/store.h"

namespace tidemark::cli {
namespace {

using nlohmann::json;

std::string Duration(int64_t ns) {
  const int64_t s = ns / 1'000'000'000;
  if (s < 120) return std::to_string(s) + " s";
  if (s < 7200) return std::to_string(s / 60) + " min";
  if (s < 172800) return std::to_string(s / 3600) + " h";
  return std::to_string(s / 86400) + " d";
}

std::string SignedCount(double v) {
  const std::string body = std::to_string(static_cast<int64_t>(v));
  return v > 0 ? "+" + body : body;
}

struct Row {
  std::string type;
  diff::Growth g;  // Summed over agents for a service.
  size_t agents = 0;
};

void Add(diff::Growth& into, const diff::Growth& g) {
  into.count_now += g.count_now;
  into.bytes_now += g.bytes_now;
  into.count_delta += g.count_delta;
  into.bytes_delta += g.bytes_delta;
  into.bytes_per_hour += g.bytes_per_hour;
  into.count_per_hour += g.count_per_hour;
  into.recent_bytes_per_hour += g.recent_bytes_per_hour;
  into.points = std::max(into.points, g.points);
  into.covered_ns = std::max(into.covered_ns, g.covered_ns);
  into.window_ns = g.window_ns;
}

json GrowthJson(const Row& r) {
  return {{"type", r.type},
          {"agents", r.agents},
          {"count_now", r.g.count_now},
          {"bytes_now", r.g.bytes_now},
          {"count_delta", r.g.count_delta},
          {"bytes_delta", r.g.bytes_delta},
          {"bytes_per_hour", r.g.bytes_per_hour},
          {"count_per_hour", r.g.count_per_hour},
          {"recent_bytes_per_hour", r.g.recent_bytes_per_hour},
          {"fit", r.g.fit},
          {"increasing", r.g.increasing},
          {"points", r.g.points},
          {"covered_s", static_cast<double>(r.g.covered_ns) / 1e9}};
}

// tidemark growth [--service S] [--agent KEY] [--window 1h|last] [--top N] [--all] [--json]
// One store's agents and series points since `since`.
snapshot::Result<MergedSeries> ReadGrowthInputs(const std::string& dir, store::FileSystem& fs,
                                                int64_t since) {
  MergedSeries in;
  auto agents = store::ReadAgents(dir, fs);
  if (!agents) return std::unexpected(agents.error());
  auto points = store::ReadSeries(dir, std::nullopt, since, fs);
  if (!points) return std::unexpected(points.error());
  return MergedSeries{std::move(*agents), std::move(*points)};
}

}  // namespace

int GrowthCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  const int64_t now = flags.now_ns;
  int64_t window_ns = diff::kNsPerHour;
  if (auto w = flags.value("--window")) {
    if (*w == "last") {
      window_ns = 0;
    } else {
      auto ms = config::ParseDurationMs(*w);
      if (!ms || *ms <= 0) {
        err << "tidemark growth: --window takes a duration like 1h, 30m, 1d, or 'last': "
            << (ms ? "must be positive" : ms.error().message) << "\n";
        return 2;
      }
      window_ns = *ms * 1'000'000;
    }
  }
  const std::string service = flags.value("--service").value_or("");
  const std::string agent_filter = flags.value("--agent").value_or("");
  // The window, plus a little so its first point is in; "last" needs the newest two only.
  const int64_t since = window_ns == 0 ? INT64_MIN : now - window_ns - window_ns / 10;
  auto inputs = flags.collectors.size() > 1 ? ReadMergedSeries(flags.collectors, since)
                                            : ReadGrowthInputs(flags.store_dir, *flags.fs, since);
  if (!inputs) {
    err << "tidemark growth: " << inputs.error().message << "\n";
    return 1;
  }
  const std::map<uint32_t, store::AgentRecord>* agents = &inputs->agents;
  const std::vector<store::SeriesPoint>* points = &inputs->points;
  // --agent names an agent as every verb does (store/references.h): its newest instance.
  std::optional<uint32_t> only;
  if (!agent_filter.empty()) {
    store::Catalog named;
    named.agents = *agents;
    if (auto ids = store::ResolveAgent(named, agent_filter)) only = ids->front();
  }
  // A service or an agent nobody reported as is a mistake, not an empty result.
  const auto matches = [&](uint32_t id, const snapshot::Identity& who) {
    return (service.empty() || who.service == service) &&
           (agent_filter.empty() || (only && *only == id));
  };
  if (std::none_of(agents->begin(), agents->end(),
                   [&](const auto& a) { return matches(a.first, a.second.identity); })) {
    err << "tidemark growth: no agent" << (agent_filter.empty() ? "" : " '" + agent_filter + "'")
        << (service.empty() ? "" : " of service '" + service + "'") << " in the store "
        << flags.store_dir << " (tidemark ls lists them; --agent takes an id, SERVICE, "
        << "SERVICE/PID, SERVICE/HOST/PID or SERVICE/HOST/PID@START)\n";
    return 1;
  }
  // Per agent: the series of each type, absent types as zero.
  struct AgentSeries {
    const store::AgentRecord* agent;
    std::vector<int64_t> times;
    std::vector<double> rss;
    std::map<std::string, std::vector<diff::Sample>> types;
  };
  std::map<uint32_t, AgentSeries> by_agent;
  for (const store::SeriesPoint& p : *points) {
    if (p.goodbye) continue;
    auto who = agents->find(p.agent);
    if (who == agents->end()) continue;
    // An agent as alerts name it (service/host/pid@start), without @start, or its store id.
    if (!matches(p.agent, who->second.identity)) continue;
    AgentSeries& s = by_agent[p.agent];
    s.agent = &who->second;
    if (!s.times.empty() && p.timestamp_ns <= s.times.back()) continue;
    const size_t index = s.times.size();
    s.times.push_back(p.timestamp_ns);
    s.rss.push_back(static_cast<double>(p.rss_bytes));
    for (const store::TypePoint& t : p.types) {
      std::vector<diff::Sample>& samples = s.types[t.type];
      // Points where the type was absent: zero.
      for (size_t i = samples.size(); i < index; ++i) samples.push_back({s.times[i], 0, 0});
      samples.push_back(
          {p.timestamp_ns, static_cast<double>(t.count), static_cast<double>(t.bytes)});
    }
  }
  std::map<std::string, std::map<std::string, Row>> services;
  std::map<std::string, std::pair<diff::Growth, size_t>> rss;
  for (auto& [id, s] : by_agent) {
    const std::string& svc = s.agent->identity.service;
    for (auto& [type, samples] : s.types) {
      for (size_t i = samples.size(); i < s.times.size(); ++i)
        samples.push_back({s.times[i], 0, 0});
      const diff::Growth g = diff::ComputeGrowth(samples, window_ns);
      Row& row = services[svc][type];
      row.type = type;
      Add(row.g, g);
      row.g.fit = std::max(row.g.fit, g.fit);
      row.g.increasing = std::max(row.g.increasing, g.increasing);
      ++row.agents;
    }
    std::vector<diff::Sample> rss_samples;
    for (size_t i = 0; i < s.times.size(); ++i) rss_samples.push_back({s.times[i], 0, s.rss[i]});
    Add(rss[svc].first, diff::ComputeGrowth(rss_samples, window_ns));
    ++rss[svc].second;
  }
  json j = json::array();
  if (services.empty() && !flags.json) {
    out << "no summaries in the store " << flags.store_dir << " for that window"
        << (service.empty() ? "" : " and service " + service) << "\n";
    return 0;
  }
  for (auto& [svc, types] : services) {
    std::vector<Row> rows;
    for (auto& [type, row] : types) {
      if (flags.all || row.g.bytes_per_hour > 0) rows.push_back(row);
    }
    std::sort(rows.begin(), rows.end(),
              [](const Row& a, const Row& b) { return a.g.bytes_per_hour > b.g.bytes_per_hour; });
    const size_t growing = rows.size();
    rows.resize(RowsShown(flags, rows.size(), 20));
    const auto& [rss_growth, agent_count] = rss[svc];
    if (flags.json) {
      json s = {{"service", svc},
                {"agents", agent_count},
                {"window_s", static_cast<double>(window_ns) / 1e9},
                {"rss_bytes", rss_growth.bytes_now},
                {"rss_bytes_per_hour", rss_growth.bytes_per_hour},
                {"types", json::array()}};
      for (const Row& r : rows) s["types"].push_back(GrowthJson(r));
      MarkTruncated(s, rows.size(), growing);
      j.push_back(s);
      continue;
    }
    out << svc << ": " << agent_count << (agent_count == 1 ? " agent" : " agents") << ", RSS "
        << Size(flags, rss_growth.bytes_now) << " (" << SignedSize(flags, rss_growth.bytes_per_hour)
        << "/h), "
        << (window_ns == 0 ? std::string("since the previous snapshot")
                           : "over the last " + Duration(window_ns) + " (" +
                                 Duration(rss_growth.covered_ns) + " of data)")
        << (flags.all ? "" : ", growing types") << "\n";
    char line[512];
    std::snprintf(line, sizeof line, "  %12s %12s %10s %14s %7s %5s  %s\n", "NOW", "DELTA",
                  "OBJECTS", "RATE", "RISING", "FIT", "TYPE");
    out << line;
    for (const Row& r : rows) {
      std::snprintf(line, sizeof line, "  %12s %12s %10s %12s/h %6.0f%% %5.2f  ",
                    Size(flags, r.g.bytes_now).c_str(), SignedSize(flags, r.g.bytes_delta).c_str(),
                    SignedCount(r.g.count_delta).c_str(),
                    SignedSize(flags, r.g.bytes_per_hour).c_str(), 100 * r.g.increasing, r.g.fit);
      out << line << r.type << "\n";  // Whole: a name cut short names nothing.
    }
    if (growing > rows.size()) out << "  ... " << growing - rows.size() << " more (--all)\n";
    if (rows.empty()) out << "  (no type grew)\n";
  }
  if (flags.json) out << j.dump(2) << "\n";
  return 0;
}

namespace {

void PrintAlert(const diff::Alert& a, const Flags& flags, std::ostream& out) {
  out << (a.state == diff::AlertState::kResolved ? "RESOLVED" : "FIRING") << "  " << a.id
      << "  since " << diff::Rfc3339(a.since_ns);
  if (a.resolved_ns) out << "  resolved " << diff::Rfc3339(a.resolved_ns);
  out << "\n  " << a.Summary() << "\n";
  for (const diff::HeldBy& h : a.holders) {
    out << "  held by " << h.path << "  (" << h.description << ": " << h.count << " new objects, "
        << Size(flags, static_cast<double>(h.bytes)) << ")\n";
  }
  if (!a.top_growing.empty()) {
    out << "  also growing:";
    for (const auto& t : a.top_growing)
      out << " " << t.type << " " << SignedSize(flags, t.bytes_per_hour) << "/h;";
    out << "\n";
  }
  if (!a.site.empty()) out << "  allocated: " << a.site << "\n";
  if (!a.note.empty()) out << "  note: " << a.note << "\n";
  for (const std::string& command : a.EvidenceCommands()) out << "  evidence: " << command << "\n";
  out << "  agents:";
  for (const std::string& agent : a.agents) out << " " << agent;
  for (const auto& [k, v] : a.labels) out << "  " << k << "=" << v;
  out << "\n";
}

// One store's alert journal, replayed.
snapshot::Result<diff::AlertLog> ReadAlerts(const std::string& dir, store::FileSystem& fs) {
  auto records = store::ReadJournal(dir + "/alerts.jnl", "TDMA", fs);
  if (!records) return std::unexpected(records.error());
  return diff::ReplayAlertRecords(*records);
}

// tidemark alerts [--all] [--json]
}  // namespace

int AlertsCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  auto read = flags.collectors.size() > 1 ? ReadMergedAlerts(flags.collectors)
                                          : ReadAlerts(flags.store_dir, *flags.fs);
  if (!read) {
    err << "tidemark alerts: " << read.error().message << "\n";
    return 1;
  }
  const diff::AlertLog& log = *read;
  if (flags.json) {
    json j = {{"firing", json::array()}, {"resolved", json::array()}};
    for (const auto& a : log.active) j["firing"].push_back(diff::ToJson(a));
    if (flags.all) {
      for (const auto& a : log.history) j["resolved"].push_back(diff::ToJson(a));
    }
    out << j.dump(2) << "\n";
    return 0;
  }
  if (log.active.empty()) out << "no alert is firing\n";
  for (const auto& a : log.active) PrintAlert(a, flags, out);
  if (flags.all) {
    if (!log.history.empty()) out << "\nresolved, oldest first:\n";
    for (const auto& a : log.history) PrintAlert(a, flags, out);
  } else if (!log.history.empty()) {
    out << log.history.size() << " resolved (--all lists them)\n";
  }
  if (log.unreadable)
    err << "tidemark alerts: " << log.unreadable << " unreadable records skipped\n";
  return 0;
}

// tidemark reports [ID|last] [--json]
int ReportsCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  auto records = store::ReadJournal(flags.store_dir + "/reports.jnl", "TDMR", *flags.fs);
  if (!records) {
    err << "tidemark reports: " << records.error().message << "\n";
    return 1;
  }
  std::vector<diff::Report> reports;
  for (const std::string& r : *records) {
    auto report = diff::ReportFromJson(json::parse(r, nullptr, false));
    if (report) reports.push_back(std::move(*report));
  }
  if (flags.positional.empty()) {
    if (flags.json) {
      json j = json::array();
      for (const auto& r : reports) {
        j.push_back({{"id", r.id},
                     {"schedule", r.schedule},
                     {"created", diff::Rfc3339(r.created_ns)},
                     {"sections", r.sections.size()}});
      }
      out << j.dump(2) << "\n";
      return 0;
    }
    if (reports.empty())
      out << "no reports yet (schedules are set with [[schedules]] in tidemarkd's configuration)\n";
    for (const auto& r : reports) {
      out << r.id << "  " << diff::Rfc3339(r.created_ns) << "  " << r.sections.size()
          << " sections";
      for (const auto& s : r.sections) {
        if (s.scope == "service" && !s.rows.empty()) {
          out << "  " << s.name << ": " << s.rows.front().name << " "
              << SignedSize(flags, static_cast<double>(s.rows.front().bytes_delta()));
        }
      }
      out << "\n";
    }
    return 0;
  }
  const std::string& wanted = flags.positional.front();
  auto found = std::find_if(reports.begin(), reports.end(),
                            [&](const diff::Report& r) { return r.id == wanted; });
  if (wanted == "last" && !reports.empty()) found = reports.end() - 1;
  if (found == reports.end()) {
    err << "tidemark reports: no report '" << wanted << "' (tidemark reports lists them)\n";
    return 1;
  }
  if (flags.json) {
    out << diff::ToJson(*found).dump(2) << "\n";
    return 0;
  }
  out << "report " << found->id << " (" << found->schedule << "), made "
      << diff::Rfc3339(found->created_ns) << ", compared with " << found->age_ns / 3'600'000'000'000
      << " h before\n";
  for (const auto& s : found->sections) {
    out << "\n"
        << s.scope << " " << s.name << ": " << diff::Rfc3339(s.from_ns) << " -> "
        << diff::Rfc3339(s.to_ns) << ", " << Size(flags, static_cast<double>(s.bytes_before))
        << " -> " << Size(flags, static_cast<double>(s.bytes_after)) << "\n";
    char line[512];
    for (const auto& d : s.rows) {
      std::snprintf(line, sizeof line, "  %-40s %12s %10s\n", d.name.substr(0, 40).c_str(),
                    SignedSize(flags, static_cast<double>(d.bytes_delta())).c_str(),
                    SignedCount(static_cast<double>(d.count_delta())).c_str());
      out << line;
    }
  }
  return 0;
}

}  // namespace tidemark::cli
