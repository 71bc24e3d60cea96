#include "agent/take.h"

#include "agent/compat.h"
// compat.h brings Python.h first, as CPython requires.
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

#include "agent/sampler.h"
#include "snapshot/clock.h"

namespace tidemark::agent {
namespace {

uint64_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "re");
  if (f == nullptr) return 0;
  unsigned long long pages_total = 0, pages_resident = 0;
  const int got = std::fscanf(f, "%llu %llu", &pages_total, &pages_resident);
  std::fclose(f);
  return got == 2 ? pages_resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// Held by the reporter thread while it holds the GIL, and by a forking thread from
// pthread_atfork's prepare to its parent and child handlers. The reporter takes it only after
// the GIL, and only if free (try_lock), releasing the GIL first when it gives it back: so it
// never waits for it while holding the GIL, and a fork never happens while it holds the GIL.
std::mutex g_fork_guard;

void LockForFork() { g_fork_guard.lock(); }
void UnlockAfterFork() { g_fork_guard.unlock(); }

std::string PythonVersion() {
  const std::string s(Py_GetVersion());
  return s.substr(0, s.find(' '));
}

}  // namespace

snapshot::Snapshot TakeHoldingGil(const WalkOptions& options, WalkOutcome* outcome,
                                  UnresolvedReferences* unresolved) {
  snapshot::Snapshot s;
  const int64_t started_ns = snapshot::WallNowNs();
  CheckSamplerHooked();
  *outcome = Walk(options, &s, unresolved);
  if (s.sites.recorded) DescribeSites(&s.sites, &unresolved->object_sites);
  long long counts[3];
  tm_gc_counts(counts);
  s.header.gc_counts.assign(counts, counts + 3);
  s.header.python_version = PythonVersion();
  s.header.timestamp_ns = started_ns;
  return s;
}

void FinishWithoutGil(UnresolvedReferences&& unresolved, snapshot::Snapshot* s) {
  if (s->header.kind == snapshot::Kind::kGraph) ResolveReferences(std::move(unresolved), &s->graph);
  s->header.rss_bytes = ResidentBytes();
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

void GuardForeignForks() {
  static const bool installed = [] {
    return pthread_atfork(&LockForFork, &UnlockAfterFork, &UnlockAfterFork) == 0;
  }();
  (void)installed;
}

std::optional<snapshot::Snapshot> TakeWithGil(WalkOptions options, PyObject* const* sizers,
                                              const std::atomic<bool>& cancel) {
  if (tm_is_finalizing()) return std::nullopt;
  PyGILState_STATE gil = PyGILState_Ensure();
  std::unique_lock guard(g_fork_guard, std::try_to_lock);
  if (!guard.owns_lock()) {  // A fork is under way.
    PyGILState_Release(gil);
    return std::nullopt;
  }
  std::optional<snapshot::Snapshot> result;
  UnresolvedReferences unresolved;
  // A pause or stop may have been asked while this thread waited for the GIL.
  if (!cancel.load() && !tm_gc_collecting() && !tm_is_finalizing()) {
    WalkOutcome outcome;
    snapshot::Snapshot s = TakeHoldingGil(options, &outcome, &unresolved);
    if (!outcome.abandoned) {
      ApplySizers(*sizers, outcome, s);
      result = std::move(s);
    }
  }
  PyGILState_Release(gil);
  guard.unlock();
  if (result) FinishWithoutGil(std::move(unresolved), &*result);
  return result;
}

}  // namespace tidemark::agent
