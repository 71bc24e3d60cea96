// The leak detector: rules over the rolling state, and the life of each alert.
//
// Three kinds of alert, each keyed so that one problem is one alert:
//   leak    rule/service[/cause]: types grow like a leak (diff/growth.h LooksLikeLeak) in live
//           agents of a service. One alert per cause, not one per type: a leak drags its
//           contents along (the leaked objects' strs and lists grow too, under the same
//           holder). Until an investigation says what holds which type (SetCauses), every
//           qualifying type is in the alert rule/service; a type whose new objects sit under
//           another holder than that alert's then has an alert of its own,
//           rule/service/<holder path>, born with that holder, with its own timing and
//           cooldown. An alert is about its fastest-growing type, lists the agents growing it
//           with their figures summed, and names its other qualifying types first among the
//           other growing types.
//   native  service: RSS minus Python heap bytes grows like a leak while the heap does not
//           explain it (heap growth <= max_python_share of RSS growth): a C extension or the
//           allocator, which no per-type view shows.
//   silent  service/host/pid: an agent sent nothing for `intervals` of its usual interval (at
//           least min_silence). An agent replaced by a newer instance on the same host (a
//           restart) is forgotten instead; one silent for forget_after is forgotten too.
// Only live agents (not silent) take part in leak and native rules: a dead process's frozen
// series must not keep an alert up.
//
// Each key goes pending when its condition first holds, fires once it has held for `for`
// (and the key's cooldown since it last resolved has passed), and resolves once the
// condition has not held for resolve_after. A pending key whose condition stops for
// resolve_after is dropped without notice (a shorter lapse keeps it pending, its
// investigation going on). Evaluate() is one pass at time `now`: the clock is passed in.
//
// Thread-safety: none; the collector guards it with the rolling state's mutex.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "diff/growth.h"
#include "diff/rolling.h"

namespace tidemark::diff {

struct LeakRule {
  std::string name = "python-heap-growth";
  std::vector<std::string> services = {"*"};  // Globs.
  std::vector<std::string> types = {"*"};
  LeakCriteria criteria{.min_bytes_per_hour = 1 << 20,
                        .min_growth_bytes = 512 << 10,
                        .min_fit = 0.5,
                        .window_ns = kNsPerHour / 2};
  int64_t for_ns = kNsPerHour / 6;
  int64_t cooldown_ns = kNsPerHour;
  int64_t resolve_after_ns = kNsPerHour / 6;
};

struct NativeRule {
  bool enabled = true;
  LeakCriteria criteria{.min_bytes_per_hour = 8 << 20,
                        .min_growth_bytes = 4 << 20,
                        .min_fit = 0.5,
                        .window_ns = kNsPerHour / 2};
  double max_python_share = 0.25;
  int64_t for_ns = kNsPerHour / 6;
  int64_t cooldown_ns = kNsPerHour;
  int64_t resolve_after_ns = kNsPerHour / 6;
};

struct SilenceRule {
  bool enabled = true;
  double intervals = 5;
  int64_t min_silence_ns = int64_t{60} * 1'000'000'000;
  int64_t forget_after_ns = 24 * kNsPerHour;
};

struct DetectorConfig {
  std::vector<LeakRule> rules = {LeakRule{}};
  NativeRule native;
  SilenceRule silence;
  size_t top_growing = 5;  // Other growing types named in an alert.
};

enum class AlertKind : uint8_t { kLeak, kNative, kSilent, kMemory };
enum class AlertState : uint8_t { kPending, kFiring, kResolved };
// "1.5 MiB", "-300 B": for the one-line summaries people read.
std::string HumanBytes(double bytes);
// "2.5 s", "600 s": durations in the notes people read (3 significant digits).
std::string HumanSeconds(double seconds);

// "leak", "native", "silent", "memory-pressure".
const char* AlertKindName(AlertKind kind);
const char* AlertStateName(AlertState state);  // "pending", "firing", "resolved".

struct TypeGrowthRow {
  std::string type;
  double bytes_now = 0, count_now = 0;
  double bytes_per_hour = 0, count_per_hour = 0;
};

// What holds the growth: filled in by the collector from a graph diff.
struct HeldBy {
  std::string description;  // The holder object.
  std::string path;         // From a root to it, named where possible.
  uint64_t count = 0;       // New objects it holds.
  uint64_t bytes = 0;
};

// What an investigation found holds one type's new objects in a service.
struct Cause {
  std::string type;
  std::string key;  // The holder's path (else its description): one key, one leak.
  std::string holders_type;
  std::vector<HeldBy> holders;
  std::vector<std::string> graphs;
  std::string note;
  std::string site;  // Where the new objects were allocated (diff/sites.h GrowthSiteLine).
};

// The key of a list of holders: the first one's path, else its description; "" if none.
std::string CauseKey(const std::vector<HeldBy>& holders);

struct Alert {
  std::string id;  // The key: "leak/<rule>/<service>", "native/<service>",
                   // "silent/<service>/<host>/<pid>", "memory/<service>/<host>/<pid>".
  AlertKind kind = AlertKind::kLeak;
  AlertState state = AlertState::kPending;
  std::string rule;
  std::string service;
  std::string type;                 // Leak: the type; native: "(native memory)"; silent: "".
  std::vector<std::string> agents;  // Agent keys, largest growth first.
  std::vector<std::pair<std::string, std::string>> labels;  // Of the first agent.
  int64_t since_ns = 0;                                     // Condition first held.
  int64_t fired_ns = 0;
  int64_t resolved_ns = 0;
  int64_t updated_ns = 0;
  double bytes_now = 0, count_now = 0;
  double bytes_delta = 0, count_delta = 0;  // Over the window.
  double bytes_per_hour = 0, count_per_hour = 0;
  double fit = 0, increasing = 0;
  int64_t window_ns = 0;
  std::vector<TypeGrowthRow> top_growing;  // The first agent's other growing types.
  // What the leak is made of: the outermost new objects under the holder (a Record whose
  // bytes payload is `type`), or `type` itself.
  std::string holders_type;
  std::vector<HeldBy> holders;
  // The two graph snapshots the holders come from, as stored references (AGENT:SEQ).
  std::vector<std::string> graphs;
  std::string note;   // Why it resolved, or what is missing ("graph snapshots not requested").
  std::string cause;  // Leak: CauseKey(holders) once known.
  // Where the new objects were allocated, from the graphs' sampled allocation sites: "92% of
  // the new myapp.Session bytes were allocated at myapp/auth.py:42 in login (called from
  // ...)"; "" when the agent was not sampling or no site of the type grew.
  std::string site;
  // Memory pressure: the agent's reading when it crossed `memory.crossed_pct` of its limit
  // (top_growing then lists its largest types, with no rates).
  snapshot::MemoryFigures memory;

