// meliae's summary table, shared by `summary` of a type table and of a graph.
// Thread-safety: reentrant.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <vector>

#include "snapshot/snapshot.h"

namespace tidemark::cli {

// REQUIRES: rows sorted by (bytes, count), largest first. Shows 20 rows unless `all`.
void PrintTypeTable(const std::vector<snapshot::TypeStat>& rows, bool all, std::ostream& out);
// {"objects", "bytes", "types", "rows": [{"type", "count", "bytes", "max"}...]}.
nlohmann::json TypeTableJson(const std::vector<snapshot::TypeStat>& rows, bool all);

}  // namespace tidemark::cli
