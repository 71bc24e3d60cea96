#include "diff/detector.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <unordered_map>

namespace tidemark::diff {
namespace {

constexpr const char* kNativeType = "(native memory)";

bool AnyGlob(const std::vector<std::string>& patterns, std::string_view text) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return GlobMatch(p, text); });
}

// One agent's share of a leak or native condition.
struct Contribution {
  const RollingState::Agent* agent;
  Growth growth;
};

struct Candidate {
  Alert alert;
  std::vector<Contribution> parts;
  std::map<std::string, std::vector<Contribution>> by_type;  // Leak: every type that qualifies.
  int64_t for_ns = 0, cooldown_ns = 0, resolve_after_ns = 0;
};

// `inner` is `outer` or a path under it: "app.CACHE['k']" is within "app.CACHE" and "app".
bool PathWithin(const std::string& inner, const std::string& outer) {
  if (inner.compare(0, outer.size(), outer) != 0) return false;
  return inner.size() == outer.size() || inner[outer.size()] == '.' || inner[outer.size()] == '[' ||
         inner[outer.size()] == ' ';
}

}  // namespace

std::string HumanSeconds(double seconds) {
  std::ostringstream out;
  out.precision(3);
  out << seconds << " s";
  return out.str();
}

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = std::abs(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char out[48];
  std::snprintf(out, sizeof out, "%s%.*f %s", bytes < 0 ? "-" : "", u == 0 ? 0 : 1, v, units[u]);
  return out;
}

const char* AlertKindName(AlertKind kind) {
  switch (kind) {
    case AlertKind::kLeak:
      return "leak";
    case AlertKind::kNative:
      return "native";
    case AlertKind::kSilent:
      return "silent";
    case AlertKind::kMemory:
      return "memory-pressure";
  }
  return "?";
}

const char* AlertStateName(AlertState state) {
  switch (state) {
    case AlertState::kPending:
      return "pending";
    case AlertState::kFiring:
      return "firing";
    case AlertState::kResolved:
      return "resolved";
  }
  return "?";
}

std::string Alert::Summary() const {
  const std::string where = "service " + service + " (" + std::to_string(agents.size()) +
                            (agents.size() == 1 ? " agent)" : " agents)");
  std::string line;
  switch (kind) {
    case AlertKind::kLeak:
      line = type + " grows " + HumanBytes(bytes_per_hour) + "/h in " + where + ": " +
             HumanBytes(bytes_now) + " in " + std::to_string(static_cast<int64_t>(count_now)) +
             " objects, " + (bytes_delta >= 0 ? "+" : "") + HumanBytes(bytes_delta) + " (" +
             (count_delta >= 0 ? "+" : "") + std::to_string(static_cast<int64_t>(count_delta)) +
             " objects) over the window";
      // What the leak is made of, when the investigation found its objects hold `type`.
      if (!holders_type.empty() && holders_type != type) {
        line = holders_type + " objects hold the growth: " + line;
      }
      break;
    case AlertKind::kNative:
      line = "native memory (RSS outside Python objects) grows " + HumanBytes(bytes_per_hour) +
             "/h in " + where + ", now " + HumanBytes(bytes_now);
      break;
    case AlertKind::kSilent:
      line = "agent " + (agents.empty() ? std::string("?") : agents.front()) + " of service " +
             service + " has sent nothing for " +
             std::to_string((updated_ns - since_ns) / 1'000'000'000 + window_ns / 1'000'000'000) +
             " s";
      break;
    case AlertKind::kMemory:
      line = "agent " + (agents.empty() ? std::string("?") : agents.front()) + " of service " +
             service + " is past " + std::to_string(memory.crossed_pct) + "% of its " +
             memory.source + " memory limit (" + HumanBytes(static_cast<double>(memory.current)) +
             " of " + HumanBytes(static_cast<double>(memory.limit)) + ")";
      for (size_t i = 0; i < top_growing.size() && i < 3; ++i) {
        line += (i == 0 ? "; largest types: " : ", ") + top_growing[i].type + " " +
                HumanBytes(top_growing[i].bytes_now);
      }
      break;
  }
  if (!holders.empty()) line += "; held by " + holders.front().path;
  if (!site.empty()) line += "; " + site;
  return line;
}

