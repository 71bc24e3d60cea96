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

bool IsPipelineVerb(const std::string& verb);
int RunPipelineVerb(const std::string& verb, const Flags& flags, int64_t now_ns, std::ostream& out,
                    std::ostream& err);

}  // namespace tidemark::cli
