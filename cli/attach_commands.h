// `tidemark attach PID`, `detach PID` and `dump PID`: start or stop the agent inside a running
// Python process, or take one snapshot of it, through cli/attach.h.
//
// The code run in the target imports tidemark from the target's own path first; if it cannot,
// from the agent directory for the target's exact version (--agent DIR, TIDEMARK_AGENT_PATH,
// or the build tree's python/ next to this program), added to sys.path for that import only.
// A directory given without a module for that version is refused before anything is injected.
// Every outcome (started, already running, an exception) comes back in a file the target
// writes (0600, its owner) and this program reads and removes.
//
// Returns the exit code (0 done, 1 failed, 2 bad usage). Thread-safety: reentrant.
#pragma once

#include <iosfwd>

#include "cli/flags.h"

namespace tidemark::cli {

int AttachCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int DetachCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int DumpCommand(const Flags& flags, std::ostream& out, std::ostream& err);

}  // namespace tidemark::cli
