#include "agent/lifecycle.h"

#include "agent/compat.h"
// compat.h brings Python.h first, as CPython requires.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <thread>

#include "agent/descriptors.h"
#include "agent/isolation.h"
#include "agent/take.h"
#include "agent/wake.h"
#include "snapshot/clock.h"

namespace tidemark::agent {
namespace {

enum class Phase {
  kStopped,
  kRunning,
  kPaused,            // Around fork(); `paused` holds the progress.
  kRestartScheduled,  // Paused; a pending call restarts it in the parent.
  kStoppedByFork,     // watch = children: the parent stopping at its first fork...
  kChildrenOnly,      // ...and then not reporting itself; its children start their own.
};

struct State {
  AgentSettings settings;
  PyObject* sizers = nullptr;  // Strong reference.
  std::unique_ptr<Reporter> reporter;
  pid_t owner_pid = 0;  // The process whose threads run `reporter`.
  Phase phase = Phase::kStopped;
  ReporterProgress paused;
  uint64_t generation = 0;  // Tells a pending restart whether it is still wanted.
  int64_t start_ns = 0;     // This instance's start.
  std::string last_error;   // Of a restart that failed after fork.
};

State& S() {
  static State* state = new State();  // Never destroyed: outlives atexit.
  return *state;
}

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// --- The trigger signal -------------------------------------------------------------------

struct sigaction g_previous_action {};

// Async-signal-safe: wake::Trigger (an atomic store and write(2)), then the previous handler.
void OnSignal(int signum, siginfo_t* info, void* context) {
  wake::Trigger();
  const struct sigaction& prev = g_previous_action;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction != nullptr) prev.sa_sigaction(signum, info, context);
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN &&
             prev.sa_handler != nullptr) {
    prev.sa_handler(signum);
  }
}

// Chains to the handler in place and keeps its flags: a host whose handler lets the signal
// interrupt blocking calls (as Python's own do) still sees them interrupted. Over the default
// action, system calls are restarted, the least change a trigger can make.
bool InstallSignal(int signum) {
  if (sigaction(signum, nullptr, &g_previous_action) != 0) return false;
  const struct sigaction& prev = g_previous_action;
  const bool chained =
      (prev.sa_flags & SA_SIGINFO) || (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN);
  struct sigaction action {};
  action.sa_sigaction = &OnSignal;
  action.sa_flags = SA_SIGINFO | (chained ? (prev.sa_flags & (SA_RESTART | SA_ONSTACK | SA_NODEFER))
                                          : SA_RESTART);
  action.sa_mask = prev.sa_mask;
  return sigaction(signum, &action, nullptr) == 0;
}

void RestoreSignal(int signum) { sigaction(signum, &g_previous_action, nullptr); }

// --- The reporter ------------------------------------------------------------------------

// The end of a probation: the GIL, once. A child between fork() and exec() holds it until
// exec, and an interpreter shutting down must not be entered.
bool WaitForGil(const std::atomic<bool>& cancel) {
  if (cancel.load() || tm_is_finalizing()) return false;
  PyGILState_STATE gil = PyGILState_Ensure();
  const bool ok = !tm_is_finalizing();
  PyGILState_Release(gil);
  return ok;
}

// How a reporter starts: the first run of start() opens its connection at once (errors are
// raised); a run after a probation first waits for the GIL; a parent's run after fork opens
// its connection on its own thread, so the fork pays only for starting a thread.
enum class Run { kFirst, kAfterProbation, kAfterFork };

// Starts a reporter for `progress`. False with `error` set.
bool StartReporter(State& st, ReporterProgress progress, Run run, std::string* error) {
  const WalkOptions walk = st.settings.walk;
  IsolationSettings isolation = st.settings.isolation;
  st.settings.reporter.interrupt = &InterruptChildWaits;
  isolation.zstd_level = st.settings.reporter.zstd_level;
  PyObject* const* sizers = &st.sizers;
  auto started = Reporter::Start(
      st.settings.reporter, std::move(progress),
      [walk, sizers, isolation](snapshot::Kind kind, bool values, const std::atomic<bool>& cancel) {
        WalkOptions options = walk;
        options.kind = kind;
        options.values = options.values || values;
        return TakeWithGil(std::move(options), sizers, isolation, cancel);
      },
      ReporterStart{.open_now = run == Run::kFirst,
                    .ready = run == Run::kAfterProbation ? ReadyFn(&WaitForGil) : nullptr});
  if (!started) {
    *error = started.error().message;
    return false;
  }
  st.reporter = std::move(*started);
  st.owner_pid = getpid();
  return true;
}

