// The `tidemark` command's verbs, as functions over streams so tests call them directly.
//
// Each verb returns the process exit code: 0 done, 1 bad input (a message on `err` names
// it), 2 bad usage. Thread-safety: reentrant.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace tidemark::cli {

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace tidemark::cli
