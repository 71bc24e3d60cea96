// Running Python code inside a running CPython 3.8-3.13 process (tidemark attach, detach,
// dump), with gdb in batch mode, as memray and pyrasite reach a live process.
//
// How: gdb attaches (ptrace) and stops the process. If one of its threads is blocked in a
// system call (sleep, recv, select, a lock wait...), that thread holds no lock of libc or of
// the interpreter: the code is injected there at once. Otherwise gdb sets breakpoints at the
// entry of malloc, free, PyObject_Malloc, PyObject_Free, PyEval_SaveThread and
// PyEval_RestoreThread, lets the process run, and injects at the first one reached; none
// reached within the timeout leaves the process as it was (breakpoints removed, detached).
// Injecting is two calls in the stopped thread: dlopen(libtidemark_inject.so) and
// tidemark_inject(code), which starts a thread and returns; gdb detaches. That thread takes
// the GIL as any thread does (PyGILState_Ensure: between two bytecodes, never inside an
// allocation or a signal handler) and runs the code. The code reports to a file it writes
// (the caller reads it through /proc/PID/root, which also reaches a process in another
// mount namespace).
//
// Thread-safety: reentrant; each call runs its own gdb.
#pragma once

#include <sys/types.h>

#include <string>

#include "snapshot/result.h"

namespace tidemark::cli {

// What /proc says of a process about to be attached to.
struct Target {
  pid_t pid = 0;
  int major = 0, minor = 0;  // Its CPython version.
  uid_t uid = 0;
  std::string executable;
};

// The process, if it is a CPython 3.8-3.13 GIL build this process may trace. Errors name what
// is wrong: no such process, not Python (no pythonX.Y executable or libpythonX.Y in its maps),
// an unsupported version, a free-threaded build, another user's process (not root), or Yama's
// ptrace_scope forbidding it.
snapshot::Result<Target> InspectTarget(pid_t pid);

struct InjectOptions {
  std::string library;  // libtidemark_inject.so, by a path the target sees.
  std::string code;     // Python source, run with `exec` in a fresh namespace.
  double timeout_s = 10;
};

// Runs `code` in the target as described above. On success, where it was injected
// ("thread 1234 in clock_nanosleep", "breakpoint in malloc"). Errors: no gdb, gdb could not
// attach (and why), no safe point within the timeout (the target is left untouched).
snapshot::Result<std::string> Inject(const Target& target, const InjectOptions& options);

// gdb, found on PATH, or an error saying how to install it.
snapshot::Result<std::string> FindGdb();

}  // namespace tidemark::cli
