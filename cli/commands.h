// The `tidemark` command's verbs, as functions over streams so tests call them directly.
//
// Each verb returns the process exit code: 0 done, 1 bad input (a message on `err` names
// it), 2 bad usage. Thread-safety: reentrant.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace tidemark::cli {

struct VerbSpec;

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Every verb's definition (cli/command_line.h), in the order the usage lists them.
const std::vector<VerbSpec>& Verbs();

}  // namespace tidemark::cli
