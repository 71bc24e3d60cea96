// Where a snapshot's walk runs, and how `auto` chooses. No Python.
//
//   inline  the walk runs on the calling thread with the GIL held throughout (the pause grows
//           with the object count: ~50-170 ns per object).
//   fork    a copy-on-write child walks a frozen copy of the heap (agent/isolation.h); the GIL
//           is held only while the child is made (the kernel copies page tables: the pause
//           grows with the page-table size, VmPTE).
//   auto    fork when that is the shorter pause by a margin: the predicted walk (the last
//           walk's CPU time, inline or in a child alike, scaled by how the RSS changed since;
//           before any walk, kFirstWalkMsPerMiB per MiB of RSS) is at least kMinForkWalkMs and
//           at least twice the predicted fork (page tables x the last clone's CPU time per
//           byte of page table, kInitialForkMsPerMiB before any fork). CPU time, not wall
//           time: a loaded machine that keeps the thread off a CPU stretches both pauses alike
//           and must not turn a small heap's walk into a fork. Before any walk the walk is
//           predicted from sys.getallocatedblocks() (about one block per object) at
//           kFirstWalkNsPerBlock, or where that counts nothing from the RSS at
//           kFirstWalkMsPerMiB. Inline otherwise, when Python
//           sizers are configured (they cannot run in a child), and for good once the system
//           refused a fork with EPERM or ENOSYS (seccomp, a sandbox); other refusals (EAGAIN:
//           RLIMIT_NPROC or a memory cgroup; ENOMEM: strict overcommit) are tried again after
//           kRetryRefusedAfter snapshots.
//
// A fork that the host's own fork() interrupts (the agent pauses around it, and kills a child
// still walking) is not a walk: the prediction stays as it was.
//
// Thread-safety: IsolationPolicy is internally locked; one per process (Policy()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace tidemark::agent {

enum class Isolation : uint8_t { kInline, kFork, kAuto };

std::optional<Isolation> ParseIsolation(std::string_view name);  // "inline", "fork", "auto"
const char* IsolationName(Isolation isolation);

struct IsolationSettings {
  Isolation mode = Isolation::kAuto;
  // The longest GIL pause a walk may take when it runs inline only because a fork was refused,
  // failed or is not possible (TIDEMARK_MAX_INLINE_PAUSE): one predicted longer is skipped.
  double max_inline_pause_ms = 200;
  // The child's own memory (tables and message); 0: "auto", enough for the heap (agent/take.h).
  size_t child_max_bytes = 0;
  double child_timeout_s = 60;  // Killed past this (the parent's wait).
  int zstd_level = 1;
};

// What status() shows about isolation: counts since the start and the last snapshot's figures.
struct IsolationFigures {
  uint64_t inline_walks = 0;
  uint64_t fork_walks = 0;
  uint64_t fork_refused = 0;       // clone() refused: that snapshot was taken inline.
  uint64_t child_failed = 0;       // A child died, overran its deadline or its memory: dropped.
  uint64_t child_cancelled = 0;    // Killed because the agent paused (a host fork) or stopped.
  uint64_t skipped_for_pause = 0;  // Not taken: inline instead of a fork, over the pause bound.
  std::string last_isolation = "none";  // inline, fork, or "inline (fork refused: EAGAIN)".
  std::string last_child_error;
  double last_fork_pause_ms = 0;         // GIL held to make the child.
  double last_clone_ms = 0;              // Of which the clone system call (the kernel's part).
  double last_child_walk_ms = 0;         // The child's walk alone (what inline would have paused).
  double last_child_wall_ms = 0;         // From the clone to the message in the parent's hands.
  uint64_t last_child_peak_bytes = 0;    // The child's own memory (tables, message) at its peak.
  uint64_t last_parent_fault_bytes = 0;  // Pages the parent faulted in while the child lived.
  uint64_t last_page_table_bytes = 0;
};

class IsolationPolicy {
 public:
  static constexpr double kFirstWalkNsPerBlock = 100.0;
  static constexpr double kFirstWalkMsPerMiB = 0.5;
  static constexpr double kInitialForkMsPerMiB = 10.0;  // Of page tables (bench/agent).
  static constexpr double kMinForkWalkMs = 20.0;
  static constexpr int kRetryRefusedAfter = 10;

  // What Decide may ask, only when it needs to (most walks are decided from the last one
  // alone): the page tables' size, and sys.getallocatedblocks() (or -1).
  struct Probes {
    std::function<uint64_t()> page_table_bytes;
    std::function<int64_t()> allocated_blocks;
  };

  struct Decision {
    Isolation mode = Isolation::kInline;  // Never kAuto.
    uint64_t page_table_bytes = 0;        // What the probe read, or 0.
    // Inline only because a fork is refused, failed lately or impossible (not because the walk
    // is short, or asked for, or needs Python sizers); then also the walk's predicted pause.
    bool fallback = false;
    double predicted_walk_ms = 0;
  };
  // The mode for the next walk. The probes run without the policy's lock held (a probe may
  // take the GIL).
  Decision Decide(Isolation requested, bool sizers, uint64_t rss_bytes, const Probes& probes);
  // The next walk's CPU time, predicted: the last walk's scaled by the RSS, else from
  // sys.getallocatedblocks(), else from the RSS.
  double PredictWalkMs(uint64_t rss_bytes, const Probes& probes) const;
  // A walk not taken: it would have run inline over max_inline_pause_ms.
  void RecordSkippedForPause();

  // `walk_cpu_ms`, `fork_cpu_ms`: the CPU time the walk and the clone took (ThreadCpuMs).
  void RecordInline(double walk_cpu_ms, uint64_t rss_bytes, const std::string& why = "inline");
  void RecordFork(const IsolationFigures& last, uint64_t rss_bytes, double walk_cpu_ms,
                  double fork_cpu_ms);
  void RecordRefused(int error_number);  // Then RecordInline for the walk that replaced it.
  void RecordChildFailed(const std::string& error);
  // Then `auto` walks inline for the next kRetryRefusedAfter walks: a host that forks more
  // often than a child walks would otherwise never get a snapshot.
  void RecordChildCancelled();

  IsolationFigures figures() const;

 private:
  mutable std::mutex mutex_;
  IsolationFigures figures_;
  double last_walk_cpu_ms_ = -1;
  uint64_t last_walk_rss_ = 0;
  double fork_cpu_ms_per_mib_ = kInitialForkMsPerMiB;
  bool unavailable_ = false;
  int refused_skip_ = 0;  // Walks left before a refused fork is tried again.
};

IsolationPolicy& Policy();

}  // namespace tidemark::agent