std::vector<std::string> Alert::EvidenceCommands() const {
  if (kind == AlertKind::kMemory && graphs.size() == 1) {
    return {"tidemark why " + graphs[0] + " " + type, "tidemark retained " + graphs[0]};
  }
  if (graphs.size() != 2) return {};
  const std::string type = holders_type.empty() ? this->type : holders_type;
  return {"tidemark gdiff " + graphs[0] + " " + graphs[1],
          "tidemark why " + graphs[1] + " " + type};
}

std::vector<TypeGrowthRow> Detector::GrowingTypes(const RollingState& state,
                                                  const RollingState::Agent& agent,
                                                  int64_t window_ns, size_t limit) {
  std::vector<TypeGrowthRow> rows;
  std::vector<Sample> samples;
  for (size_t slot = 0; slot < agent.type_count(); ++slot) {
    if (state.GrowthBound(agent, slot, window_ns) <= 0) continue;
    state.Samples(agent, slot, samples);
    const Growth g = ComputeGrowth(samples, window_ns);
    if (g.bytes_per_hour <= 0) continue;
    rows.push_back({state.names().Name(agent.type_id(slot)), agent.bytes_now(slot),
                    agent.count_now(slot), g.bytes_per_hour, g.count_per_hour});
  }
  std::sort(rows.begin(), rows.end(), [](const TypeGrowthRow& a, const TypeGrowthRow& b) {
    return a.bytes_per_hour > b.bytes_per_hour;
  });
  if (rows.size() > limit) rows.resize(limit);
  return rows;
}

