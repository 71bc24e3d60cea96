#include "collector/api_queries.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <unordered_map>

#include "diff/json.h"
#include "diff/type_diff.h"
#include "snapshot/wire.h"
#include "store/journal.h"
#include "store/references.h"
#include "store/store.h"

namespace tidemark::collector {
namespace {

using nlohmann::json;
using snapshot::Fail;
using snapshot::Result;

constexpr int64_t kSecondNs = 1'000'000'000;

QueryError Bad(std::string message, std::string parameter = "") {
  return {400, std::move(message), std::move(parameter)};
}

// A store error as a query error: what was named and not found is 404, the rest 500.
QueryError FromStore(const snapshot::Error& e, std::string parameter = "") {
  const int status = e.code == snapshot::Code::kNotFound  ? 404
                     : e.code == snapshot::Code::kInvalid ? 400
                                                          : 500;
  return {status, e.message, std::move(parameter)};
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> Decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] != '%') {
      out += text[i];
    } else {
      const int hi = i + 2 < text.size() ? HexValue(text[i + 1]) : -1;
      const int lo = hi >= 0 ? HexValue(text[i + 2]) : -1;
      if (lo < 0) return Fail("'" + std::string(text) + "' has a bad %-escape");
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    }
  }
  return out;
}

json Labels(const snapshot::Identity& id) {
  json out = json::object();
  for (const auto& [k, v] : id.labels) out[k] = v;
  return out;
}

json EntryJson(const store::Catalog& catalog, const store::IndexEntry& e) {
  const std::string name = snapshot::AgentName(catalog.agents.at(e.agent).identity);
  json out = {{"ref", name + ":" + std::to_string(e.seq)},
              {"agent", name},
              {"seq", e.seq},
              {"kind", snapshot::KindName(e.kind)},
              {"taken_ns", e.timestamp_ns},
              {"taken", diff::Rfc3339(e.timestamp_ns)},
              {"received_ns", e.received_ns},
              {"objects", e.objects},
              {"heap_bytes", e.bytes},
              {"types", e.types},
              {"rss_bytes", e.rss_bytes},
              {"stored_bytes", e.message_bytes},
              {"memory_crossed_pct", e.crossed_pct}};
  return out;
}

// The values of those of `names` given.
std::vector<std::string> Present(const QueryParams& params,
                                 std::initializer_list<const char*> names) {
  std::vector<std::string> out;
  for (const char* name : names) {
    if (auto value = params.Get(name)) out.push_back(*value);
  }
  return out;
}

// The snapshot a parameter names, decoded.
std::expected<snapshot::Snapshot, QueryError> Load(const std::string& dir,
                                                   const store::Catalog& catalog,
                                                   const QueryParams& params,
                                                   const std::string& name, int64_t now_ns) {
  auto ref = params.Required(name);
  if (!ref) return std::unexpected(Bad(ref.error().message, name));
  auto entry = store::ResolveRef(catalog, *ref, now_ns);
  if (!entry) return std::unexpected(FromStore(entry.error(), name));
  auto message = store::ReadMessage(dir, *entry);
  if (!message) return std::unexpected(FromStore(message.error(), name));
  auto decoded = snapshot::Decode(*message);
  if (!decoded) return std::unexpected(QueryError{500, decoded.error().message, name});
  return std::move(*decoded);
}

}  // namespace

Result<QueryParams> QueryParams::Parse(const std::string& query) {
  QueryParams p;
  size_t at = 0;
  while (at < query.size()) {
    const size_t amp = std::min(query.find('&', at), query.size());
    const std::string_view item(query.data() + at, amp - at);
    at = amp + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    auto key = Decode(item.substr(0, eq));
    auto value = Decode(eq == std::string_view::npos ? "" : item.substr(eq + 1));
    if (!key || !value) return Fail((key ? value : key).error().message);
    p.values_[*key] = *value;
  }
  return p;
}

std::optional<std::string> QueryParams::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

