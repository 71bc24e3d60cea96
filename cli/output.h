// What every verb's output shares: how many rows a table or a JSON list shows, how JSON says
// it is cut short, and how a size is written. Thread-safety: reentrant.
#pragma once

#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "cli/flags.h"

namespace tidemark::cli {

// How many of `total` rows to show: all with --all, at most --top N, else all in --json (which
// is complete unless asked otherwise) and at most `default_rows` in a table.
size_t RowsShown(const Flags& flags, size_t total, size_t default_rows);

// Marks JSON output that holds `shown` of `total` rows: "truncated": true, "total": total.
void MarkTruncated(nlohmann::json& j, size_t shown, size_t total);

// A size for a table: "12.3 MiB" (binary units, as everywhere in tidemark), or the exact
// number of bytes with --bytes. JSON always carries exact bytes.
std::string Size(const Flags& flags, double bytes);
// The same with a sign: "+1.2 MiB", "-300 B".
std::string SignedSize(const Flags& flags, double bytes);

// Why `path` cannot be a file to read or write: "it is a directory", "no such file or
// directory" (or of its directory), the system's word; "" when nothing is known against it.
std::string WhyNotAFile(const std::string& path, bool for_writing);

}  // namespace tidemark::cli
