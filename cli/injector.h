// Makes one thread of a running CPython process call into libtidemark_inject.so
// (agent/inject.c): dlopen the library, dlsym tidemark_inject, and call it with the code to
// run and how long its thread may wait for the GIL. tidemark_inject starts a thread (every
// signal blocked) and returns; the code runs there once the interpreter hands it the GIL.
//
// Where: a thread blocked in a system call that holds no lock of libc (sleep, recv, poll,
// select, epoll, accept, wait, a futex wait...), found through /proc/PID/task/*/syscall and
// interrupted with PTRACE_INTERRUPT; else, with hardware breakpoints (debug registers: per
// thread, no byte of code changed) at the entry of PyEval_SaveThread, PyEval_RestoreThread,
// PyObject_Malloc or PyObject_Free, the first thread to reach one. Only the chosen thread is
// stopped while it calls; the others run on.
//
// How it leaves the thread: every register saved first — the general ones and the whole
// extended state in a buffer of the size the kernel reports (AMX tiles included) — and written
// straight back before anything changes (the preflight: a kernel that will not take them back
// is found while nothing has been touched). The calls run on the thread's stack below its red
// zone and return to address 0; the fault that follows is caught as a ptrace stop and never
// delivered (the thread's SIGSEGV is checked to be neither blocked nor ignored, so the kernel
// changes no disposition). Then the registers are restored and the thread resumed from the
// same kind of stop it was interrupted at, so the kernel restarts an interrupted system call
// as it would have (time.sleep sleeps its whole time; recv still waits for its data).
// A failure at any step undoes what was done (dlclose, registers, debug registers) and
// detaches; the error says which step and that the process was left as it was.
//
// Test seam: InjectRequest::fault names a step (kFaultSteps) to fail on purpose right after it
// was done, so that every undo path is exercised on a real process.
//
// x86-64 Linux only. Thread-safety: an Injector is used by one thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <expected>
#include <string>
#include <vector>

namespace tidemark::cli {

// The steps InjectRequest::fault may name, in the order they are done.
inline const std::vector<std::string> kFaultSteps = {
    "seize",  "stop",  "save-registers",  "preflight",     "write-arguments",
    "dlopen", "dlsym", "arm-breakpoints", "breakpoint-hit"};

struct InjectRequest {
  pid_t pid = 0;
  std::string library;        // libtidemark_inject.so, by a path the target sees.
  std::string code;           // Python source, passed to tidemark_inject.
  int64_t gil_budget_ms = 0;  // How long the started thread may wait for the GIL.
  double timeout_s = 10;      // How long to wait for a safe point.
  std::string fault;          // Test seam: a step of kFaultSteps to fail right after.
};

struct InjectFailure {
  std::string step;    // Which step failed ("dlopen", "find a safe point", ...).
  std::string reason;  // Why, in one line.
  bool intact = true;  // false: the process may have been changed (an undo step failed).
  std::vector<std::string> detail;  // What was done, step by step (for --verbose).
};

template <typename T>
using InjectResult = std::expected<T, InjectFailure>;

struct Injected {
  std::string where;  // "thread 1234, blocked in clock_nanosleep"
  std::vector<std::string> detail;
};

// Runs the injection described above.
InjectResult<Injected> InjectCall(const InjectRequest& request);

}  // namespace tidemark::cli
