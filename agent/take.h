// Taking one snapshot of this interpreter: the walk with the GIL held, the configured sizers
// right after it, and what needs no GIL (resolving a graph's references, reading the RSS).
//
// Thread-safety: TakeHoldingGil and ApplySizers REQUIRE the GIL; FinishWithoutGil needs
// none; TakeWithGil takes the GIL itself (from the reporter thread).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <atomic>
#include <optional>

#include "agent/walker.h"
#include "snapshot/snapshot.h"

namespace tidemark::agent {

// The walk, with the GIL held by the caller. A graph's references still need
// FinishWithoutGil().
snapshot::Snapshot TakeHoldingGil(const WalkOptions& options, WalkOutcome* outcome,
                                  UnresolvedReferences* unresolved);

// Runs `sizers` (dict: type name -> callable(obj) returning the bytes the object owns beyond
// its own size, e.g. a numpy array's buffer) on the objects the walk listed. This is Python
// code, so it runs after the walk: every listed object is held first, so none can be freed
// under us, and released last. A sizer that raises or returns something odd adds nothing.
// REQUIRES: the GIL, and no Python code run since the walk. `sizers` may be null.
void ApplySizers(PyObject* sizers, WalkOutcome& outcome, snapshot::Snapshot& s);

// What is left of a snapshot once the walk is over, none of which needs the GIL: the graph's
// references as indices, and the process's resident size.
void FinishWithoutGil(UnresolvedReferences&& unresolved, snapshot::Snapshot* s);

// Registers (once) the pthread_atfork handlers that keep a fork() this module does not see
// (ctypes, an extension) from happening while the reporter thread holds the GIL: the child
// would wait forever for a GIL owned by a thread it does not have. The fork waits for a walk
// in progress to end. REQUIRES: the GIL (called at import).
void GuardForeignForks();

// From a thread of ours: takes the GIL (never during interpreter finalization), walks,
// applies `sizers` (read with the GIL held: a strong reference kept by the caller), releases
// the GIL and finishes. Nullopt if nothing could be taken, or `cancel` was set by the time
// the GIL was ours.
std::optional<snapshot::Snapshot> TakeWithGil(WalkOptions options, PyObject* const* sizers,
                                              const std::atomic<bool>& cancel);

}  // namespace tidemark::agent
