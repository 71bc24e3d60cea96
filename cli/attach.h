// What /proc says of a process that tidemark attach, detach or dump is about to reach, and
// whether this program may reach it. The reaching itself: cli/injector.h (a thread of the
// process calls into libtidemark_inject.so), cli/exchange.h (how results come back).
//
// Thread-safety: reentrant.
#pragma once

#include <sys/types.h>

#include <string>

#include "snapshot/result.h"

namespace tidemark::cli {

// What /proc says of a process about to be attached to.
struct Target {
  pid_t pid = 0;
  int major = 0, minor = 0;  // Its CPython version.
  uid_t uid = 0;             // Its real user and group: the owner of the files it writes back.
  gid_t gid = 0;
  std::string executable;
};

// The process, if it is a CPython 3.8-3.13 GIL build this process may trace. Errors name what
// is wrong: no such process, not Python (no pythonX.Y executable or libpythonX.Y in its maps),
// an unsupported version, a free-threaded build, another user's process (not root), or Yama's
// ptrace_scope forbidding it.
snapshot::Result<Target> InspectTarget(pid_t pid);

}  // namespace tidemark::cli
