#include "cli/flags.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <ostream>

namespace tidemark::cli {

std::optional<int64_t> IntOption(const Flags& flags, const std::string& option, int64_t fallback,
                                 std::ostream& err) {
  auto v = flags.value(option);
  if (!v) return fallback;
  try {
    size_t used = 0;
    const int64_t n = std::stoll(*v, &used);
    if (used == v->size()) return n;
  } catch (const std::exception&) {
  }
  err << "tidemark: " << option << " takes an integer, not '" << *v << "'\n";
  return std::nullopt;
}

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

}  // namespace tidemark::cli
