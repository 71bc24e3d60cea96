// The `tidemark` verbs that load a graph snapshot and question it: types, show, children,
// parents, why, retained, walk, gdiff, export, import-meliae, and summary --root.
//
// Each returns the process exit code (0 done, 1 bad input, 2 bad usage). Thread-safety:
// reentrant.
#pragma once

#include <iosfwd>
#include <string>

#include "cli/flags.h"

namespace tidemark::cli {

bool IsAnalysisVerb(const std::string& verb);
int RunAnalysis(const std::string& verb, const Flags& flags, std::ostream& out, std::ostream& err);
// `tidemark summary SNAP --root ADDR [--exclude ADDR]...`: meliae's table over what one
// object reaches.
int RootedSummary(const Flags& flags, std::ostream& out, std::ostream& err);
// The interactive walker, reading commands from `in` (line editing when it is a terminal).
int Walk(const Flags& flags, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace tidemark::cli
