#include "cli/output.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "diff/detector.h"

namespace tidemark::cli {

size_t RowsShown(const Flags& flags, size_t total, size_t default_rows) {
  if (flags.all) return total;
  if (auto top = flags.value("--top")) return std::min<size_t>(total, std::stoull(*top));
  return flags.json ? total : std::min(total, default_rows);
}

void MarkTruncated(nlohmann::json& j, size_t shown, size_t total) {
  if (shown >= total) return;
  j["truncated"] = true;
  j["total"] = total;
}

std::string Size(const Flags& flags, double bytes) {
  if (!flags.has("--bytes")) return diff::HumanBytes(bytes);
  char out[32];
  std::snprintf(out, sizeof out, "%.0f", bytes);
  return out;
}

std::string SignedSize(const Flags& flags, double bytes) {
  return (bytes > 0 ? "+" : "") + Size(flags, bytes);
}

}  // namespace tidemark::cli
