#include "store/references.h"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <map>

namespace tidemark::store {

using snapshot::Fail;
using snapshot::Result;

Result<int64_t> ParseTime(const std::string& text, int64_t now_ns) {
  if (!text.empty() && text[0] == '-') {
    static const std::map<char, int64_t> units = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    const std::string number = text.size() >= 3 ? text.substr(1, text.size() - 2) : "";
    int64_t count = 0;
    const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), count);
    if (text.size() < 3 || !units.count(text.back()) || error != std::errc() ||
        end != number.data() + number.size() ||
        number.find_first_not_of("0123456789") != std::string::npos) {
      return Fail("'" + text + "' is not a time ago like -30m, -6h or -2d");
    }
    // At most 100 years ago: no product below overflows.
    if (count > int64_t{100} * 366 * 86400 / units.at(text.back())) {
      return Fail("'" + text + "' is more than 100 years ago");
    }
    return now_ns - count * units.at(text.back()) * 1'000'000'000;
  }
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end || (*end != '\0' && std::string(end) != "Z")) {
    return Fail("'" + text + "' is not a UTC time like 2026-11-26T03:00:00Z");
  }
  return static_cast<int64_t>(timegm(&tm)) * 1'000'000'000;
}

size_t AgentPartEnd(const std::string& ref) {
  // A time first: it may hold colons ("T21:25:00") that would read as a sequence number.
  for (size_t at = ref.find('@', 1); at != std::string::npos; at = ref.find('@', at + 1)) {
    if (at + 1 < ref.size() && ParseTime(ref.substr(at + 1), 0)) return at;
  }
  const size_t at = ref.rfind(':');
  if (at == std::string::npos || at == 0) return std::string::npos;
  const std::string what = ref.substr(at + 1);
  const bool seq = !what.empty() && what.find_first_not_of("0123456789") == std::string::npos;
  return what == "last" || what == "first" || seq ? at : std::string::npos;
}

Result<std::vector<uint32_t>> ResolveAgent(const Catalog& catalog, const std::string& name) {
  std::vector<const AgentRecord*> matches;
  const auto slash = name.find('/');
  for (const auto& [id, agent] : catalog.agents) {
    const auto& identity = agent.identity;
    const std::string full = snapshot::AgentName(identity);
    if (name.find_first_not_of("0123456789") == std::string::npos && !name.empty()) {
      if (std::to_string(id) == name) matches.push_back(&agent);
    } else if (std::count(name.begin(), name.end(), '/') == 2) {
      // SERVICE/HOST/PID@START as alerts name it, or SERVICE/HOST/PID.
      if (name == full || name == full.substr(0, full.rfind('@'))) matches.push_back(&agent);
    } else if (slash != std::string::npos) {
      if (identity.service == name.substr(0, slash) &&
          std::to_string(identity.pid) == name.substr(slash + 1)) {
        matches.push_back(&agent);
      }
    } else if (identity.service == name) {
      matches.push_back(&agent);
    }
  }
  if (matches.empty()) {
    return Fail(snapshot::Code::kNotFound,
                "no agent '" + name + "' in the store (see tidemark ls)");
  }
  std::sort(matches.begin(), matches.end(),
            [](auto* a, auto* b) { return a->identity.start_time_ns > b->identity.start_time_ns; });
  std::vector<uint32_t> ids;
  for (const auto* m : matches) ids.push_back(m->id);
  return ids;
}

Result<IndexEntry> ResolveRef(const Catalog& catalog, const std::string& ref, int64_t now_ns) {
  // An agent as alerts name it (SERVICE/HOST/PID@START) stands for its newest snapshot.
  if (std::count(ref.begin(), ref.end(), '/') == 2 && ref.find(':') == std::string::npos &&
      ResolveAgent(catalog, ref)) {
    return ResolveRef(catalog, ref + ":last", now_ns);
  }
  const auto at = AgentPartEnd(ref);
  if (at == std::string::npos) {
    return Fail("'" + ref +
                "' is neither a file nor a stored snapshot (AGENT:SEQ, AGENT:last or "
                "AGENT@TIME, TIME a UTC time like 2026-11-26T03:00:00Z or a time ago like -30m)");
  }
  auto agents = ResolveAgent(catalog, ref.substr(0, at));
  if (!agents) return std::unexpected(agents.error());
  const uint32_t agent = agents->front();  // The newest instance.
  std::vector<IndexEntry> entries;
  for (const auto& e : catalog.entries) {
    if (e.agent == agent) entries.push_back(e);
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.seq < b.seq; });
  if (entries.empty()) {
    return Fail(snapshot::Code::kNotFound,
                "agent " + std::to_string(agent) + " has no stored snapshots");
  }
  const std::string what = ref.substr(at + 1);
  if (ref[at] == ':') {
    if (what == "last") return entries.back();
    if (what == "first") return entries.front();
    for (const auto& e : entries) {
      if (std::to_string(e.seq) == what) return e;
    }
    return Fail(snapshot::Code::kNotFound, "agent " + std::to_string(agent) +
                                               " has no stored snapshot with seq " + what +
                                               " (stored: " + std::to_string(entries.front().seq) +
                                               " to " + std::to_string(entries.back().seq) +
                                               ", some may have been removed by retention)");
  }
  auto time = ParseTime(what, now_ns);
  if (!time) return std::unexpected(time.error());
  const IndexEntry* best = nullptr;
  for (const auto& e : entries) {
    if (e.timestamp_ns <= *time && (!best || e.timestamp_ns >= best->timestamp_ns)) best = &e;
  }
  if (!best)
    return Fail("agent " + std::to_string(agent) + " has no snapshot taken before " + what);
  return *best;
}

}  // namespace tidemark::store
