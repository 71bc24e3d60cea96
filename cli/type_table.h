// meliae's summary table, shared by `summary` of a type table and of a graph.
// Thread-safety: reentrant.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli/flags.h"
#include "snapshot/snapshot.h"

namespace tidemark::cli {

// REQUIRES: rows sorted by (bytes, count), largest first; shown <= rows.size().
// Sizes as Size() writes them (--bytes: exact).
void PrintTypeTable(const std::vector<snapshot::TypeStat>& rows, size_t shown, const Flags& flags,
                    std::ostream& out);
// {"objects", "bytes", "types", "rows": [{"type", "count", "bytes", "max"}...]}, with
// "truncated" and "total" when fewer than all rows are shown.
nlohmann::json TypeTableJson(const std::vector<snapshot::TypeStat>& rows, size_t shown);

}  // namespace tidemark::cli
