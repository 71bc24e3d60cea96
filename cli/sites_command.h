// `tidemark sites`: where a snapshot's live heap was allocated (the agent's sampled
// allocation sites), what grew between two snapshots by site, and folded stacks for flame
// graphs.
//
// Returns the process exit code (0 done, 1 bad input, 2 bad usage).
// REQUIRES: flags parsed against the verb's definition. Thread-safety: reentrant.
#pragma once

#include <iosfwd>

#include "cli/flags.h"

namespace tidemark::cli {

int SitesCommand(const Flags& flags, std::ostream& out, std::ostream& err);

}  // namespace tidemark::cli
