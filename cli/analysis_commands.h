// The `tidemark` verbs that load a graph snapshot and question it: types, show, children,
// parents, why, retained, walk, gdiff, export, import-meliae, and summary of a graph.
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
// `tidemark summary` of a graph snapshot: meliae's table over the graph with instance dicts
// collapsed (as meliae's loader shows it), or over what `--root ADDR` reaches without
// entering `--exclude ADDR`s.
int GraphSummary(const Flags& flags, std::ostream& out, std::ostream& err);
// The interactive walker, reading commands from `in` (line editing when it is a terminal).
int Walk(const Flags& flags, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace tidemark::cli
