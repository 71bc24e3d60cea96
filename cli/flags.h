// The command line of one `tidemark` verb, parsed: switches, options with values, positional
// arguments. Thread-safety: plain values.
#pragma once

#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tidemark::cli {

struct Flags {
  bool json = false;
  bool all = false;
  std::string store_dir;
  std::map<std::string, std::vector<std::string>> values;  // "--depth" -> {"12"}; repeatable.
  std::vector<std::string> positional;

  std::optional<std::string> value(const std::string& option) const {
    auto it = values.find(option);
    if (it == values.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  }
  bool has(const std::string& option) const { return values.count(option) > 0; }
};

// Parses args[1..] (args[0] is the verb). Returns false, after printing why, on an unknown
// option or an option missing its value.
bool ParseFlags(const std::vector<std::string>& args, Flags& flags, std::ostream& err);

// An integer option, or `fallback`; a malformed one is reported and yields nullopt.
std::optional<int64_t> IntOption(const Flags& flags, const std::string& option, int64_t fallback,
                                 std::ostream& err);

}  // namespace tidemark::cli