DetectorPass Detector::Evaluate(const RollingState& state, int64_t now) {
  DetectorPass pass;
  std::map<std::string, Candidate> held;

  // Restarts: the newest instance per (service, host) replaces the older ones.
  std::unordered_map<std::string, int64_t> newest_start;
  for (const auto& [key, a] : state.agents()) {
    int64_t& newest = newest_start[a->identity.service + '\0' + a->identity.host];
    newest = std::max(newest, a->identity.start_time_ns);
  }

  // Which rules apply to which type, computed once per type name per pass.
  std::vector<std::vector<int8_t>> type_matches(config_.rules.size());
  for (size_t r = 0; r < config_.rules.size(); ++r) {
    type_matches[r].resize(state.names().size());
    for (uint32_t id = 0; id < state.names().size(); ++id) {
      type_matches[r][id] = AnyGlob(config_.rules[r].types, state.names().Name(id));
    }
  }

  std::vector<Sample> samples, heap;
  for (const auto& [key, agent] : state.agents()) {
    const RollingState::Agent& a = *agent;
    const snapshot::Identity& who = a.identity;
    const int64_t silence = now - a.last_received_ns;
    if (newest_start[who.service + '\0' + who.host] > who.start_time_ns ||
        silence > config_.silence.forget_after_ns) {
      pass.forget.push_back(key);
      continue;
    }
    const int64_t threshold =
        std::max<int64_t>(config_.silence.min_silence_ns,
                          static_cast<int64_t>(config_.silence.intervals * a.interval_ns));
    if (silence > threshold) {
      if (!config_.silence.enabled) continue;
      const std::string id =
          "silent/" + who.service + "/" + who.host + "/" + std::to_string(who.pid);
      Candidate& c = held[id];
      c.alert.kind = AlertKind::kSilent;
      c.alert.rule = "silence";
      c.alert.service = who.service;
      c.alert.agents = {key};
      c.alert.labels = who.labels;
      c.alert.window_ns = threshold;  // Silent for this long when it went pending.
      continue;
    }

    for (size_t r = 0; r < config_.rules.size(); ++r) {
      const LeakRule& rule = config_.rules[r];
      if (!AnyGlob(rule.services, who.service)) continue;
      const float bound = static_cast<float>(rule.criteria.min_growth_bytes);
      for (size_t slot = 0; slot < a.type_count(); ++slot) {
        ++pass.series_checked;
        if (!type_matches[r][a.type_id(slot)]) continue;
        const float growth = state.GrowthBound(a, slot, rule.criteria.window_ns);
        if (growth <= 0 || growth < bound) continue;
        ++pass.series_examined;
        state.Samples(a, slot, samples);
        const Growth g = ComputeGrowth(samples, rule.criteria.window_ns);
        if (!LooksLikeLeak(g, rule.criteria)) continue;
        const std::string& type = state.names().Name(a.type_id(slot));
        // One alert per rule, service and cause: a leak drags its contents along (the leaked
        // objects' strs, lists, dicts grow too), and on-call wants one page for it.
        const auto [id, cause] = LeakId(rule.name, who.service, type);
        Candidate& c = held[id];
        if (cause != nullptr && c.alert.cause.empty()) {  // Born knowing what holds it.
          c.alert.cause = cause->key;
          c.alert.holders = cause->holders;
          c.alert.holders_type = cause->holders_type;
          c.alert.graphs = cause->graphs;
          c.alert.note = cause->note;
          c.alert.site = cause->site;
        }
        c.alert.kind = AlertKind::kLeak;
        c.alert.rule = rule.name;
        c.alert.service = who.service;
        c.alert.window_ns = rule.criteria.window_ns;
        c.by_type[type].push_back({&a, g});
        c.for_ns = rule.for_ns;
        c.cooldown_ns = rule.cooldown_ns;
        c.resolve_after_ns = rule.resolve_after_ns;
      }
    }

    const NativeRule& native = config_.native;
    if (native.enabled && a.summaries >= native.criteria.min_points) {
      state.NativeSamples(a, samples);
      const Growth g = ComputeGrowth(samples, native.criteria.window_ns);
      if (LooksLikeLeak(g, native.criteria)) {
        state.HeapSamples(a, heap);
        const Growth h = ComputeGrowth(heap, native.criteria.window_ns);
        const double rss_rate = g.bytes_per_hour + std::max(0.0, h.bytes_per_hour);
        if (h.bytes_per_hour <= native.max_python_share * rss_rate) {
          Candidate& c = held["native/" + who.service];
          c.alert.kind = AlertKind::kNative;
          c.alert.rule = "native";
          c.alert.service = who.service;
          c.alert.type = kNativeType;
          c.alert.window_ns = native.criteria.window_ns;
          c.parts.push_back({&a, g});
          c.for_ns = native.for_ns;
          c.cooldown_ns = native.cooldown_ns;
          c.resolve_after_ns = native.resolve_after_ns;
        }
      }
    }
  }

  auto summed_rate = [](const std::vector<Contribution>& parts) {
    double rate = 0;
    for (const Contribution& p : parts) rate += p.growth.bytes_per_hour;
    return rate;
  };
  for (auto& [id, c] : held) {
    Alert& al = c.alert;
    al.id = id;
    std::vector<TypeGrowthRow> others;
    if (!c.by_type.empty()) {
      // The alert is about the fastest-growing type; the others that qualify come first
      // among the "other growing types".
      auto fastest = std::max_element(c.by_type.begin(), c.by_type.end(), [&](auto& x, auto& y) {
        return summed_rate(x.second) < summed_rate(y.second);
      });
      al.type = fastest->first;
      c.parts = std::move(fastest->second);
      for (const auto& [type, parts] : c.by_type) {
        if (type == al.type) continue;
        TypeGrowthRow row{type};
        for (const Contribution& p : parts) {
          row.bytes_now += p.growth.bytes_now;
          row.count_now += p.growth.count_now;
          row.bytes_per_hour += p.growth.bytes_per_hour;
          row.count_per_hour += p.growth.count_per_hour;
        }
        others.push_back(row);
      }
      std::sort(others.begin(), others.end(),
                [](auto& x, auto& y) { return x.bytes_per_hour > y.bytes_per_hour; });
    }
    if (!c.parts.empty()) {
      std::sort(c.parts.begin(), c.parts.end(), [](const Contribution& x, const Contribution& y) {
        return x.growth.bytes_per_hour > y.growth.bytes_per_hour;
      });
      al.agents.clear();
      double fit = 0, increasing = 0;
      for (const Contribution& p : c.parts) {
        al.agents.push_back(p.agent->key);
        al.bytes_now += p.growth.bytes_now;
        al.count_now += p.growth.count_now;
        al.bytes_delta += p.growth.bytes_delta;
        al.count_delta += p.growth.count_delta;
        al.bytes_per_hour += p.growth.bytes_per_hour;
        al.count_per_hour += p.growth.count_per_hour;
        fit += p.growth.fit;
        increasing += p.growth.increasing;
      }
      al.fit = fit / c.parts.size();
      al.increasing = increasing / c.parts.size();
      const RollingState::Agent& first = *c.parts.front().agent;
      al.labels = first.identity.labels;
      al.top_growing = std::move(others);
      for (TypeGrowthRow& row : GrowingTypes(state, first, al.window_ns, config_.top_growing + 1)) {
        // A type with an alert of its own (another cause) is not this one's to list.
        const bool elsewhere =
            al.kind == AlertKind::kLeak && LeakId(al.rule, al.service, row.type).first != id;
        const bool listed = elsewhere || row.type == al.type ||
                            std::any_of(al.top_growing.begin(), al.top_growing.end(),
                                        [&](const TypeGrowthRow& r) { return r.type == row.type; });
        if (!listed) al.top_growing.push_back(std::move(row));
      }
      if (al.top_growing.size() > config_.top_growing) al.top_growing.resize(config_.top_growing);
    }
    Step(id, true, std::move(al), {c.for_ns, c.cooldown_ns, c.resolve_after_ns}, now, pass);
  }
  std::vector<std::string> stopped;
  for (const auto& [id, al] : active_) {
    if (held.count(id) || al.kind == AlertKind::kMemory) continue;
    if (al.kind == AlertKind::kSilent && SilentWithoutEvidence(al, state, now)) continue;
    stopped.push_back(id);
  }
  for (const std::string& id : stopped) {
    const Alert& al = active_.at(id);
    Timing timing{0, 0, 0};
    if (al.kind == AlertKind::kLeak) {
      for (const LeakRule& rule : config_.rules) {
        if (rule.name == al.rule) timing = {rule.for_ns, rule.cooldown_ns, rule.resolve_after_ns};
      }
    } else if (al.kind == AlertKind::kNative) {
      timing = {config_.native.for_ns, config_.native.cooldown_ns, config_.native.resolve_after_ns};
    }
    Step(id, false, {}, timing, now, pass);
  }
  ResolveMemory(state, now, pass);

  int64_t longest_cooldown = config_.native.cooldown_ns;
  for (const LeakRule& rule : config_.rules)
    longest_cooldown = std::max(longest_cooldown, rule.cooldown_ns);
  std::erase_if(resolved_at_, [&](const auto& e) { return now - e.second > longest_cooldown; });
  for (auto& [service, types] : causes_)
    std::erase_if(types, [&](const auto& e) { return now - e.second.set_ns > kCauseTtlNs; });
  std::erase_if(causes_, [](const auto& e) { return e.second.empty(); });
  return pass;
}