Result<std::string> QueryParams::Required(const std::string& name) const {
  auto v = Get(name);
  if (!v || v->empty()) return Fail("the parameter '" + name + "' is required");
  return *v;
}

Result<int64_t> QueryParams::Integer(const std::string& name, int64_t fallback, int64_t min,
                                     int64_t max) const {
  auto v = Get(name);
  if (!v) return fallback;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), value);
  if (ec != std::errc() || end != v->data() + v->size() || value < min || value > max) {
    return Fail("'" + name + "' must be a whole number from " + std::to_string(min) + " to " +
                std::to_string(max) + ", not '" + *v + "'");
  }
  return value;
}

Result<int64_t> QueryParams::Time(const std::string& name, int64_t fallback, int64_t now_ns) const {
  auto v = Get(name);
  if (!v) return fallback;
  if (*v == "now") return now_ns;
  auto t = store::ParseTime(*v, now_ns);
  if (!t) return Fail("'" + name + "': " + t.error().message);
  return *t;
}

Result<int64_t> QueryParams::Duration(const std::string& name, int64_t fallback_ns) const {
  auto v = Get(name);
  if (!v) return fallback_ns;
  static const std::map<char, int64_t> units = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
  std::string number = *v;
  int64_t unit = 1;
  if (!number.empty() && units.count(number.back())) {
    unit = units.at(number.back());
    number.pop_back();
  }
  int64_t value = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size() || value <= 0) {
    return Fail("'" + name + "' must be a duration like 30s, 5m or 1h, not '" + *v + "'");
  }
  return value * unit * kSecondNs;
}

bool QueryParams::Flag(const std::string& name) const {
  auto v = Get(name);
  return v && (*v == "1" || *v == "true" || v->empty());
}

std::optional<std::string> QueryParams::Unknown(std::initializer_list<const char*> known) const {
  for (const auto& [name, value] : values_) {
    if (std::find_if(known.begin(), known.end(), [&](const char* k) { return name == k; }) ==
        known.end()) {
      return name;
    }
  }
  return std::nullopt;
}