// Joins the reporter's thread with the GIL released: it may be waiting for it.
template <typename Fn>
void WithoutGil(Fn&& fn) {
  Py_BEGIN_ALLOW_THREADS fn();
  Py_END_ALLOW_THREADS
}

// A reporter owned by another process (a fork this module did not see) is abandoned.
void ForgetForeignReporter(State& st) {
  if (!st.reporter || st.owner_pid == getpid()) return;
  (void)st.reporter.release();  // Its threads are not in this process: never join them.
  wake::Forget();
  st.phase = Phase::kStopped;
}

// Whether a thread of ours (the reporter) is still listed in /proc/self/task, which
// is what os.fork() counts on 3.12+: a joined thread stays listed for a moment after
// pthread_join returns.
bool OurThreadsListed() {
  const int fd = OpenAboveStdio("/proc/self/task", O_RDONLY | O_DIRECTORY);
  DIR* tasks = fd >= 0 ? fdopendir(fd) : nullptr;
  if (tasks == nullptr) {
    if (fd >= 0) close(fd);
    return false;
  }
  bool found = false;
  while (dirent* task = readdir(tasks)) {
    if (task->d_name[0] == '.') continue;
    char path[sizeof "/proc/self/task//comm" + sizeof task->d_name];
    std::snprintf(path, sizeof path, "/proc/self/task/%s/comm", task->d_name);
    const auto name = ReadSmallFile(path, 32);
    if (name && name->substr(0, name->find('\n')) == kReporterThreadName) {
      found = true;
      break;
    }
  }
  closedir(tasks);
  return found;
}

void WaitUntilOurThreadsGone() {
  const auto deadline = Clock::now() + std::chrono::milliseconds(20);
  while (OurThreadsListed() && Clock::now() < deadline) std::this_thread::yield();
}

ReporterProgress FreshProgress(double interval_s, double probation_s) {
  ReporterProgress p;
  const auto now = Clock::now();
  p.connect_at = now + Seconds(probation_s);
  p.next_due = probation_s > 0 ? p.connect_at + Seconds(std::min(interval_s, 1.0))
                               : now + Seconds(interval_s);
  return p;
}

// A child's probation: between half and all of an interval (of at least kMinChildIntervalS),
// spread so that many children forked at once do not connect and walk at once.
constexpr double kMinChildIntervalS = 0.5;
double ChildProbation(double interval_s) {
  std::minstd_rand random(static_cast<unsigned>(getpid() ^ snapshot::WallNowNs()));
  const double jitter = std::uniform_real_distribution<double>(0.5, 1.0)(random);
  return std::max(kMinChildIntervalS, interval_s) * jitter;
}

int RestartAfterFork(void* generation) {
  State& st = S();
  if (st.phase != Phase::kRestartScheduled ||
      st.generation != reinterpret_cast<uintptr_t>(generation)) {
    return 0;
  }
  // Reconnect shortly before the next snapshot is due, not at once: a parent forking many
  // children in a row then pays for a sleeping thread per fork, not for a connection.
  ReporterProgress progress = std::move(st.paused);
  const double warmup_s = std::min(st.settings.reporter.interval_s / 2, 1.0);
  progress.connect_at = std::max(Clock::now(), progress.next_due - Seconds(warmup_s));
  st.phase = StartReporter(st, std::move(progress), Run::kAfterFork, &st.last_error)
                 ? Phase::kRunning
                 : Phase::kStopped;
  return 0;
}

}  // namespace

bool StartAgent(AgentSettings settings) {
  State& st = S();
  ForgetForeignReporter(st);
  if (st.phase != Phase::kStopped) {
    PyErr_SetString(PyExc_RuntimeError, "tidemark is already started; call stop() first");
    return false;
  }
  Py_XINCREF(settings.sizers);
  Py_XDECREF(st.sizers);
  st.sizers = settings.sizers;
  st.settings = std::move(settings);
  st.start_ns = st.settings.reporter.identity.start_time_ns;
  st.last_error.clear();
  std::string error;
  const double interval = st.settings.reporter.interval_s;
  const double probation =
      st.settings.probation_s < 0 ? ChildProbation(interval) : st.settings.probation_s;
  const Run run = probation > 0 ? Run::kAfterProbation : Run::kFirst;
  if (!StartReporter(st, FreshProgress(interval, probation), run, &error)) {
    PyErr_SetString(PyExc_ValueError, error.c_str());
    return false;
  }
  st.phase = Phase::kRunning;
  const int signum = st.settings.signal_number;
  if (signum > 0 && !InstallSignal(signum)) {
    PyErr_SetFromErrno(PyExc_OSError);
    StopAgent();
    return false;
  }
  return true;
}

