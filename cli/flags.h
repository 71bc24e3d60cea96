// The command line of one `tidemark` verb, parsed: switches, options with values, positional
// arguments. Thread-safety: plain values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/file_system.h"

namespace tidemark::cli {

// A store a verb reads: a directory, or a collector's URL with the file system that reads it.
struct Source {
  std::string dir;
  std::shared_ptr<store::FileSystem> fs;
};

struct Flags {
  bool json = false;
  bool all = false;
  std::string store_dir;     // Where the store was found, or the first place looked.
  std::string store_source;  // How store_dir was chosen: "--store", "TIDEMARK_STORE", ...
  // The store's files: the local file system, or the first collector's over its query API.
  store::FileSystem* fs = &store::FileSystem::Default();
  // --collector URL1,URL2,...: every collector's store (ls, growth and alerts merge them,
  // cli/merged.h); store_dir and fs are the first's. Empty for a local store.
  std::vector<Source> collectors;
  int64_t now_ns = 0;  // The wall clock, read once by Main: "-1h" and windows count from it.
  std::map<std::string, std::vector<std::string>> values;  // "--depth" -> {"12"}; repeatable.
  std::vector<std::string> positional;

  std::optional<std::string> value(const std::string& option) const {
    auto it = values.find(option);
    if (it == values.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  }
  bool has(const std::string& option) const { return values.count(option) > 0; }
};

// An integer option, or `fallback`; a malformed one is reported and yields nullopt.
std::optional<int64_t> IntOption(const Flags& flags, const std::string& option, int64_t fallback,
                                 std::ostream& err);

}  // namespace tidemark::cli
