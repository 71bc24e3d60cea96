#include "diff/json.h"

#include <ctime>
#include <map>

namespace tidemark::diff {

std::string Dump(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

using nlohmann::json;

template <typename E>
E EnumFrom(const std::string& name, std::initializer_list<E> all, const char* (*name_of)(E)) {
  for (E e : all) {
    if (name == name_of(e)) return e;
  }
  throw std::runtime_error("unknown value \"" + name + "\"");
}

json Labels(const std::vector<std::pair<std::string, std::string>>& labels) {
  json out = json::object();
  for (const auto& [k, v] : labels) out[k] = v;
  return out;
}

std::vector<std::pair<std::string, std::string>> LabelsFrom(const json& j) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : j.items()) out.emplace_back(k, v.get<std::string>());
  return out;
}

json Delta(const TypeDelta& d) {
  return {{"type", d.name},
          {"count_before", d.count_before},
          {"count_after", d.count_after},
          {"bytes_before", d.bytes_before},
          {"bytes_after", d.bytes_after},
          {"count_delta", d.count_delta()},
          {"bytes_delta", d.bytes_delta()}};
}

}  // namespace

std::string Rfc3339(int64_t ns) {
  const time_t seconds = static_cast<time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char out[40];
  const size_t n = std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(out + n, sizeof out - n, ".%03dZ", static_cast<int>(ns / 1'000'000 % 1000));
  return out;
}

json ToJson(const Alert& a) {
  json holders = json::array();
  for (const HeldBy& h : a.holders) {
    holders.push_back(
        {{"description", h.description}, {"path", h.path}, {"count", h.count}, {"bytes", h.bytes}});
  }
  json top = json::array();
  for (const TypeGrowthRow& r : a.top_growing) {
    top.push_back({{"type", r.type},
                   {"bytes_now", r.bytes_now},
                   {"count_now", r.count_now},
                   {"bytes_per_hour", r.bytes_per_hour},
                   {"count_per_hour", r.count_per_hour}});
  }
  json out = {{"id", a.id},
              {"kind", AlertKindName(a.kind)},
              {"state", AlertStateName(a.state)},
              {"rule", a.rule},
              {"service", a.service},
              {"type", a.type},
              {"agents", a.agents},
              {"labels", Labels(a.labels)},
              {"summary", a.Summary()},
              {"since", Rfc3339(a.since_ns)},
              {"since_ns", a.since_ns},
              {"fired_ns", a.fired_ns},
              {"resolved_ns", a.resolved_ns},
              {"updated_ns", a.updated_ns},
              {"bytes_now", a.bytes_now},
              {"count_now", a.count_now},
              {"bytes_delta", a.bytes_delta},
              {"count_delta", a.count_delta},
              {"bytes_per_hour", a.bytes_per_hour},
              {"count_per_hour", a.count_per_hour},
              {"fit", a.fit},
              {"increasing", a.increasing},
              {"window_s", a.window_ns / 1e9},
              {"top_growing", top},
              {"holders_type", a.holders_type},
              {"holders", holders},
              {"graphs", a.graphs},
              {"evidence", a.EvidenceCommands()},
              {"note", a.note},
              {"site", a.site}};
  if (a.kind == AlertKind::kMemory) {
    out["memory"] = {{"current", a.memory.current},
                     {"limit", a.memory.limit},
                     {"source", a.memory.source},
                     {"crossed", a.memory.crossed_pct}};
  }
  if (a.fired_ns) out["fired"] = Rfc3339(a.fired_ns);
  if (a.resolved_ns) out["resolved"] = Rfc3339(a.resolved_ns);
  return out;
}

std::expected<Alert, std::string> AlertFromJson(const json& j) {
  try {
    Alert a;
    a.id = j.at("id").get<std::string>();
    a.kind =
        EnumFrom(j.at("kind").get<std::string>(),
                 {AlertKind::kLeak, AlertKind::kNative, AlertKind::kSilent, AlertKind::kMemory},
                 AlertKindName);
    a.state = EnumFrom(j.at("state").get<std::string>(),
                       {AlertState::kPending, AlertState::kFiring, AlertState::kResolved},
                       AlertStateName);
    a.rule = j.at("rule").get<std::string>();
    a.service = j.at("service").get<std::string>();
    a.type = j.at("type").get<std::string>();
    a.agents = j.at("agents").get<std::vector<std::string>>();
    a.labels = LabelsFrom(j.at("labels"));
    a.since_ns = j.at("since_ns").get<int64_t>();
    a.fired_ns = j.at("fired_ns").get<int64_t>();
    a.resolved_ns = j.at("resolved_ns").get<int64_t>();
    a.updated_ns = j.at("updated_ns").get<int64_t>();
    a.bytes_now = j.at("bytes_now").get<double>();
    a.count_now = j.at("count_now").get<double>();
    a.bytes_delta = j.at("bytes_delta").get<double>();
    a.count_delta = j.at("count_delta").get<double>();
    a.bytes_per_hour = j.at("bytes_per_hour").get<double>();
    a.count_per_hour = j.at("count_per_hour").get<double>();
    a.fit = j.at("fit").get<double>();
    a.increasing = j.at("increasing").get<double>();
    a.window_ns = static_cast<int64_t>(j.at("window_s").get<double>() * 1e9);
    for (const json& r : j.at("top_growing")) {
      a.top_growing.push_back({r.at("type").get<std::string>(), r.at("bytes_now").get<double>(),
                               r.at("count_now").get<double>(),
                               r.at("bytes_per_hour").get<double>(),
                               r.at("count_per_hour").get<double>()});
    }
    a.holders_type = j.at("holders_type").get<std::string>();
    for (const json& h : j.at("holders")) {
      a.holders.push_back({h.at("description").get<std::string>(), h.at("path").get<std::string>(),
                           h.at("count").get<uint64_t>(), h.at("bytes").get<uint64_t>()});
    }
    a.note = j.at("note").get<std::string>();
    a.site = j.value("site", "");  // Journals written before allocation sites have none.
    if (a.kind == AlertKind::kLeak) a.cause = CauseKey(a.holders);
    // Journals written before graphs were recorded have none.
    a.graphs = j.value("graphs", std::vector<std::string>{});
    if (const auto m = j.find("memory"); m != j.end()) {
      a.memory = {m->at("current").get<uint64_t>(), m->at("limit").get<uint64_t>(),
                  m->at("source").get<std::string>(), m->at("crossed").get<uint32_t>()};
    }
    return a;
  } catch (const std::exception& e) {
    return std::unexpected(std::string("not an alert: ") + e.what());
  }
}