namespace {

// Fails the query on a parameter it does not take.
#define TM_KNOWN(params, ...)                                                      \
  if (auto unknown = (params).Unknown({__VA_ARGS__})) {                            \
    return std::unexpected(Bad("unknown parameter '" + *unknown + "'", *unknown)); \
  }

// The value of a Result<T> from a parameter, or the query fails naming it.
#define TM_PARAM(var, expr, name)                                                     \
  auto var##_result = (expr);                                                         \
  if (!var##_result) return std::unexpected(Bad(var##_result.error().message, name)); \
  auto var = *var##_result

// The catalog of every agent and of the entries of those the references name.
#define TM_CATALOG(var, dir, cache, ...)                                       \
  auto var##_result = (cache).CatalogFor(dir, Present(params, {__VA_ARGS__})); \
  if (!var##_result) return std::unexpected(FromStore(var##_result.error()));  \
  const store::Catalog& var = *var##_result

// The listing from `cache`, or from the whole catalog when agents.log lost an agent (the
// catalog names it from its snapshots).
std::expected<store::ListingCache::Listing, QueryError> ListAgents(const std::string& dir,
                                                                   store::ListingCache& cache) {
  auto listing = cache.Read(dir);
  if (!listing) return std::unexpected(FromStore(listing.error()));
  if (!listing->unnamed) return std::move(*listing);
  auto catalog = store::ReadCatalog(dir);
  if (!catalog) return std::unexpected(FromStore(catalog.error()));
  listing->agents = std::move(catalog->agents);
  return std::move(*listing);
}

}  // namespace

QueryResult Services(const std::string& dir, store::ListingCache& cache,
                     const QueryParams& params) {
  TM_KNOWN(params);
  auto listing = ListAgents(dir, cache);
  if (!listing) return std::unexpected(listing.error());
  struct Row {
    uint64_t agents = 0, snapshots = 0, rss = 0, heap = 0;
    int64_t last_ns = 0;
  };
  std::map<std::string, Row> rows;
  for (const auto& [agent, a] : listing->listed) {
    Row& r = rows[listing->agents.at(agent).identity.service];
    r.agents += 1;
    r.snapshots += a.snapshots;
    r.last_ns = std::max(r.last_ns, a.newest.timestamp_ns);
  }
  // RSS and heap now: the sum of each agent's newest snapshot, over agents heard from within
  // an hour of the service's newest.
  for (const auto& [agent, a] : listing->listed) {
    Row& r = rows[listing->agents.at(agent).identity.service];
    if (a.newest.timestamp_ns < r.last_ns - 3600 * kSecondNs) continue;
    r.rss += a.newest.rss_bytes;
    r.heap += a.newest.bytes;
  }
  json out = json::array();
  for (const auto& [service, r] : rows) {
    out.push_back({{"service", service},
                   {"agents", r.agents},
                   {"snapshots", r.snapshots},
                   {"last_ns", r.last_ns},
                   {"last", diff::Rfc3339(r.last_ns)},
                   {"rss_bytes", r.rss},
                   {"heap_bytes", r.heap}});
  }
  return json{{"services", out}};
}

QueryResult Agents(const std::string& dir, store::ListingCache& cache, const QueryParams& params) {
  TM_KNOWN(params, "service");
  auto listing = ListAgents(dir, cache);
  if (!listing) return std::unexpected(listing.error());
  const auto service = params.Get("service");
  json out = json::array();
  for (const auto& [id, agent] : listing->agents) {
    const snapshot::Identity& who = agent.identity;
    if (service && who.service != *service) continue;
    auto listed = listing->listed.find(id);
    json row = {{"name", snapshot::AgentName(who)},
                {"id", id},
                {"service", who.service},
                {"host", who.host},
                {"pid", who.pid},
                {"start_ns", who.start_time_ns},
                {"labels", Labels(who)},
                {"snapshots", listed == listing->listed.end() ? 0 : listed->second.snapshots}};
    if (listed != listing->listed.end()) {
      row["last_ns"] = listed->second.newest.timestamp_ns;
      row["rss_bytes"] = listed->second.newest.rss_bytes;
      row["heap_bytes"] = listed->second.newest.bytes;
    }
    out.push_back(std::move(row));
  }
  return json{{"agents", out}};
}

QueryResult Snapshots(const std::string& dir, store::ListingCache& cache, const QueryParams& params,
                      int64_t now_ns) {
  TM_KNOWN(params, "agent", "kind", "limit");
  TM_PARAM(name, params.Required("agent"), "agent");
  TM_PARAM(limit, params.Integer("limit", 100, 1, 10000), "limit");
  const auto kind = params.Get("kind");
  if (kind && *kind != "summary" && *kind != "graph") {
    return std::unexpected(Bad("'kind' must be summary or graph, not '" + *kind + "'", "kind"));
  }
  TM_CATALOG(catalog, dir, cache, "agent");
  auto agents = store::ResolveAgent(catalog, name);
  if (!agents) return std::unexpected(FromStore(agents.error(), "agent"));
  std::vector<const store::IndexEntry*> entries;
  for (const auto& e : catalog.entries) {
    if (e.agent == agents->front() && (!kind || *kind == snapshot::KindName(e.kind))) {
      entries.push_back(&e);
    }
  }
  std::sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->seq > b->seq; });
  json out = json::array();
  for (size_t i = 0; i < entries.size() && i < static_cast<size_t>(limit); ++i) {
    out.push_back(EntryJson(catalog, *entries[i]));
  }
  (void)now_ns;
  return json{{"agent", snapshot::AgentName(catalog.agents.at(agents->front()).identity)},
              {"total", entries.size()},
              {"snapshots", out}};
}

