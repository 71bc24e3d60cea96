#include "cli/command_line.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <ostream>
#include <sstream>

#include "cli/remote_file_system.h"
#include "cli/stored.h"

namespace tidemark::cli {

const OptionSpec kStoreOption = {
    "--store", OptionKind::kText, "DIR",
    "the store tidemarkd writes (default: $TIDEMARK_STORE, else ./tidemark-data, else "
    "/var/lib/tidemark)"};
const OptionSpec kCollectorOption = {
    "--collector", OptionKind::kText, "URL",
    "read the store through tidemarkd's query API at URL (http://HOST:PORT) instead of a "
    "directory (default: $TIDEMARK_COLLECTOR; a token from $TIDEMARK_TOKEN_FILE)"};
const OptionSpec kJsonOption = {"--json", OptionKind::kSwitch, "",
                                "print JSON: every row unless --top limits it, then with "
                                "\"truncated\": true and the total"};
const std::vector<OptionSpec> kGraphLoadOptions = {
    {"--max-refs", OptionKind::kLimit, "N|all",
     "keep at most N references per object (default: all the snapshot has)"},
    {"--max-parents", OptionKind::kLimit, "N|all",
     "keep at most N referrers per object for paths (default 100; all: every one)"},
    {"--no-values", OptionKind::kSwitch, "", "drop recorded values (strings, numbers) at load"},
    {"--no-collapse", OptionKind::kSwitch, "",
     "keep instance __dict__s as objects of their own instead of folding them into their "
     "owners"},
    kStoreOption,
    kCollectorOption,
};

namespace {

const OptionSpec* FindOption(const VerbSpec& verb, std::string_view name) {
  for (const OptionSpec& o : verb.options) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

bool TakesSnapshot(const VerbSpec& verb) {
  return verb.arguments.find("SNAP") != std::string_view::npos ||
         verb.arguments.find("A B") != std::string_view::npos;
}

// `text` after `left` padded to `column`, wrapped at 79 columns under that column.
std::string Aligned(std::string left, size_t column, std::string_view text) {
  left += std::string(left.size() < column ? column - left.size() : 1, ' ');
  size_t width = left.size();
  std::string out = left;
  while (!text.empty()) {
    size_t end = text.find(' ');
    const std::string_view word = text.substr(0, end);
    if (width > column && width + word.size() >= 80) {
      out += "\n" + std::string(column, ' ');
      width = column;
    } else if (width > column) {
      out += ' ';
      ++width;
    }
    out += word;
    width += word.size();
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  return out + "\n";
}

int Refuse(const VerbSpec& verb, std::ostream& err, const std::string& what) {
  err << "tidemark " << verb.name << ": " << what << "\n"
      << "usage: tidemark " << verb.name << " " << verb.arguments
      << (verb.options.empty() ? "" : " [options]") << "  (tidemark " << verb.name << " --help)\n";
  return 2;
}

bool IsCount(const std::string& text) {
  if (text.empty() || text.size() > 12) return false;
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  return std::stoll(text) > 0;
}

// "a, b,,c" -> {"a", "b", "c"}.
std::vector<std::string> SplitList(const std::string& list) {
  std::vector<std::string> out;
  std::istringstream parts(list);
  std::string part;
  while (std::getline(parts, part, ',')) {
    part.erase(0, part.find_first_not_of(" \t"));
    part.erase(part.find_last_not_of(" \t") + 1);
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

// Where the verb reads the store: --collector URL (or $TIDEMARK_COLLECTOR, unless --store is
// given) through the query API, else the directory ChooseStore finds.
int ChooseSource(const VerbSpec& verb, Flags& flags, std::ostream& err) {
  std::optional<std::string> collector = flags.value("--collector");
  if (collector && flags.has("--store")) {
    return Refuse(verb, err, "give one of --store DIR and --collector URL");
  }
  const char* env = std::getenv("TIDEMARK_COLLECTOR");
  if (!collector && !flags.has("--store") && env && *env && FindOption(verb, "--collector")) {
    collector = env;
  }
  if (collector) {
    for (const std::string& url : SplitList(*collector)) {
      auto fs = OpenRemoteFileSystem(url);
      if (!fs) return Refuse(verb, err, fs.error().message);
      flags.collectors.push_back({RemoteStoreRoot(url), std::move(*fs)});
    }
    if (flags.collectors.empty()) return Refuse(verb, err, "--collector names no collector");
    if (flags.collectors.size() > 1 && !verb.merges) {
      return Refuse(verb, err,
                    "reads one collector; ls, growth and alerts merge several (--collector "
                    "URL1,URL2)");
    }
    flags.fs = flags.collectors.front().fs.get();
    flags.store_dir = flags.collectors.size() == 1 ? flags.collectors.front().dir : *collector;
    flags.store_source = flags.has("--collector") ? "--collector" : "TIDEMARK_COLLECTOR";
    return 0;
  }
  const StoreChoice store = ChooseStore(flags.value("--store"));
  flags.store_dir = store.dir;
  flags.store_source = store.source;
  return 0;
}

}  // namespace

int ParseCommandLine(const VerbSpec& verb, const std::vector<std::string>& args, Flags& flags,
                     std::ostream& err) {
  bool options_done = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      flags.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    const OptionSpec* o = FindOption(verb, a == "-o" ? "--output" : a);
    if (o == nullptr) return Refuse(verb, err, "no option '" + a + "' for this command");
    const std::string name(o->name);
    if (o->kind == OptionKind::kSwitch) {
      if (name == "--json") flags.json = true;
      if (name == "--all") flags.all = true;
      flags.values[name];
      continue;
    }
    if (i + 1 == args.size()) {
      return Refuse(verb, err, a + " needs a value (" + std::string(o->placeholder) + ")");
    }
    const std::string& v = args[++i];
    if (o->kind == OptionKind::kCount && !IsCount(v)) {
      return Refuse(verb, err, a + " takes a positive integer, not '" + v + "'");
    }
    if (o->kind == OptionKind::kLimit && !IsCount(v) && v != "all" && v != "-1") {
      return Refuse(verb, err, a + " takes a positive integer or 'all', not '" + v + "'");
    }
    flags.values[name].push_back(v == "all" ? "-1" : v);
  }
  if (flags.positional.size() < verb.min_arguments) {
    return Refuse(verb, err,
                  flags.positional.empty() ? "arguments missing" : "an argument is missing");
  }
  if (flags.positional.size() > verb.max_arguments) {
    return Refuse(verb, err, "unexpected argument '" + flags.positional[verb.max_arguments] + "'");
  }
  return ChooseSource(verb, flags, err);
}

std::string VerbHelp(const VerbSpec& verb) {
  std::ostringstream out;
  out << "usage: tidemark " << verb.name << (verb.arguments.empty() ? "" : " ") << verb.arguments
      << (verb.options.empty() ? "" : " [options]") << "\n\n"
      << verb.description << "\n";
  out << "\noptions:\n";
  std::vector<OptionSpec> options = verb.options;
  options.push_back({"--help", OptionKind::kSwitch, "", "this text"});
  const bool has_top = FindOption(verb, "--top") != nullptr;
  for (const OptionSpec& o : options) {
    std::string left = "  " + std::string(o.name);
    if (!o.placeholder.empty()) left += " " + std::string(o.placeholder);
    if (o.kind == OptionKind::kList) left += " ...";
    // Without --top, JSON holds every row: its help must not speak of one.
    out << Aligned(left, 22, o.name == "--json" && !has_top ? "print JSON" : o.help);
  }
  if (TakesSnapshot(verb)) {
    out << "\nSNAP (and A, B) is a snapshot file (tidemark.dump(), import-meliae) or a stored\n"
           "snapshot: AGENT:SEQ (3:17, api:last, api/4121:first) or AGENT@TIME, the newest\n"
           "taken at or before TIME (2026-11-26T03:00:00Z, or -1h for an hour ago). AGENT is an\n"
           "agent id from `tidemark ls`, a service (its newest instance), SERVICE/PID, or\n"
           "SERVICE/HOST/PID[@START] as alerts name it.\n";
  }
  return out.str();
}

std::string Usage(std::span<const VerbSpec> verbs) {
  std::ostringstream out;
  out << "usage: tidemark <command> [arguments] [options]\n"
         "       tidemark <command> --help     that command's arguments and options\n"
         "       tidemark --version\n";
  // Each group once, in the order groups first appear; its verbs in table order.
  std::vector<std::string_view> groups;
  for (const VerbSpec& v : verbs) {
    if (std::find(groups.begin(), groups.end(), v.group) == groups.end()) groups.push_back(v.group);
  }
  for (std::string_view group : groups) {
    out << "\n" << group << ":\n";
    for (const VerbSpec& v : verbs) {
      if (v.group != group) continue;
      out << Aligned("  " + std::string(v.name) + " " + std::string(v.arguments), 26, v.summary);
    }
  }
  return out.str();
}

}  // namespace tidemark::cli