void StopAgent() {
  State& st = S();
  ForgetForeignReporter(st);
  if (st.settings.signal_number > 0 && st.phase != Phase::kStopped) {
    RestoreSignal(st.settings.signal_number);
  }
  st.phase = Phase::kStopped;
  ++st.generation;
  st.paused.connection.reset();  // Kept across a fork, never restarted.
  if (!st.reporter) return;
  std::unique_ptr<Reporter> reporter = std::move(st.reporter);
  WithoutGil([&] {
    reporter->Stop();
    reporter.reset();
  });
}

void TriggerAgent() { wake::Trigger(); }

AgentStatus GetAgentStatus() {
  State& st = S();
  ForgetForeignReporter(st);
  AgentStatus status;
  status.running = st.phase != Phase::kStopped;
  if (st.reporter) {
    status.figures = st.reporter->figures();
    status.state = status.figures.connected ? "connected" : "probation";
  } else if (st.phase == Phase::kPaused || st.phase == Phase::kRestartScheduled) {
    status.figures = st.paused.figures;
    status.state = "paused";
  } else if (st.phase == Phase::kChildrenOnly) {
    status.state = "children only";
  }
  if (status.figures.last_error.empty()) status.figures.last_error = st.last_error;
  return status;
}

int64_t InstanceStartNs() {
  State& st = S();
  if (st.start_ns == 0) st.start_ns = snapshot::WallNowNs();
  return st.start_ns;
}

void BeforeFork() {
  State& st = S();
  ForgetForeignReporter(st);
  if (st.phase != Phase::kRunning || !st.reporter) return;
  std::unique_ptr<Reporter> reporter = std::move(st.reporter);
  if (st.settings.watch == Watch::kChildren) {
    WithoutGil([&] {
      reporter->Stop();
      reporter.reset();
    });
    st.phase = Phase::kStoppedByFork;
    return;
  }
  WithoutGil([&] {
    st.paused = reporter->Pause();
    reporter.reset();
    if (tm_fork_counts_threads()) WaitUntilOurThreadsGone();
  });
  st.phase = Phase::kPaused;
}

void AfterForkInParent() {
  State& st = S();
  if (st.phase == Phase::kStoppedByFork) {
    st.phase = Phase::kChildrenOnly;
    return;
  }
  if (st.phase != Phase::kPaused) return;
  st.phase = Phase::kRestartScheduled;
  const uint64_t generation = ++st.generation;
  if (tm_fork_counts_threads() && tm_is_main_thread() &&
      tm_call_soon(&RestartAfterFork, reinterpret_cast<void*>(generation)) == 0) {
    return;
  }
  RestartAfterFork(reinterpret_cast<void*>(generation));
}

void AfterForkInChild() {
  State& st = S();
  wake::CloseInherited();  // The parent's: nothing has run here yet.
  ForgetParentsProcFiles();
  if (st.paused.connection) st.paused.connection->Close(0);  // This copy only: nothing is sent.
  st.paused.connection.reset();
  st.owner_pid = getpid();
  ++st.generation;  // A restart the parent scheduled is not this process's.
  st.start_ns = snapshot::WallNowNs();
  const bool was_reporting = st.phase != Phase::kStopped;
  st.phase = Phase::kStopped;
  if (!was_reporting || st.settings.watch == Watch::kParent) return;
  // A new instance of the same service.
  ReporterConfig& config = st.settings.reporter;
  config.identity.pid = getpid();
  config.identity.start_time_ns = st.start_ns;
  const double probation = ChildProbation(config.interval_s);
  if (StartReporter(st, FreshProgress(config.interval_s, probation), Run::kAfterProbation,
                    &st.last_error)) {
    st.phase = Phase::kRunning;
  }
}

}  // namespace tidemark::agent
