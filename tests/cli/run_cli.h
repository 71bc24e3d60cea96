// Runs the tidemark command line in-process, as the binary's main() does, capturing its output.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace tidemark::cli::testing {

// Returns the exit status; `out` and `err` get what the command printed.
inline int RunCli(const std::vector<std::string>& args, std::string& out, std::string& err) {
  std::ostringstream o, e;
  const int rc = Main(args, o, e);
  out = o.str();
  err = e.str();
  return rc;
}

}  // namespace tidemark::cli::testing
