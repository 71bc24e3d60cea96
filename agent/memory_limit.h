// Memory limit: where this process stands against the limit that would get it killed, and
// which thresholds of it were crossed. No Python.
//
// The limit comes from the process's memory cgroup, found once from /proc/self/cgroup:
//   cgroup v2   memory.current - inactive_file of memory.stat, against memory.max
//   cgroup v1   memory.usage_in_bytes - total_inactive_file of memory.stat, against
//               memory.limit_in_bytes
// (usage minus the page cache the kernel drops before it kills: the working set, as the
// kubelet counts it). The cgroup and each of its ancestors up to the mount are read, and the
// one closest to its limit counts: a container's own cgroup often has no limit while its pod's
// has. `cgroup_dir` names one directory instead (a cgroup mounted elsewhere; a test's tree of
// those files): only it is read. A configured `rss_limit` is checked against the resident set
// size; with both, the larger share of its limit counts.
//
//   ┌────────────┐ Read() ┌──────────────┐ Cross() ┌──────────────────────────────┐
//   │MemorySource│───────▶│MemoryReading │────────▶│ PressureThresholds: crossed % │
//   └────────────┘        └──────────────┘         └──────────────────────────────┘
//
// Thread-safety: MemorySource is immutable after Discover (Read is reentrant: it reads the
// files through agent/descriptors.h's kept descriptors); PressureThresholds is a value used by
// one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tidemark::agent {

struct MemoryReading {
  uint64_t current = 0;     // Bytes counted against `limit`.
  uint64_t limit = 0;       // > 0.
  const char* source = "";  // "cgroup2", "cgroup1", "rss".
  uint64_t limit_hits = 0;  // cgroup v2 memory.events "max", v1 memory.failcnt; 0 for rss.
  uint64_t oom_kills = 0;   // cgroup v2 memory.events "oom_kill".

  double share() const { return static_cast<double>(current) / static_cast<double>(limit); }
};

struct MemoryLimitOptions {
  std::string cgroup_dir;                              // "": found from /proc/self/cgroup.
  uint64_t rss_limit = 0;                              // 0: none.
  std::string proc_self_cgroup = "/proc/self/cgroup";  // Seams for tests.
  std::string cgroup_mount = "/sys/fs/cgroup";
};

class MemorySource {
 public:
  // Finds the cgroup directories to read. Never fails: with no cgroup limit and no rss_limit
  // every Read() is empty.
  static MemorySource Discover(const MemoryLimitOptions& options);

  // The reading closest to its limit; nullopt when no limit is known (none set, or the files
  // unreadable).
  std::optional<MemoryReading> Read() const;

  // What was found, for status(): "cgroup2 /sys/fs/cgroup/x (and 2 ancestors)", "none".
  std::string Describe() const;

 private:
  enum class Version { kNone, kV1, kV2 };
  Version version_ = Version::kNone;
  std::vector<std::string> dirs_;  // The cgroup first, then its ancestors.
  uint64_t rss_limit_ = 0;

  std::optional<MemoryReading> ReadCgroup(const std::string& dir) const;
};

// Thresholds in percent of the limit, each crossed at most once until the share falls back
// below it by kRearmPoints.
class PressureThresholds {
 public:
  static constexpr double kRearmPoints = 5;
  // REQUIRES: each threshold in 1..100.
  explicit PressureThresholds(std::vector<uint32_t> percents);

  // The highest threshold newly crossed by `share` (0..1+), or 0. Thresholds below it that
  // were not crossed yet count as crossed too: one snapshot for a jump past several.
  uint32_t Cross(double share);

  const std::vector<uint32_t>& percents() const { return percents_; }

 private:
  std::vector<uint32_t> percents_;  // Ascending.
  std::vector<bool> crossed_;
};

// "80,90" -> {80, 90}; nullopt (with `error` set) for anything but integers 1..100.
std::optional<std::vector<uint32_t>> ParseThresholds(const std::string& text, std::string* error);

}  // namespace tidemark::agent
