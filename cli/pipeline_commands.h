// `tidemark growth`, `tidemark alerts` and `tidemark reports`: what the diff pipeline knows,
// read from a store (its series files and the journals tidemarkd writes), from any process.
//
// Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "cli/flags.h"

namespace tidemark::cli {

int GrowthCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int AlertsCommand(const Flags& flags, std::ostream& out, std::ostream& err);
int ReportsCommand(const Flags& flags, std::ostream& out, std::ostream& err);

}  // namespace tidemark::cli