std::pair<std::string, const Cause*> Detector::LeakId(const std::string& rule,
                                                      const std::string& service,
                                                      const std::string& type) const {
  std::string id = "leak/" + rule + "/" + service;
  auto types = causes_.find(service);
  if (types == causes_.end()) return {id, nullptr};
  auto stored = types->second.find(type);
  if (stored == types->second.end() || stored->second.cause.key.empty()) return {id, nullptr};
  const Cause& cause = stored->second.cause;
  std::string split = id + "/" + cause.key;
  if (active_.count(split)) return {std::move(split), &cause};
  auto base = active_.find(id);
  // The rule/service alert keeps the types of its own cause (and those with none known), and
  // those held above or below its holder: objects shared by two leaks (an int both refer to)
  // are held by what holds both, a prefix of each path.
  if (base == active_.end() || base->second.cause.empty() ||
      PathWithin(cause.key, base->second.cause) || PathWithin(base->second.cause, cause.key)) {
    return {id, nullptr};
  }
  return {std::move(split), &cause};
}

void Detector::SetCauses(const std::string& service, std::vector<Cause> causes, int64_t now_ns) {
  auto& types = causes_[service];
  for (Cause& c : causes) {
    if (c.key.empty()) continue;
    const std::string type = c.type;
    types[type] = {std::move(c), now_ns};
  }
  while (types.size() > kMaxCausesPerService) {
    auto oldest = std::min_element(types.begin(), types.end(), [](const auto& a, const auto& b) {
      return a.second.set_ns < b.second.set_ns;
    });
    types.erase(oldest);
  }
  // A type about to have an alert of its own is no longer "also growing" under another.
  for (auto& [id, al] : active_) {
    if (al.kind != AlertKind::kLeak || al.service != service) continue;
    std::erase_if(al.top_growing, [&, &id = id, &al = al](const TypeGrowthRow& row) {
      return LeakId(al.rule, service, row.type).first != id;
    });
  }
}