QueryResult SnapshotTypes(const std::string& dir, store::ListingCache& cache,
                          const QueryParams& params, int64_t now_ns) {
  TM_KNOWN(params, "ref", "top");
  TM_PARAM(top, params.Integer("top", 50, 1, 100000), "top");
  TM_CATALOG(catalog, dir, cache, "ref");
  auto s = Load(dir, catalog, params, "ref", now_ns);
  if (!s) return std::unexpected(s.error());
  std::sort(s->types.begin(), s->types.end(),
            [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
  json rows = json::array();
  for (size_t i = 0; i < s->types.size() && i < static_cast<size_t>(top); ++i) {
    const auto& t = s->types[i];
    rows.push_back(
        {{"type", t.name}, {"count", t.count}, {"bytes", t.bytes}, {"largest_bytes", t.max_bytes}});
  }
  const snapshot::Header& h = s->header;
  return json{{"ref", snapshot::AgentName(h.identity) + ":" + std::to_string(h.seq)},
              {"kind", snapshot::KindName(h.kind)},
              {"taken_ns", h.timestamp_ns},
              {"objects", h.objects},
              {"heap_bytes", h.bytes},
              {"rss_bytes", h.rss_bytes},
              {"type_count", s->types.size()},
              {"has_values", h.has_values},
              {"types", rows}};
}

QueryResult SnapshotDiff(const std::string& dir, store::ListingCache& cache,
                         const QueryParams& params, int64_t now_ns) {
  TM_KNOWN(params, "a", "b", "top");
  TM_PARAM(top, params.Integer("top", 50, 1, 100000), "top");
  TM_CATALOG(catalog, dir, cache, "a", "b");
  auto a = Load(dir, catalog, params, "a", now_ns);
  if (!a) return std::unexpected(a.error());
  auto b = Load(dir, catalog, params, "b", now_ns);
  if (!b) return std::unexpected(b.error());
  if (snapshot::AgentName(a->header.identity) != snapshot::AgentName(b->header.identity)) {
    return std::unexpected(Bad("'a' and 'b' must be snapshots of the same agent", "b"));
  }
  json rows = json::array();
  const auto deltas = diff::DiffTypes(a->types, b->types);
  for (size_t i = 0; i < deltas.size() && i < static_cast<size_t>(top); ++i) {
    const auto& d = deltas[i];
    rows.push_back({{"type", d.name},
                    {"count_before", d.count_before},
                    {"count_after", d.count_after},
                    {"bytes_before", d.bytes_before},
                    {"bytes_after", d.bytes_after},
                    {"bytes_delta", d.bytes_delta()},
                    {"count_delta", d.count_delta()}});
  }
  return json{{"a", snapshot::AgentName(a->header.identity) + ":" + std::to_string(a->header.seq)},
              {"b", snapshot::AgentName(b->header.identity) + ":" + std::to_string(b->header.seq)},
              {"seconds", (b->header.timestamp_ns - a->header.timestamp_ns) / 1e9},
              {"types", rows}};
}

namespace {

// Least-squares slope of (t, v) pairs, per hour; 0 with fewer than two.
double PerHour(const std::vector<std::pair<double, double>>& points) {
  if (points.size() < 2) return 0;
  double mt = 0, mv = 0;
  for (const auto& [t, v] : points) mt += t, mv += v;
  mt /= points.size(), mv /= points.size();
  double num = 0, den = 0;
  for (const auto& [t, v] : points) num += (t - mt) * (v - mv), den += (t - mt) * (t - mt);
  return den > 0 ? num / den * 3600.0 * kSecondNs : 0;
}

// One agent's steps as its records stream by (store::ScanSeries, store::ReadSeriesAt): each
// step's last record counts. An agent's records come oldest first, so its record for a step is
// final once one for a later step arrives; one older than the previous record (a clock stepped
// back) is skipped.
class AgentSteps {
 public:
  explicit AgentSteps(size_t steps)
      : table_{std::vector<bool>(steps),
               std::vector<uint64_t>(steps),
               std::vector<uint64_t>(steps),
               0,
               {}} {}

  void Add(const store::SeriesRecord& r, size_t step) {
    if (r.file_id != file_) {  // Type ids are the file's own.
      file_ = r.file_id;
      local_.clear();
    }
    if (step_ != kNone && (step < step_ || r.timestamp_ns < timestamp_ns_)) return;
    if (step_ != kNone && step != step_) Commit();
    step_ = step;
    timestamp_ns_ = r.timestamp_ns;
    rss_ = r.rss_bytes;
    figures_.clear();
    for (const store::SeriesFigures& f : r.types) {
      figures_.push_back({Global(f.type, r.names), f.count, f.bytes});
    }
  }

  // The `top` largest types at the last step with data. REQUIRES: every record added.
  SeriesTable Finish(size_t top) {
    if (step_ != kNone) Commit();
    table_.agents = step_ != kNone ? 1 : 0;
    size_t end = table_.has.size();
    while (end > 0 && !table_.has[end - 1]) --end;
    std::vector<size_t> order(names_.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    auto last = [&](size_t k) { return end ? bytes_[k][end - 1] : 0; };
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return last(a) != last(b) ? last(a) > last(b) : names_[a] < names_[b];
    });
    if (order.size() > top) order.resize(top);
    for (size_t k : order) {
      table_.rows.push_back({names_[k], std::move(bytes_[k]), std::move(count_[k])});
    }
    return std::move(table_);
  }

 private:
  static constexpr size_t kNone = SIZE_MAX;
  struct Figure {
    size_t type;
    uint64_t count, bytes;
  };

  size_t Global(uint32_t id, const std::vector<std::string>* names) {
    auto known = local_.find(id);
    if (known != local_.end()) return known->second;
    const std::string& text = names && id < names->size() ? (*names)[id] : kUnnamed;
    auto [at, added] = index_.emplace(text, names_.size());
    if (added) {
      names_.push_back(text);
      bytes_.emplace_back(table_.has.size(), 0);
      count_.emplace_back(table_.has.size(), 0);
    }
    local_.emplace(id, at->second);
    return at->second;
  }

  void Commit() {
    table_.has[step_] = true;
    table_.rss[step_] = rss_;
    table_.heap[step_] = 0;
    for (const Figure& f : figures_) {
      bytes_[f.type][step_] = f.bytes;
      count_[f.type][step_] = f.count;
      table_.heap[step_] += f.bytes;
    }
  }

  inline static const std::string kUnnamed;
  SeriesTable table_;
  std::vector<std::string> names_;
  std::vector<std::vector<uint64_t>> bytes_, count_;
  std::unordered_map<std::string, size_t> index_;
  std::unordered_map<uint32_t, size_t> local_;
  uint64_t file_ = UINT64_MAX;
  size_t step_ = kNone;
  int64_t timestamp_ns_ = 0;
  uint64_t rss_ = 0;
  std::vector<Figure> figures_;
};

// An agent's steps: from the records the rollup locates when it holds the range, else from a
// scan of the series files since `from`.
Result<SeriesTable> AgentSeries(const std::string& dir, const SeriesRollup* rollup, uint32_t agent,
                                const StepRange& range, size_t top) {
  AgentSteps steps(range.steps);
  const int64_t to = range.from_ns + static_cast<int64_t>(range.steps) * range.step_ns;
  auto add = [&](const store::SeriesRecord& r) {
    if (r.goodbye || r.agent != agent || r.timestamp_ns < range.from_ns || r.timestamp_ns >= to) {
      return;
    }
    steps.Add(r, static_cast<size_t>((r.timestamp_ns - range.from_ns) / range.step_ns));
  };
  if (auto located = rollup ? rollup->Agent(agent, range.from_ns, to) : std::nullopt) {
    auto read = store::ReadSeriesAt(dir, located->locations, [&](const store::SeriesRecord& r) {
      store::SeriesRecord named = r;
      auto names = located->names.find(r.file_id);
      named.names = names == located->names.end() ? nullptr : names->second.get();
      add(named);
    });
    if (!read) return std::unexpected(read.error());
  } else if (auto scanned = store::ScanSeries(dir, {agent, range.from_ns}, add); !scanned) {
    return std::unexpected(scanned.error());
  }
  return steps.Finish(top);
}

// A service's steps from the rollup when it holds the range, else from a rollup of the
// records read for this query (the same sums, from the files).
Result<SeriesTable> ServiceSeries(const std::string& dir, const SeriesRollup* rollup,
                                  const std::string& service, const std::set<uint32_t>& agents,
                                  const StepRange& range, size_t top, int64_t now_ns) {
  if (rollup) {
    if (auto table = rollup->Service(service, range, top, now_ns)) return std::move(*table);
  }
  const int64_t to = range.from_ns + static_cast<int64_t>(range.steps) * range.step_ns;
  constexpr int64_t kLookbackNs = 3600 * kSecondNs;  // SeriesRollup's longest.
  SeriesRollup once(RollupOptions{.max_bytes = UINT64_MAX,
                                  .horizon_ns = to - range.from_ns + 2 * kLookbackNs,
                                  .resolution_ns = std::min(range.step_ns, 60 * kSecondNs),
                                  .locations = false});
  auto scanned = store::ScanSeries(dir, {std::nullopt, range.from_ns - kLookbackNs},
                                   [&](const store::SeriesRecord& r) {
                                     if (agents.count(r.agent) && r.timestamp_ns < to) {
                                       once.ApplyAll(r, service);
                                     }
                                   });
  if (!scanned) return std::unexpected(scanned.error());
  return std::move(*once.Service(service, range, top, now_ns));
}

json SeriesJson(const SeriesTable& table, const StepRange& range) {
  const auto values = [&](const std::vector<uint64_t>& v) {
    json out = json::array();
    for (size_t b = 0; b < range.steps; ++b) out.push_back(table.has[b] ? json(v[b]) : json());
    return out;
  };
  json t = json::array();
  for (size_t b = 0; b < range.steps; ++b) {
    t.push_back(range.from_ns + static_cast<int64_t>(b) * range.step_ns);
  }
  json rows = json::array();
  for (const SeriesTable::Row& row : table.rows) {
    std::vector<std::pair<double, double>> fit;
    for (size_t b = 0; b < range.steps; ++b) {
      if (table.has[b]) {
        fit.emplace_back(static_cast<double>(b * range.step_ns), static_cast<double>(row.bytes[b]));
      }
    }
    rows.push_back({{"type", row.type},
                    {"bytes", values(row.bytes)},
                    {"count", values(row.count)},
                    {"bytes_per_hour", PerHour(fit)}});
  }
  return json{{"from_ns", range.from_ns},
              {"to_ns", range.from_ns + static_cast<int64_t>(range.steps) * range.step_ns},
              {"step_s", range.step_ns / kSecondNs},
              {"agents", table.agents},
              {"t_ns", t},
              {"rss_bytes", values(table.rss)},
              {"heap_bytes", values(table.heap)},
              {"types", rows}};
}

}  // namespace

QueryResult Series(const std::string& dir, const SeriesRollup* rollup, const QueryParams& params,
                   int64_t now_ns) {
  TM_KNOWN(params, "service", "agent", "from", "to", "step", "types");
  const auto service = params.Get("service");
  const auto agent_name = params.Get("agent");
  if (!service == !agent_name) {
    return std::unexpected(Bad("give one of 'service' and 'agent'", service ? "agent" : "service"));
  }
  TM_PARAM(to, params.Time("to", now_ns, now_ns), "to");
  TM_PARAM(from, params.Time("from", to - 3600 * kSecondNs, now_ns), "from");
  if (from >= to) return std::unexpected(Bad("'from' must be before 'to'", "from"));
  TM_PARAM(step, params.Duration("step", std::max<int64_t>(60 * kSecondNs, (to - from) / 300)),
           "step");
  const int64_t steps = (to - from + step - 1) / step;
  if (steps > kMaxSeriesPoints) {
    return std::unexpected(Bad("from 'from' to 'to' is " + std::to_string(steps) +
                                   " steps, over the limit of " + std::to_string(kMaxSeriesPoints) +
                                   ": take a longer step",
                               "step"));
  }
  TM_PARAM(type_count, params.Integer("types", 10, 0, 100), "types");
  // Agents only (agents.log): a series needs no index entry.
  auto named = store::ReadAgents(dir);
  if (!named) return std::unexpected(FromStore(named.error()));
  store::Catalog catalog;
  catalog.agents = std::move(*named);
  const StepRange range{from, step, static_cast<size_t>(steps)};
  const size_t top = static_cast<size_t>(type_count);
  Result<SeriesTable> table;
  if (agent_name) {
    auto ids = store::ResolveAgent(catalog, *agent_name);
    if (!ids) return std::unexpected(FromStore(ids.error(), "agent"));
    table = AgentSeries(dir, rollup, ids->front(), range, top);
  } else {
    std::set<uint32_t> agents;
    for (const auto& [id, a] : catalog.agents) {
      if (a.identity.service == *service) agents.insert(id);
    }
    if (agents.empty()) {
      return std::unexpected(
          QueryError{404, "no service '" + *service + "' in the store", "service"});
    }
    table = ServiceSeries(dir, rollup, *service, agents, range, top, now_ns);
  }
  if (!table) return std::unexpected(FromStore(table.error()));
  return SeriesJson(*table, range);
}

std::expected<std::string, QueryError> AgentNamed(const std::string& dir,
                                                  store::ListingCache& cache,
                                                  const std::string& name,
                                                  const std::string& parameter) {
  auto catalog_result = cache.CatalogFor(dir, {name});
  if (!catalog_result) return std::unexpected(FromStore(catalog_result.error()));
  const store::Catalog& catalog = *catalog_result;
  auto agents = store::ResolveAgent(catalog, name);
  if (!agents) return std::unexpected(FromStore(agents.error(), parameter));
  return snapshot::AgentName(catalog.agents.at(agents->front()).identity);
}

QueryResult Alerts(const std::string& dir, const QueryParams& params) {
  TM_KNOWN(params, "all");
  auto records = store::ReadJournal(dir + "/alerts.jnl", "TDMA");
  if (!records) return std::unexpected(FromStore(records.error()));
  const diff::AlertLog log = diff::ReplayAlertRecords(*records);
  json out = {{"firing", json::array()}};
  for (const auto& a : log.active) out["firing"].push_back(diff::ToJson(a));
  if (params.Flag("all")) {
    out["resolved"] = json::array();
    for (const auto& a : log.history) out["resolved"].push_back(diff::ToJson(a));
  }
  return out;
}

QueryResult Reports(const std::string& dir, const QueryParams& params) {
  TM_KNOWN(params, "id");
  auto records = store::ReadJournal(dir + "/reports.jnl", "TDMR");
  if (!records) return std::unexpected(FromStore(records.error()));
  const auto id = params.Get("id");
  json list = json::array();
  for (const std::string& r : *records) {
    auto report = diff::ReportFromJson(json::parse(r, nullptr, false));
    if (!report) continue;
    if (id && (report->id == *id || *id == "last")) {
      if (*id != "last") return diff::ToJson(*report);
      list = diff::ToJson(*report);  // The newest so far.
      continue;
    }
    if (!id) {
      list.push_back({{"id", report->id},
                      {"schedule", report->schedule},
                      {"created", diff::Rfc3339(report->created_ns)},
                      {"sections", report->sections.size()}});
    }
  }
  if (id && *id != "last") return std::unexpected(QueryError{404, "no report '" + *id + "'", "id"});
  if (id && list.is_array()) return std::unexpected(QueryError{404, "no report yet", "id"});
  return id ? list : json{{"reports", list}};
}

}  // namespace tidemark::collector