std::string AlertRecord(const std::string& event, const Alert& alert) {
  return Dump(json{{"event", event}, {"alert", ToJson(alert)}});
}

AlertLog ReplayAlertRecords(const std::vector<std::string>& records) {
  AlertLog log;
  std::map<std::string, size_t> active_at;  // id -> index in log.active
  for (const std::string& record : records) {
    const json j = json::parse(record, nullptr, false);
    std::expected<Alert, std::string> alert = j.is_object() && j.contains("alert")
                                                  ? AlertFromJson(j["alert"])
                                                  : std::unexpected(std::string("no alert"));
    const std::string event = j.is_object() ? j.value("event", "") : "";
    if (!alert) {
      ++log.unreadable;
      continue;
    }
    auto at = active_at.find(alert->id);
    if (event == "resolved" || event == "handed-over") {
      if (at != active_at.end()) {
        const size_t gone = at->second;
        log.active.erase(log.active.begin() + static_cast<ptrdiff_t>(gone));
        active_at.erase(at);
        for (auto& [id, index] : active_at) index -= index > gone ? 1 : 0;
      }
      log.history.push_back(std::move(*alert));
    } else if (at != active_at.end()) {
      log.active[at->second] = std::move(*alert);
    } else {
      active_at[alert->id] = log.active.size();
      log.active.push_back(std::move(*alert));
    }
  }
  return log;
}

json ToJson(const Report& r) {
  json sections = json::array();
  for (const ReportSection& s : r.sections) {
    json rows = json::array();
    for (const TypeDelta& d : s.rows) rows.push_back(Delta(d));
    sections.push_back({{"scope", s.scope},
                        {"name", s.name},
                        {"service", s.service},
                        {"from", Rfc3339(s.from_ns)},
                        {"to", Rfc3339(s.to_ns)},
                        {"from_ns", s.from_ns},
                        {"to_ns", s.to_ns},
                        {"count_before", s.count_before},
                        {"count_after", s.count_after},
                        {"bytes_before", s.bytes_before},
                        {"bytes_after", s.bytes_after},
                        {"rows", rows}});
  }
  return {{"id", r.id},
          {"schedule", r.schedule},
          {"created", Rfc3339(r.created_ns)},
          {"created_ns", r.created_ns},
          {"age_s", r.age_ns / 1'000'000'000},
          {"sections", sections}};
}

std::expected<Report, std::string> ReportFromJson(const json& j) {
  try {
    Report r;
    r.id = j.at("id").get<std::string>();
    r.schedule = j.at("schedule").get<std::string>();
    r.created_ns = j.at("created_ns").get<int64_t>();
    r.age_ns = j.at("age_s").get<int64_t>() * 1'000'000'000;
    for (const json& s : j.at("sections")) {
      ReportSection section;
      section.scope = s.at("scope").get<std::string>();
      section.name = s.at("name").get<std::string>();
      section.service = s.at("service").get<std::string>();
      section.from_ns = s.at("from_ns").get<int64_t>();
      section.to_ns = s.at("to_ns").get<int64_t>();
      section.count_before = s.at("count_before").get<int64_t>();
      section.count_after = s.at("count_after").get<int64_t>();
      section.bytes_before = s.at("bytes_before").get<int64_t>();
      section.bytes_after = s.at("bytes_after").get<int64_t>();
      for (const json& d : s.at("rows")) {
        section.rows.push_back(
            {d.at("type").get<std::string>(), d.at("count_before").get<int64_t>(),
             d.at("count_after").get<int64_t>(), d.at("bytes_before").get<int64_t>(),
             d.at("bytes_after").get<int64_t>()});
      }
      r.sections.push_back(std::move(section));
    }
    return r;
  } catch (const std::exception& e) {
    return std::unexpected(std::string("not a report: ") + e.what());
  }
}

}  // namespace tidemark::diff