std::string CauseKey(const std::vector<HeldBy>& holders) {
  if (holders.empty()) return "";
  const HeldBy& top = holders.front();
  if (!top.path.empty()) return top.path;
  // "dict@0x..." names one object; "<several roots: ...>" names none.
  return top.description.empty() || top.description[0] == '<' ? "" : top.description;
}

// A silent alert whose agent the rolling state does not hold (tidemarkd restarted, and the
// agent's last summary is older than what was folded back) has no evidence either way: it stays
// as it was, until another instance of its service speaks on its host (a restart replaced it)
// or forget_after has passed since the agent was last heard of.
bool Detector::SilentWithoutEvidence(const Alert& al, const RollingState& state,
                                     int64_t now) const {
  if (al.agents.empty() || state.Find(al.agents.front()) != nullptr) return false;
  const std::string& key = al.agents.front();  // "service/host/pid@start"
  const size_t slash = key.find('/');
  const size_t next = slash == std::string::npos ? slash : key.find('/', slash + 1);
  if (next == std::string::npos) return false;
  const std::string host = key.substr(slash + 1, next - slash - 1);
  for (const auto& [other, a] : state.agents()) {
    if (a->identity.service == al.service && a->identity.host == host) return false;
  }
  const int64_t last_heard = al.since_ns - al.window_ns;
  return now - last_heard <= config_.silence.forget_after_ns;
}

void Detector::Step(const std::string& id, bool holds, Alert candidate, Timing timing, int64_t now,
                    DetectorPass& pass) {
  auto it = active_.find(id);
  if (!holds) {
    if (it == active_.end()) return;
    const int64_t since = failing_since_.try_emplace(id, now).first->second;
    if (it->second.state == AlertState::kPending) {
      // A lapse shorter than resolve_after keeps it pending, with its investigation and the
      // graphs already received; a longer one drops it without notice.
      if (now - since >= timing.resolve_after_ns) {
        active_.erase(it);
        failing_since_.erase(id);
      }
      return;
    }
    if (now - since < timing.resolve_after_ns) return;
    Alert resolved = std::move(it->second);
    active_.erase(it);
    failing_since_.erase(id);
    resolved.state = AlertState::kResolved;
    resolved.resolved_ns = now;
    resolved.updated_ns = now;
    if (resolved.kind == AlertKind::kSilent) {
      resolved.note = "the agent is sending again, or was replaced or forgotten";
    } else {
      resolved.note = "the growth stopped, or its agents are gone";
    }
    resolved_at_[id] = now;
    pass.events.push_back({AlertEvent::What::kResolved, std::move(resolved)});
    return;
  }
  failing_since_.erase(id);
  if (it == active_.end()) {
    candidate.state = AlertState::kPending;
    candidate.since_ns = now;
    candidate.updated_ns = now;
    it = active_.emplace(id, std::move(candidate)).first;
    pass.events.push_back({AlertEvent::What::kPending, it->second});
  } else {
    Alert& al = it->second;
    // Figures follow the data; identity, timing and holders stay.
    al.agents = std::move(candidate.agents);
    al.labels = std::move(candidate.labels);
    al.bytes_now = candidate.bytes_now;
    al.count_now = candidate.count_now;
    al.bytes_delta = candidate.bytes_delta;
    al.count_delta = candidate.count_delta;
    al.bytes_per_hour = candidate.bytes_per_hour;
    al.count_per_hour = candidate.count_per_hour;
    al.fit = candidate.fit;
    al.increasing = candidate.increasing;
    al.window_ns = candidate.window_ns;
    al.top_growing = std::move(candidate.top_growing);
    al.updated_ns = now;
  }
  Alert& al = it->second;
  if (al.state != AlertState::kPending || now - al.since_ns < timing.for_ns) return;
  if (auto r = resolved_at_.find(id);
      r != resolved_at_.end() && now - r->second < timing.cooldown_ns) {
    return;
  }
  al.state = AlertState::kFiring;
  al.fired_ns = now;
  pass.events.push_back({AlertEvent::What::kFiring, al});
}

