// ChildWalk: one snapshot walked in a copy-on-write child (isolation "fork",
// agent/isolation_policy.h), and the move-only owner of that child while it runs.
//
// Start() makes the child with the raw clone() system call while the caller holds the GIL, so
// no Python thread is mid-mutation and the child's copy of the heap is consistent; the caller
// releases the GIL at once. The child walks its copy, encodes and compresses the snapshot and
// hands the message back through a shared mapping made before the clone, then exits with
// _exit. Wait() (no GIL needed) collects it.
//
// The child is invisible to the host and cannot hurt it:
//  - its exit signal is 0: wait(), waitpid(-1), waitid(P_ALL), SIGCHLD handlers, subprocess
//    and process supervisors never see it; only the agent reaps it (waitpid with __WCLONE);
//  - no pthread_atfork and no os.register_at_fork handler runs (clone, not fork());
//  - it starts with every signal blocked, closes every descriptor it inherited before doing
//    anything else (the host's sockets and pipes are not held open by it), dies with the
//    thread that made it (PR_SET_PDEATHSIG) and is killed past its deadline;
//  - it takes no lock another thread may have held at the clone: it allocates only from
//    memory it maps itself (agent/child_memory.h), CPython's allocators included, and runs no
//    Python code: configured Python sizers are not run (counted in sizers_skipped), C
//    __sizeof__ methods of CPython's own types are, as in an inline walk;
//  - the shared mapping is not inherited by the host's own forks (MADV_DONTFORK).
//
// Thread-safety: Start REQUIRES the GIL, the main interpreter and no collection running;
// Wait and the destructor need no GIL; one thread uses a ChildWalk at a time.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <string>

#include "agent/isolation_policy.h"
#include "agent/walker.h"
#include "snapshot/result.h"

namespace tidemark::agent {

struct SharedResult;  // The shared mapping's layout (isolation.cc).

// What a child produced.
struct ChildOutcome {
  std::string message;      // The encoded snapshot (its header as the child wrote it).
  double walk_ms = 0;       // The child's walk: what an inline walk would have held the GIL.
  double walk_cpu_ms = 0;   // Its CPU time (what the policy compares).
  double child_ms = 0;      // The child's walk, encode and compression.
  double child_cpu_ms = 0;  // Their CPU time: what the host's machine paid for the child.
  double wall_ms = 0;       // From the clone to the message here.
  double clone_ms = 0;      // The clone system call, in the parent: most of the fork's pause.
  uint64_t peak_bytes = 0;
  uint64_t parent_fault_bytes = 0;
  uint64_t sizers_skipped = 0;
  uint64_t references = 0;
  bool abandoned = false;  // At max_objects (a child has no pause limit: it holds no GIL).
  std::string abandon_reason;
};

class ChildWalk {
 public:
  // Makes the child, which starts walking at once. An error (Code::kIo, the errno in
  // `*error_number`) when the system refused the clone or the shared mapping: the caller
  // walks inline instead.
  static snapshot::Result<ChildWalk> Start(const WalkOptions& options,
                                           const IsolationSettings& settings, uint64_t rss_bytes,
                                           int* error_number);

  ChildWalk(ChildWalk&& other) noexcept;
  ChildWalk& operator=(ChildWalk&&) = delete;
  ChildWalk(const ChildWalk&) = delete;
  ~ChildWalk();  // Kills and reaps a child still running; unmaps.

  // Waits until the child is done, has failed, is past its deadline (killed) or `cancel`
  // is set (killed); reaps it. An error says what happened to the child.
  snapshot::Result<ChildOutcome> Wait(const std::atomic<bool>* cancel);

  pid_t pid() const { return pid_; }

 private:
  ChildWalk(pid_t pid, SharedResult* shared, size_t shared_bytes,
            std::chrono::steady_clock::time_point deadline, uint64_t faults_before);
  void KillAndReap();
  std::string Describe(int status) const;

  pid_t pid_ = -1;  // -1 once reaped.
  SharedResult* shared_ = nullptr;
  size_t shared_bytes_ = 0;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point deadline_;
  uint64_t faults_before_ = 0;
  double clone_ms_ = 0;
};

// Wakes every Wait() in progress so that it sees its cancel flag at once (a run of the
// reporter ending: the host is forking, or the agent stopping). Async-signal-safe.
void InterruptChildWaits();

}  // namespace tidemark::agent
