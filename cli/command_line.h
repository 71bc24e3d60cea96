// The command model of `tidemark`: each verb defined once (its arguments, its options with
// their kinds, defaults and help), and what is made from the definitions: the parser, which
// refuses what a verb does not take, the usage listing every verb, and each verb's --help.
//
// Thread-safety: the definitions are constants; the functions are reentrant.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cli/flags.h"

namespace tidemark::cli {

enum class OptionKind {
  kSwitch,  // --json
  kCount,   // a positive integer: --top 5
  kLimit,   // a positive integer, or "all" (-1 too): --max-parents all
  kText,    // --format folded
  kList,    // repeatable: --exclude A --exclude B
};

struct OptionSpec {
  std::string_view name;  // "--top"
  OptionKind kind;
  std::string_view placeholder;  // "N", "DIR"; empty for a switch
  std::string_view help;         // One line; says the default when there is one.
};

using Runner = int (*)(const Flags& flags, std::ostream& out, std::ostream& err);

struct VerbSpec {
  std::string_view name;
  std::string_view group;      // The heading it is listed under in the usage.
  std::string_view arguments;  // "SNAP ADDR|TYPE"; optional ones in brackets: "SNAP [ADDR]"
  size_t min_arguments;
  size_t max_arguments;
  std::string_view summary;      // One line for the usage.
  std::string_view description;  // The paragraph its --help opens with.
  std::vector<OptionSpec> options;
  Runner run;
  bool reads_store = false;  // Works on the store only (ls, alerts...), not on snapshots.
  bool merges = false;       // Reads several collectors at once, merged (cli/merged.h).
};

// The --store option, and the options every verb that loads a graph takes.
extern const OptionSpec kStoreOption;
extern const OptionSpec kCollectorOption;
extern const OptionSpec kJsonOption;
extern const std::vector<OptionSpec> kGraphLoadOptions;

// Parses args (args[0] is the verb) against `verb`. Returns 0 with `flags` filled, or 2 after
// printing on `err` what was wrong (an option the verb does not take, a missing or malformed
// value, too few or too many arguments) and how to get the verb's help.
int ParseCommandLine(const VerbSpec& verb, const std::vector<std::string>& args, Flags& flags,
                     std::ostream& err);

// `tidemark VERB --help`: synopsis, description, every option, what SNAP means if it takes one.
std::string VerbHelp(const VerbSpec& verb);
// `tidemark --help`: every verb, one line each, grouped.
std::string Usage(std::span<const VerbSpec> verbs);

}  // namespace tidemark::cli