bool Detector::RaiseMemory(Alert alert, int64_t now_ns) {
  alert.kind = AlertKind::kMemory;
  alert.state = AlertState::kFiring;
  alert.updated_ns = now_ns;
  auto it = active_.find(alert.id);
  if (it == active_.end()) {
    alert.since_ns = alert.fired_ns = now_ns;
    active_.emplace(alert.id, std::move(alert));
    return true;
  }
  alert.since_ns = it->second.since_ns;
  alert.fired_ns = it->second.fired_ns;
  it->second = std::move(alert);
  return false;
}

void Detector::ResolveMemory(const RollingState& state, int64_t now, DetectorPass& pass) {
  for (auto it = active_.begin(); it != active_.end();) {
    const Alert& al = it->second;
    if (al.kind != AlertKind::kMemory) {
      ++it;
      continue;
    }
    const std::string& key = al.agents.empty() ? std::string() : al.agents.front();
    const RollingState::Agent* a = state.Find(key);
    const bool gone =
        a == nullptr || std::find(pass.forget.begin(), pass.forget.end(), key) != pass.forget.end();
    const double floor = (al.memory.crossed_pct - kMemoryResolvePoints) / 100.0;
    const bool below = a != nullptr && a->memory_limit > 0 &&
                       static_cast<double>(a->memory_bytes) < floor * a->memory_limit;
    if (!gone && !below) {
      ++it;
      continue;
    }
    Alert resolved = std::move(it->second);
    it = active_.erase(it);
    resolved.state = AlertState::kResolved;
    resolved.resolved_ns = resolved.updated_ns = now;
    resolved.note = gone ? "the agent is gone (it ended, was replaced, or fell silent)"
                         : "memory fell back below the threshold";
    pass.events.push_back({AlertEvent::What::kResolved, std::move(resolved)});
  }
}

void Detector::Restore(std::vector<Alert> firing) {
  for (Alert& al : firing) {
    if (al.state != AlertState::kFiring) continue;
    const std::string id = al.id;
    active_[id] = std::move(al);
  }
}

std::vector<Alert> Detector::HandOver(const std::string& agent, int64_t now_ns) {
  std::vector<Alert> gone;
  for (auto it = active_.begin(); it != active_.end();) {
    const std::vector<std::string>& agents = it->second.agents;
    if (agents.empty() || std::any_of(agents.begin(), agents.end(),
                                      [&](const std::string& a) { return a != agent; })) {
      ++it;
      continue;
    }
    Alert alert = std::move(it->second);
    alert.updated_ns = now_ns;
    alert.note = "handed over: its agent moved to another collector, which raises it again";
    failing_since_.erase(it->first);
    it = active_.erase(it);
    gone.push_back(std::move(alert));
  }
  return gone;
}

bool Detector::SetHolders(const std::string& id, const std::string& type,
                          std::vector<HeldBy> holders, std::string note,
                          std::vector<std::string> graphs, std::string site, int64_t now_ns) {
  auto it = active_.find(id);
  if (it == active_.end()) return false;
  it->second.holders_type = type;
  it->second.holders = std::move(holders);
  it->second.note = std::move(note);
  it->second.graphs = std::move(graphs);
  it->second.site = std::move(site);
  it->second.cause = CauseKey(it->second.holders);
  it->second.updated_ns = now_ns;
  return true;
}

}  // namespace tidemark::diff
