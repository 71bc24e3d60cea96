// The `tidemark` verbs that load a graph snapshot and question it: types, show, children,
// parents, why, retained, walk, gdiff, export, import-meliae, and summary of a graph.
//
// Each returns the process exit code (0 done, 1 bad input, 2 bad usage).
// REQUIRES: flags parsed against the verb's definition (cli/command_line.h): the arguments it
// needs are there. Thread-safety: reentrant.
#pragma once

#include <iosfwd>
#include <string>

#include "cli/flags.h"

namespace tidemark::cli {

int TypesCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int ShowCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int ChildrenCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int ParentsCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int WhyCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int RetainedCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int GraphDiffCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int ExportCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int ImportMeliaeCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int WalkCommand(const Flags& flags, std::ostream& out, std::ostream& err);  // Reads std::cin.
// `tidemark summary` of a graph snapshot: meliae's table over the graph with instance dicts
// collapsed (as meliae's loader shows it), or over what `--root ADDR` reaches without
// entering `--exclude ADDR`s.
int GraphSummary(const Flags& flags, std::ostream& out, std::ostream& err);
// The interactive walker, reading commands from `in` (line editing when it is a terminal).
int Walk(const Flags& flags, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace tidemark::cli
