#include "cli/output.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
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

std::string WhyNotAFile(const std::string& path, bool for_writing) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return "it is a directory";
    if (!S_ISREG(st.st_mode) && !for_writing) return "it is not a regular file";
    return "";
  }
  const int error = errno;
  if (error == ENOENT && for_writing) {
    const std::string dir = std::filesystem::path(path).parent_path().string();
    if (!dir.empty() && ::stat(dir.c_str(), &st) != 0) return "its directory does not exist";
    return "";
  }
  return std::strerror(error);
}

}  // namespace tidemark::cli