  std::string Summary() const;  // One line for people: what, where, how fast.
  // The commands that open the evidence: `tidemark gdiff FIRST SECOND`, `tidemark why SECOND
  // TYPE`; none without the two graphs.
  std::vector<std::string> EvidenceCommands() const;
};

struct AlertEvent {
  enum class What : uint8_t { kPending, kFiring, kResolved } what;
  Alert alert;
};

struct DetectorPass {
  std::vector<AlertEvent> events;
  std::vector<std::string> forget;                 // Agents to drop from the rolling state.
  size_t series_checked = 0, series_examined = 0;  // All, and past the cheap bound.
};

class Detector {
 public:
  explicit Detector(DetectorConfig config = {}) : config_(std::move(config)) {}
  void Configure(DetectorConfig config) { config_ = std::move(config); }
  const DetectorConfig& config() const { return config_; }

  DetectorPass Evaluate(const RollingState& state, int64_t now_ns);

  // Pending and firing alerts, by id.
  const std::map<std::string, Alert>& active() const { return active_; }
  // A memory-pressure alert (AlertKind::kMemory, id "memory/<service>/<host>/<pid>") from a
  // snapshot its agent took for a crossed memory threshold: it fires at once, or updates the
  // agent's firing one (a higher threshold crossed). True if it is new. It resolves when its
  // agent is forgotten (ended, replaced, silent past forget_after) or when the agent's newest
  // summary is kMemoryResolvePoints below the threshold it crossed.
  bool RaiseMemory(Alert alert, int64_t now_ns);
  static constexpr double kMemoryResolvePoints = 10;

  // After a restart: alerts that were firing. Their condition is re-checked on the next pass;
  // a silent one whose agent nothing folded back names stays firing (no evidence it spoke).
  void Restore(std::vector<Alert> firing);
  // `agent` moved to another collector (its goodbye said so; forget it in the rolling state
  // too): the active alerts that were about it alone leave this detector unresolved, and are
  // returned (state kFiring or kPending as they were; note says where they went). The next
  // collector raises them again from what it receives; nothing here resolves them.
  std::vector<Alert> HandOver(const std::string& agent, int64_t now_ns);
  // The collector attaches what holds the growth, and the graph snapshots that say so; false
  // if the alert is not active.
  bool SetHolders(const std::string& id, const std::string& type, std::vector<HeldBy> holders,
                  std::string note, std::vector<std::string> graphs, std::string site,
                  int64_t now_ns);

  // What holds each type's new objects in `service`, from an investigation's graph diff (set
  // the investigated alert's holders first: its holder decides which types stay with it). Kept
  // for kCauseTtlNs, at most kMaxCausesPerService per service (the oldest go first).
  void SetCauses(const std::string& service, std::vector<Cause> causes, int64_t now_ns);
  static constexpr int64_t kCauseTtlNs = 6 * kNsPerHour;
  static constexpr size_t kMaxCausesPerService = 64;
  size_t cause_count(const std::string& service) const {
    auto it = causes_.find(service);
    return it == causes_.end() ? 0 : it->second.size();
  }

  // Every type's growth in one agent over `window_ns`, fastest first; only growing types.
  static std::vector<TypeGrowthRow> GrowingTypes(const RollingState& state,
                                                 const RollingState::Agent& agent,
                                                 int64_t window_ns, size_t limit);

 private:
  struct Timing {
    int64_t for_ns, cooldown_ns, resolve_after_ns;
  };
  void Step(const std::string& id, bool holds, Alert candidate, Timing timing, int64_t now,
            DetectorPass& pass);
  bool SilentWithoutEvidence(const Alert& al, const RollingState& state, int64_t now) const;
  void ResolveMemory(const RollingState& state, int64_t now, DetectorPass& pass);
  // The leak alert id of `type` under `rule` in `service`, and the cause that split it off
  // (nullptr when it is the rule/service alert).
  std::pair<std::string, const Cause*> LeakId(const std::string& rule, const std::string& service,
                                              const std::string& type) const;

  struct StoredCause {
    Cause cause;
    int64_t set_ns = 0;
  };

  DetectorConfig config_;
  std::map<std::string, Alert> active_;
  std::map<std::string, int64_t> resolved_at_;    // For cooldowns; pruned.
  std::map<std::string, int64_t> failing_since_;  // Firing alerts whose condition stopped.
  std::map<std::string, std::map<std::string, StoredCause>> causes_;  // service -> type.
};

}  // namespace tidemark::diff
