// Checks the dependency direction between folders by reading every #include "folder/..." in
// the tree. A folder added later must get a rule here, or this test fails.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

namespace fs = std::filesystem;

namespace {

// folder -> folders it may include (itself always allowed).
const std::map<std::string, std::set<std::string>> kAllowed = {
    {"snapshot", {}},
    {"config", {"snapshot"}},  // snapshot/result.h: the one error type.
    {"agent", {"snapshot"}},
    {"store", {"snapshot"}},
    {"diff", {"snapshot"}},
    // Heap-graph algorithms (dominators, paths, graph diff): heavy, separate from diff/'s
    // light series logic, so the collector links them only where it asks what holds a leak.
    {"analysis", {"snapshot"}},
    {"collector", {"snapshot", "store", "diff", "analysis", "config"}},
    {"cli", {"snapshot", "store", "diff", "analysis", "config"}},
    {"bench", {"snapshot", "store", "diff", "analysis", "config", "collector", "cli", "agent"}},
    {"tests", {"snapshot", "store", "diff", "analysis", "config", "collector", "cli", "agent"}},
};

// Folders with no C++ of their own.
const std::set<std::string> kNoCode = {"docs", "scripts", "systemd", "build", ".git", ".ci"};

bool IsSource(const fs::path& p) {
  const auto ext = p.extension().string();
  return ext == ".h" || ext == ".cc" || ext == ".c" || ext == ".cpp" || ext == ".hpp";
}

TEST(Layering, EveryFolderWithCodeHasARule) {
  for (const auto& entry : fs::directory_iterator(SOURCE_ROOT)) {
    if (!entry.is_directory()) continue;
    const std::string name = entry.path().filename().string();
    if (kNoCode.count(name) || name.rfind("build", 0) == 0 || name[0] == '.') continue;
    bool has_code = false;
    for (const auto& f : fs::recursive_directory_iterator(entry.path())) {
      has_code |= f.is_regular_file() && IsSource(f.path());
    }
    if (has_code || fs::exists(entry.path() / "CMakeLists.txt")) {
      EXPECT_TRUE(kAllowed.count(name)) << "folder '" << name << "' has no layering rule";
    }
  }
}

TEST(Layering, NoFolderIncludesOneItMustNot) {
  const std::regex include_re(R"re(^\s*#\s*include\s*"([a-z_]+)/)re");
  int files = 0;
  for (const auto& [folder, allowed] : kAllowed) {
    const fs::path dir = fs::path(SOURCE_ROOT) / folder;
    if (!fs::exists(dir)) continue;
    for (const auto& f : fs::recursive_directory_iterator(dir)) {
      if (!f.is_regular_file() || !IsSource(f.path())) continue;
      ++files;
      std::ifstream in(f.path());
      std::string line;
      int number = 0;
      while (std::getline(in, line)) {
        ++number;
        std::smatch m;
        if (!std::regex_search(line, m, include_re)) continue;
        const std::string target = m[1];
        if (!kAllowed.count(target) || target == folder) continue;
        EXPECT_TRUE(allowed.count(target)) << f.path().string() << ":" << number << ": " << folder
                                           << "/ must not include " << target << "/";
      }
    }
  }
  EXPECT_GT(files, 5);
}

}  // namespace
