// Lifecycle: the process's one agent, from start() to stop(), across fork().
//
//   stopped --Start--> running --Stop--> stopped (goodbye sent)
//   running --BeforeFork--> paused --AfterForkInParent--> running (at once, or from a
//                                                         pending call on 3.12+, see below)
//                                  --AfterForkInChild--> running, new instance, in probation
//
// Around fork() no thread of ours exists (the reporter is paused quickly, nothing in flight
// waited for), so the child inherits no lock, descriptor or ZeroMQ state in use. The parent
// carries on with the same schedule and sequence numbers. On 3.12+ os.fork() warns when the
// process has other threads, counting them after the after-fork hooks: when the main thread
// forked, the parent's reporter is restarted from a pending call, which runs right after
// os.fork() returns. The child is a new instance (its own pid, start time, sequence numbers)
// that opens nothing until it has lived a jittered interval (probation: a preexec_fn child or
// a daemon closing every descriptor never meets ours). `watch` decides who reports: all
// processes, only children (a prefork master stops at its first fork, with a goodbye), or
// only the parent.
//
// A fork this module did not see (fork() called through ctypes or by an extension): the child
// finds a reporter owned by another pid, whose threads do not exist here. It is forgotten,
// never joined or terminated, so exit never hangs on it.
//
// Thread-safety: every function REQUIRES the GIL.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <string>

#include "agent/isolation_policy.h"
#include "agent/reporter.h"
#include "agent/walker.h"

namespace tidemark::agent {

enum class Watch { kAll, kChildren, kParent };

struct AgentSettings {
  ReporterConfig reporter;
  WalkOptions walk;
  IsolationSettings isolation;
  Watch watch = Watch::kAll;
  double probation_s = 0;  // Wait this long before connecting; < 0: a child's jittered interval.
  int signal_number = 0;   // 0: none.
  PyObject* sizers = nullptr;  // Borrowed; the lifecycle keeps its own reference.
};

// Starts the agent. False with a Python exception set (bad endpoint, already started, ...).
bool StartAgent(AgentSettings settings);
// Stops it: the signal handler restored, the reporter stopped with a goodbye. Idempotent.
void StopAgent();
void TriggerAgent();

// The figures for status(): running, state, and the reporter's figures.
struct AgentStatus {
  bool running = false;
  // stopped, probation, connected, paused, or "children only" (watch = children: a parent
  // that forked stops reporting, its children report).
  const char* state = "stopped";
  ReporterFigures figures;
};
AgentStatus GetAgentStatus();

// The start time of this process's instance (snapshot() identities).
int64_t InstanceStartNs();

// The os.register_at_fork hooks.
void BeforeFork();
void AfterForkInParent();
void AfterForkInChild();

}  // namespace tidemark::agent
