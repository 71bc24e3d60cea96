// Taking one snapshot of this interpreter: the walk with the GIL held, the configured sizers
// right after it, and what needs no GIL (resolving a graph's references, reading the RSS);
// or, isolated (agent/isolation_policy.h), the same walk in a copy-on-write child.
//
// Thread-safety: TakeHoldingGil and ApplySizers REQUIRE the GIL; FinishWithoutGil needs
// none; TakeWithGil takes the GIL itself (from the reporter thread); TakeIsolated REQUIRES
// the GIL and releases it while a child walks.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <atomic>
#include <optional>

#include "agent/isolation_policy.h"
#include "agent/reporter.h"
#include "agent/walker.h"
#include "snapshot/snapshot.h"

namespace tidemark::agent {

// A snapshot child's memory cap when none is set (child_memory "auto"): this much per object
// the walk expects, at least 1 GiB, and above 1 GiB at most half the memory available (the
// machine's MemAvailable, and what is left under a cgroup limit). A graph child was measured to
// need 76-133 bytes per object (its columns, marks and the message); the cap is virtual memory
// reserved, touched only as the child uses it.
inline constexpr uint64_t kChildBytesPerObject = 160;

// The walk into `buffers` (PrepareWalkBuffers), with the GIL held by the caller. A graph's
// references still need FinishWithoutGil(). The caller checks the sampler's hooks first
// (CheckSamplerHooked), in the process that owns them.
snapshot::Snapshot TakeHoldingGil(const WalkOptions& options, WalkBuffers buffers,
                                  WalkOutcome* outcome, UnresolvedReferences* unresolved);

// Runs `sizers` (dict: type name -> callable(obj) returning the bytes the object owns beyond
// its own size, e.g. a numpy array's buffer) on the objects the walk listed. This is Python
// code, so it runs after the walk: every listed object is held first, so none can be freed
// under us, and released last. A sizer that raises or returns something odd adds nothing.
// REQUIRES: the GIL, and no Python code run since the walk. `sizers` may be null.
void ApplySizers(PyObject* sizers, WalkOutcome& outcome, snapshot::Snapshot& s);

// What is left of a snapshot once the walk is over, none of which needs the GIL: the graph's
// references as indices, and the process's resident size (read now unless given).
void FinishWithoutGil(UnresolvedReferences&& unresolved, snapshot::Snapshot* s,
                      std::optional<uint64_t> rss_bytes = std::nullopt);

// Registers (once) the pthread_atfork handlers that keep a fork() this module does not see
// (ctypes, an extension) from happening while the reporter thread holds the GIL: the child
// would wait forever for a GIL owned by a thread it does not have. The fork waits for a walk
// in progress to end. REQUIRES: the GIL (called at import).
void GuardForeignForks();

// How a take went, for the caller's figures.
struct TakeReport {
  Isolation ran = Isolation::kInline;
  std::string why = "inline";  // As IsolationFigures::last_isolation says it.
  double pause_ms = 0;         // The GIL held: the walk's, or the clone's.
  uint64_t references = 0;
  bool abandoned = false;
  std::string abandon_reason;
  uint64_t sizers_skipped = 0;  // Python sizers a child could not run.
};

// From a thread of ours: takes the GIL (never during interpreter finalization), walks (inline
// or in a child, as `isolation` and the policy say), applies `sizers` inline (read with the
// GIL held: a strong reference kept by the caller), releases the GIL and finishes. An error if
// nothing could be taken, or `cancel` was set by the time the GIL was ours.
snapshot::Result<Taken> TakeWithGil(WalkOptions options, PyObject* const* sizers,
                                    const IsolationSettings& isolation,
                                    const std::atomic<bool>& cancel);

// From Python (tidemark.snapshot()): the GIL held by the caller, released while a child
// walks. A snapshot whatever happens: a refused fork or a failed child is walked inline
// again, and `report` says so.
snapshot::Result<Taken> TakeFromPython(WalkOptions options, PyObject* sizers,
                                       const IsolationSettings& isolation, TakeReport* report);

}  // namespace tidemark::agent
