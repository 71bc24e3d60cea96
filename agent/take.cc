#include "agent/take.h"

#include "agent/compat.h"
// compat.h brings Python.h first, as CPython requires.
#include <pthread.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>

#include "agent/descriptors.h"
#include "agent/isolation.h"
#include "agent/memory_limit.h"
#include "agent/process_memory.h"
#include "agent/sampler.h"
#include "snapshot/clock.h"
#include "snapshot/wire.h"

namespace tidemark::agent {
namespace {

using Clock = std::chrono::steady_clock;

// Held by the reporter thread while it holds the GIL, and by a forking thread from
// pthread_atfork's prepare to its parent and child handlers. The reporter takes it only after
// the GIL, and only if free (try_lock), releasing the GIL first when it gives it back: so it
// never waits for it while holding the GIL, and a fork never happens while it holds the GIL.
std::mutex g_fork_guard;

void LockForFork() { g_fork_guard.lock(); }
void UnlockAfterFork() { g_fork_guard.unlock(); }

double MsSince(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

// What the policy may read, when it needs to. REQUIRES: the GIL (the block count).
IsolationPolicy::Probes Probes() {
  return {.page_table_bytes = &PageTableBytes, .allocated_blocks = &tm_allocated_blocks};
}

// The same, for a thread that does not hold the GIL: it takes it for the block count (asked
// only before the first walk).
IsolationPolicy::Probes ProbesTakingGil() {
  return {.page_table_bytes = &PageTableBytes, .allocated_blocks = [] {
            PyGILState_STATE gil = PyGILState_Ensure();
            const int64_t blocks = tm_allocated_blocks();
            PyGILState_Release(gil);
            return blocks;
          }};
}

// `blocks`: sys.getallocatedblocks(), for a first walk (0: unknown).
WalkBuffers BuffersFor(const WalkOptions& options, int64_t blocks = 0) {
  return PrepareWalkBuffers(options.kind == snapshot::Kind::kGraph, options.rss_bytes,
                            static_cast<uint64_t>(std::max<int64_t>(blocks, 0)));
}

bool WantsSizers(const WalkOptions& options, PyObject* sizers) {
  return sizers != nullptr && !options.sized_types.empty();
}

// The child for one snapshot, or nullopt (and `why` says so) if the system refused it.
// `*cpu_ms`: the CPU time making it took (the policy's measure of a fork).
std::optional<ChildWalk> StartChild(const WalkOptions& options, const IsolationSettings& isolation,
                                    uint64_t rss, std::string* why, double* cpu_ms) {
  int error_number = 0;
  const double cpu_before = ThreadCpuMs();
  auto child = ChildWalk::Start(options, isolation, rss, &error_number);
  *cpu_ms = ThreadCpuMs() - cpu_before;
  if (child) return std::move(*child);
  Policy().RecordRefused(error_number);
  *why = "inline (fork refused: " + child.error().message + ")";
  return std::nullopt;
}

// Waits for the child and makes its message a Taken whose header says what the host paid:
// `pause_ms` of GIL, `fork_cpu_ms` of it making the child.
snapshot::Result<Taken> FinishChild(ChildWalk& child, double pause_ms, double fork_cpu_ms,
                                    uint64_t rss, uint64_t page_tables,
                                    const std::atomic<bool>* cancel,
                                    ChildOutcome* outcome_out = nullptr) {
  auto outcome = child.Wait(cancel);
  if (!outcome) {
    if (cancel != nullptr && cancel->load()) {
      Policy().RecordChildCancelled();
    } else {
      Policy().RecordChildFailed(outcome.error().message);
    }
    return snapshot::Fail("snapshot child: ", outcome.error());
  }
  auto header = snapshot::DecodeHeader(outcome->message);
  if (!header) {
    Policy().RecordChildFailed(header.error().message);
    return snapshot::Fail("snapshot child's message: ", header.error());
  }
  header->agent.pause_ms = pause_ms;  // What the host paid: the GIL held for the clone.
  NoteWalkedObjects(header->objects, rss);
  IsolationFigures figures;
  figures.last_fork_pause_ms = pause_ms;
  figures.last_clone_ms = outcome->clone_ms;
  figures.last_child_walk_ms = outcome->walk_ms;
  figures.last_child_wall_ms = outcome->wall_ms;
  figures.last_child_peak_bytes = outcome->peak_bytes;
  figures.last_parent_fault_bytes = outcome->parent_fault_bytes;
  figures.last_page_table_bytes = page_tables;
  Policy().RecordFork(figures, rss, outcome->walk_cpu_ms, fork_cpu_ms);
  Taken taken;
  taken.snapshot.header = std::move(*header);
  taken.encoded = std::move(outcome->message);
  taken.child_cpu_ms = outcome->child_cpu_ms;
  if (outcome_out != nullptr) *outcome_out = std::move(*outcome);
  return taken;
}

// The walk and the sizers, on this thread; `*cpu_ms`: the walk's CPU time. REQUIRES: the GIL.
snapshot::Result<Taken> WalkInline(const WalkOptions& options, WalkBuffers buffers,
                                   PyObject* sizers, UnresolvedReferences* unresolved,
                                   double* cpu_ms) {
  // After a refused fork, no buffers were made before the GIL was taken.
  if (buffers.addresses.capacity() == 0) buffers = BuffersFor(options);
  WalkOutcome outcome;
  snapshot::Snapshot s = TakeHoldingGil(options, std::move(buffers), &outcome, unresolved);
  *cpu_ms = outcome.cpu_ms;
  if (outcome.abandoned) return snapshot::Fail("walk abandoned: " + outcome.abandon_reason);
  ApplySizers(sizers, outcome, s);
  return Taken{std::move(s), {}};
}

std::string PythonVersion() {
  const std::string s(Py_GetVersion());
  return s.substr(0, s.find(' '));
}

}  // namespace

snapshot::Snapshot TakeHoldingGil(const WalkOptions& options, WalkBuffers buffers,
                                  WalkOutcome* outcome, UnresolvedReferences* unresolved) {
  snapshot::Snapshot s;
  const int64_t started_ns = snapshot::WallNowNs();
  *outcome = Walk(options, std::move(buffers), &s, unresolved);
  if (s.sites.recorded) DescribeSites(&s.sites, &unresolved->object_sites);
  long long counts[3];
  tm_gc_counts(counts);
  s.header.gc_counts.assign(counts, counts + 3);
  s.header.python_version = PythonVersion();
  s.header.timestamp_ns = started_ns;
  return s;
}

void FinishWithoutGil(UnresolvedReferences&& unresolved, snapshot::Snapshot* s,
                      std::optional<uint64_t> rss_bytes) {
  if (s->header.kind == snapshot::Kind::kGraph) ResolveReferences(std::move(unresolved), &s->graph);
  s->header.rss_bytes = rss_bytes ? *rss_bytes : ResidentBytes();
}

void ApplySizers(PyObject* sizers, WalkOutcome& outcome, snapshot::Snapshot& s) {
  if (sizers == nullptr || outcome.needs_sizer.empty()) return;
  for (const SizedObject& item : outcome.needs_sizer)
    Py_INCREF(static_cast<PyObject*>(item.object));
  PyObject *saved_type, *saved_value, *saved_traceback;
  PyErr_Fetch(&saved_type, &saved_value, &saved_traceback);
  const bool graph = s.header.kind == snapshot::Kind::kGraph;
  for (const SizedObject& item : outcome.needs_sizer) {
    PyObject* sizer = PyDict_GetItemString(sizers, s.types[item.row].name.c_str());
    if (sizer == nullptr) continue;
    PyObject* result =
        PyObject_CallFunctionObjArgs(sizer, static_cast<PyObject*>(item.object), nullptr);
    long long extra = result && PyLong_Check(result) ? PyLong_AsLongLong(result) : -1;
    Py_XDECREF(result);
    PyErr_Clear();
    if (extra <= 0) continue;
    auto& row = s.types[item.row];
    row.bytes += static_cast<uint64_t>(extra);
    s.header.bytes += static_cast<uint64_t>(extra);
    if (graph && item.index < s.graph.size.size()) {
      s.graph.size[item.index] += static_cast<uint64_t>(extra);
      row.max_bytes = std::max<uint64_t>(row.max_bytes, s.graph.size[item.index]);
    }
  }
  PyErr_Restore(saved_type, saved_value, saved_traceback);
  for (const SizedObject& item : outcome.needs_sizer)
    Py_DECREF(static_cast<PyObject*>(item.object));
  outcome.needs_sizer.clear();
}

// A walk that would run inline only because no fork could be had, predicted to hold the GIL
// longer than the bound: not taken (counted), and the error says what to change.
std::optional<snapshot::Error> OverPauseBound(double predicted_ms,
                                              const IsolationSettings& isolation) {
  if (predicted_ms <= isolation.max_inline_pause_ms) return std::nullopt;
  Policy().RecordSkippedForPause();
  char text[320];
  std::snprintf(text, sizeof text,
                "skipped: no snapshot child could be had, and walking inline would hold the GIL "
                "about %.0f ms, over the %.0f ms bound (TIDEMARK_MAX_INLINE_PAUSE)",
                predicted_ms, isolation.max_inline_pause_ms);
  return snapshot::Error{text, snapshot::Code::kLimit};
}

// Memory a snapshot child may take without risking the host: half of what the machine has
// available, and no more than what is left under a cgroup limit.
uint64_t MemoryLeft() {
  static const MemorySource cgroup = MemorySource::Discover({});
  uint64_t left = StatusKiB(ReadKeptFile("/proc/meminfo", 8 << 10), "MemAvailable:") << 10;
  if (const auto reading = cgroup.Read()) {
    const uint64_t under = reading->limit - std::min(reading->current, reading->limit);
    left = left == 0 ? under : std::min(left, under);
  }
  return left / 2;
}

// The child's memory cap: the setting, or for 0 ("auto", the default) enough for this heap:
// kChildBytesPerObject per object expected, at least 1 GiB, and above that at most what
// MemoryLeft() allows.
IsolationSettings WithChildCap(IsolationSettings settings, uint64_t rss) {
  if (settings.child_max_bytes != 0) return settings;
  constexpr uint64_t kFloor = uint64_t{1} << 30;
  const uint64_t wanted = kChildBytesPerObject * ExpectedObjects(rss, 0);
  uint64_t cap = std::max(kFloor, wanted);
  if (cap > kFloor) {
    const uint64_t left = MemoryLeft();
    if (left > 0) cap = std::max(kFloor, std::min(cap, left));
  }
  settings.child_max_bytes = static_cast<size_t>(cap);
  return settings;
}

void GuardForeignForks() {
  static const bool installed = [] {
    return pthread_atfork(&LockForFork, &UnlockAfterFork, &UnlockAfterFork) == 0;
  }();
  (void)installed;
}

snapshot::Result<Taken> TakeWithGil(WalkOptions options, PyObject* const* sizers,
                                    const IsolationSettings& isolation,
                                    const std::atomic<bool>& cancel) {
  if (tm_is_finalizing()) return snapshot::Fail("the interpreter is finalizing");
  const uint64_t rss = ResidentBytes();
  options.rss_bytes = rss;
  // Decided, and an inline walk's buffers faulted in, before the GIL is taken: neither
  // lengthens the host's pause.
  const auto decision =
      Policy().Decide(isolation.mode, WantsSizers(options, *sizers), rss, ProbesTakingGil());
  const Isolation mode = decision.mode;
  const uint64_t page_tables = decision.page_table_bytes;
  if (decision.fallback) {
    if (auto over = OverPauseBound(decision.predicted_walk_ms, isolation)) {
      return std::unexpected(*over);
    }
  }
  WalkBuffers buffers;
  if (mode == Isolation::kInline) {
    buffers = BuffersFor(options, WalkedBefore() ? 0 : ProbesTakingGil().allocated_blocks());
  }
  const IsolationSettings capped =
      mode == Isolation::kFork ? WithChildCap(isolation, rss) : isolation;
  PyGILState_STATE gil = PyGILState_Ensure();
  const auto held = Clock::now();
  std::unique_lock guard(g_fork_guard, std::try_to_lock);
  if (!guard.owns_lock()) {
    PyGILState_Release(gil);
    return snapshot::Fail("a fork was under way");
  }
  // A pause or stop may have been asked while this thread waited for the GIL.
  if (cancel.load() || tm_gc_collecting() || tm_is_finalizing()) {
    PyGILState_Release(gil);
    return snapshot::Fail("cancelled, or a collection or the interpreter's end was under way");
  }
  CheckSamplerHooked();
  std::string why = "inline";
  double cpu_ms = 0;  // Of the clone, or of the inline walk.
  std::optional<ChildWalk> child = mode == Isolation::kFork
                                       ? StartChild(options, capped, rss, &why, &cpu_ms)
                                       : std::optional<ChildWalk>();
  snapshot::Result<Taken> result = snapshot::Fail("not taken");
  UnresolvedReferences unresolved;
  if (!child && mode == Isolation::kFork) {  // Refused just now: inline only within the bound.
    const double predicted = decision.predicted_walk_ms > 0 ? decision.predicted_walk_ms
                                                            : Policy().PredictWalkMs(rss, Probes());
    if (auto over = OverPauseBound(predicted, isolation)) {
      PyGILState_Release(gil);
      return std::unexpected(*over);
    }
  }
  if (!child) result = WalkInline(options, std::move(buffers), *sizers, &unresolved, &cpu_ms);
  const double pause_ms = MsSince(held);
  PyGILState_Release(gil);
  guard.unlock();
  if (child) {
    ChildOutcome outcome;
    result = FinishChild(*child, pause_ms, cpu_ms, rss, page_tables, &cancel, &outcome);
    if (result && outcome.abandoned)
      return snapshot::Fail("walk abandoned: " + outcome.abandon_reason);
    return result;
  }
  if (!result) return result;
  FinishWithoutGil(std::move(unresolved), &result->snapshot);
  Policy().RecordInline(cpu_ms, rss, why);
  return result;
}

snapshot::Result<Taken> TakeFromPython(WalkOptions options, PyObject* sizers,
                                       const IsolationSettings& isolation, TakeReport* report) {
  const uint64_t rss = ResidentBytes();
  options.rss_bytes = rss;
  CheckSamplerHooked();
  const auto decision =
      Policy().Decide(isolation.mode, WantsSizers(options, sizers), rss, Probes());
  const Isolation mode = decision.mode;
  const uint64_t page_tables = decision.page_table_bytes;
  bool fallback = decision.fallback;
  if (mode == Isolation::kFork) {
    const auto held = Clock::now();
    double fork_cpu_ms = 0;
    std::optional<ChildWalk> child =
        StartChild(options, WithChildCap(isolation, rss), rss, &report->why, &fork_cpu_ms);
    if (child) {
      const double pause_ms = MsSince(held);
      snapshot::Result<Taken> taken = snapshot::Fail("not taken");
      ChildOutcome outcome;
      Py_BEGIN_ALLOW_THREADS taken =
          FinishChild(*child, pause_ms, fork_cpu_ms, rss, page_tables, nullptr, &outcome);
      Py_END_ALLOW_THREADS if (taken) {
        report->ran = Isolation::kFork;
        report->why = "fork";
        report->pause_ms = pause_ms;
        report->references = outcome.references;
        report->sizers_skipped = outcome.sizers_skipped;
        report->abandoned = outcome.abandoned;
        report->abandon_reason = outcome.abandon_reason;
        return taken;
      }
      report->why = "inline (fork failed: " + taken.error().message + ")";
    }
    fallback = true;
  }
  if (fallback) {
    const double predicted = decision.predicted_walk_ms > 0 ? decision.predicted_walk_ms
                                                            : Policy().PredictWalkMs(rss, Probes());
    if (auto over = OverPauseBound(predicted, isolation)) {
      return snapshot::Fail(snapshot::Code::kLimit, over->message + " (" + report->why + ")");
    }
  }
  WalkBuffers buffers;
  const int64_t blocks = WalkedBefore() ? 0 : tm_allocated_blocks();
  Py_BEGIN_ALLOW_THREADS buffers = BuffersFor(options, blocks);
  Py_END_ALLOW_THREADS WalkOutcome outcome;
  UnresolvedReferences unresolved;
  snapshot::Snapshot s = TakeHoldingGil(options, std::move(buffers), &outcome, &unresolved);
  ApplySizers(sizers, outcome, s);
  report->pause_ms = outcome.pause_ms;
  report->references = outcome.references;
  report->abandoned = outcome.abandoned;
  report->abandon_reason = outcome.abandon_reason;
  Py_BEGIN_ALLOW_THREADS FinishWithoutGil(std::move(unresolved), &s);
  Py_END_ALLOW_THREADS Policy().RecordInline(outcome.cpu_ms, rss, report->why);
  return Taken{std::move(s), {}};
}

}  // namespace tidemark::agent
