#include "cli/type_table.h"

#include "cli/output.h"

#include <cinttypes>
#include <cstdio>
#include <ostream>

namespace tidemark::cli {
void PrintTypeTable(const std::vector<snapshot::TypeStat>& rows, size_t shown, const Flags& flags,
                    std::ostream& out) {
  uint64_t count = 0, bytes = 0;
  for (const auto& t : rows) count += t.count, bytes += t.bytes;
  char line[512];
  const std::string total =
      flags.has("--bytes") ? "" : Size(flags, static_cast<double>(bytes)) + " (";
  std::snprintf(line, sizeof line,
                "Total %" PRIu64 " objects, %zu types, Total size = %s%" PRIu64 " bytes%s\n", count,
                rows.size(), total.c_str(), bytes, total.empty() ? "" : ")");
  out << line << " Index   Count   %       Size   % Cum       Max Kind\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < shown; ++i) {
    const snapshot::TypeStat& t = rows[i];
    cumulative += t.bytes;
    // meliae truncates percentages.
    const int count_pct = count ? static_cast<int>(t.count * 100 / count) : 0;
    const int size_pct = bytes ? static_cast<int>(t.bytes * 100 / bytes) : 0;
    const int cum_pct = bytes ? static_cast<int>(cumulative * 100 / bytes) : 0;
    std::snprintf(line, sizeof line, "%6zu%8" PRIu64 "%4d%11s%4d%4d%10s %s\n", i, t.count,
                  count_pct, Size(flags, static_cast<double>(t.bytes)).c_str(), size_pct, cum_pct,
                  Size(flags, static_cast<double>(t.max_bytes)).c_str(), t.name.c_str());
    out << line;
  }
  if (shown < rows.size()) out << "... " << rows.size() - shown << " more types (--all)\n";
}

nlohmann::json TypeTableJson(const std::vector<snapshot::TypeStat>& rows, size_t shown) {
  uint64_t count = 0, bytes = 0;
  for (const auto& t : rows) count += t.count, bytes += t.bytes;
  nlohmann::json j = {{"objects", count},
                      {"bytes", bytes},
                      {"types", rows.size()},
                      {"rows", nlohmann::json::array()}};
  for (size_t i = 0; i < shown; ++i) {
    j["rows"].push_back({{"type", rows[i].name},
                         {"count", rows[i].count},
                         {"bytes", rows[i].bytes},
                         {"max", rows[i].max_bytes}});
  }
  MarkTruncated(j, shown, rows.size());
  return j;
}

}  // namespace tidemark::cli
