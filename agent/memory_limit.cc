#include "agent/memory_limit.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <string_view>

#include "agent/descriptors.h"
#include "agent/process_memory.h"

namespace tidemark::agent {
namespace {

// A cgroup v1 limit at or above this is "no limit" (the kernel's PAGE_COUNTER_MAX in bytes).
constexpr uint64_t kV1Unlimited = uint64_t{1} << 62;

std::optional<uint64_t> ParseUint(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<uint64_t> ReadUintFile(const std::string& path) {
  auto text = ReadKeptFile(path);
  return text ? ParseUint(*text) : std::nullopt;
}

// The value of `key` in a "key value" per line file (memory.stat, memory.events); 0 if absent.
uint64_t KeyedValue(const std::optional<std::string>& text, std::string_view key) {
  if (!text) return 0;
  std::string_view rest = *text;
  while (!rest.empty()) {
    const size_t eol = std::min(rest.find('\n'), rest.size());
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(std::min(eol + 1, rest.size()));
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      return ParseUint(line.substr(key.size() + 1)).value_or(0);
    }
  }
  return 0;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// `leaf`, then each parent up to and including `root`.
std::vector<std::string> UpTo(std::string leaf, const std::string& root) {
  std::vector<std::string> dirs;
  while (leaf.size() > root.size() && leaf.compare(0, root.size(), root) == 0) {
    dirs.push_back(leaf);
    leaf.resize(leaf.rfind('/'));
  }
  dirs.push_back(root);
  return dirs;
}

}  // namespace

MemorySource MemorySource::Discover(const MemoryLimitOptions& options) {
  MemorySource source;
  source.rss_limit_ = options.rss_limit;
  if (!options.cgroup_dir.empty()) {
    const std::string& dir = options.cgroup_dir;
    source.dirs_ = {dir};
    if (Exists(dir + "/memory.max")) source.version_ = Version::kV2;
    if (Exists(dir + "/memory.limit_in_bytes")) source.version_ = Version::kV1;
    return source;
  }
  auto lines = ReadSmallFile(options.proc_self_cgroup.c_str());
  if (!lines) return source;
  std::string_view rest = *lines;
  while (!rest.empty()) {
    const size_t eol = std::min(rest.find('\n'), rest.size());
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(std::min(eol + 1, rest.size()));
    // "hierarchy-id:controllers:path"; v2's is "0::path".
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string_view::npos || second == std::string_view::npos) continue;
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    std::string path(line.substr(second + 1));
    if (path == "/") path.clear();
    bool v1_memory = false;
    for (size_t at = 0; at <= controllers.size();) {
      const size_t comma = std::min(controllers.find(',', at), controllers.size());
      v1_memory = v1_memory || controllers.substr(at, comma - at) == "memory";
      at = comma + 1;
    }
    Version version = Version::kNone;
    std::string root;
    if (v1_memory && Exists(options.cgroup_mount + "/memory/memory.limit_in_bytes")) {
      version = Version::kV1, root = options.cgroup_mount + "/memory";
    } else if (line.substr(0, 3) == "0::" && Exists(options.cgroup_mount + "/cgroup.controllers")) {
      version = Version::kV2, root = options.cgroup_mount;
    }
    if (version == Version::kNone) continue;
    // Inside a cgroup namespace the path may not exist under the mount: the mount is the
    // process's own cgroup then.
    const std::string leaf = Exists(root + path) ? root + path : root;
    source.version_ = version;
    source.dirs_ = UpTo(leaf, root);
    if (version == Version::kV1) break;  // A v1 memory controller wins over the unified tree.
  }
  return source;
}

std::optional<MemoryReading> MemorySource::ReadCgroup(const std::string& dir) const {
  // The limit first: a cgroup without one (most ancestors) costs one small read.
  const bool v2 = version_ == Version::kV2;
  if (version_ == Version::kNone) return std::nullopt;
  uint64_t limit =  // 0 when unreadable, or no limit ("max" in v2 is no number).
      ReadUintFile(dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes")).value_or(0);
  if (!v2 && limit >= kV1Unlimited) limit = 0;
  if (limit == 0) return std::nullopt;
  MemoryReading r;
  r.source = v2 ? "cgroup2" : "cgroup1";
  r.limit = limit;
  const uint64_t usage =
      ReadUintFile(dir + (v2 ? "/memory.current" : "/memory.usage_in_bytes")).value_or(0);
  const uint64_t inactive_file =
      KeyedValue(ReadKeptFile(dir + "/memory.stat"), v2 ? "inactive_file" : "total_inactive_file");
  r.current = usage - std::min(usage, inactive_file);
  if (v2) {
    const auto events = ReadKeptFile(dir + "/memory.events");
    r.limit_hits = KeyedValue(events, "max");
    r.oom_kills = KeyedValue(events, "oom_kill");
  } else {
    r.limit_hits = ReadUintFile(dir + "/memory.failcnt").value_or(0);
  }
  return r;
}

std::optional<MemoryReading> MemorySource::Read() const {
  std::optional<MemoryReading> best;
  auto consider = [&best](std::optional<MemoryReading> r) {
    if (r && (!best || r->share() > best->share())) best = r;
  };
  for (const std::string& dir : dirs_) consider(ReadCgroup(dir));
  if (rss_limit_ > 0) {
    if (const uint64_t rss = ResidentBytes(); rss > 0) {
      consider(MemoryReading{.current = rss, .limit = rss_limit_, .source = "rss"});
    }
  }
  return best;
}

std::string MemorySource::Describe() const {
  std::string out;
  if (version_ != Version::kNone && !dirs_.empty()) {
    out = std::string(version_ == Version::kV2 ? "cgroup2 " : "cgroup1 ") + dirs_.front();
    if (dirs_.size() > 1) out += " (and " + std::to_string(dirs_.size() - 1) + " ancestors)";
  }
  if (rss_limit_ > 0) {
    out += (out.empty() ? "" : "; ") + std::string("rss limit ") + std::to_string(rss_limit_);
  }
  return out.empty() ? "none" : out;
}

PressureThresholds::PressureThresholds(std::vector<uint32_t> percents)
    : percents_(std::move(percents)) {
  std::sort(percents_.begin(), percents_.end());
  percents_.erase(std::unique(percents_.begin(), percents_.end()), percents_.end());
  crossed_.assign(percents_.size(), false);
}

uint32_t PressureThresholds::Cross(double share) {
  const double percent = share * 100;
  uint32_t newly = 0;
  for (size_t i = 0; i < percents_.size(); ++i) {
    if (percent >= percents_[i]) {
      if (!crossed_[i]) newly = percents_[i];
      crossed_[i] = true;
    } else if (percent < percents_[i] - kRearmPoints) {
      crossed_[i] = false;
    }
  }
  return newly;
}

std::optional<std::vector<uint32_t>> ParseThresholds(const std::string& text, std::string* error) {
  std::vector<uint32_t> out;
  std::string_view rest = text;
  while (true) {
    const size_t comma = std::min(rest.find(','), rest.size());
    std::string_view item = rest.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '%')) item.remove_suffix(1);
    const auto value = ParseUint(item);
    if (!value || *value < 1 || *value > 100) {
      *error = "'" + std::string(item) + "' is not a percentage from 1 to 100";
      return std::nullopt;
    }
    out.push_back(static_cast<uint32_t>(*value));
    if (comma == rest.size()) break;
    rest.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace tidemark::agent
