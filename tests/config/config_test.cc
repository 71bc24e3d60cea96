#include "config/config.h"
#include "config/http_url.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>

#include <fstream>
#include <set>
#include <sstream>

namespace tidemark::config {
namespace {

std::string ReadSource(const std::string& path) {
  std::ifstream in(std::string(SOURCE_ROOT) + "/" + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string TableOf(const std::string& key) { return key.substr(0, key.rfind('.')); }
bool InArrayOfTables(const std::string& key) {
  const std::string table = TableOf(key);
  return table == "rules" || table == "hooks" || table == "schedules";
}

TEST(Config, ADirectoryGivenForTheFileIsAnErrorNotTheDefaults) {
  // tidemarkd --config DIR started on the embedded defaults, and --check-config said "valid".
  char dir[] = "/tmp/tidemark-config-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  auto loaded = Load(dir);
  rmdir(dir);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().message,
            std::string("cannot read ") + dir + ": it is a directory, not a file");
}

TEST(Config, ShippedExampleSetsEveryKeyToItsDefault) {
  auto loaded = Load(std::string(SOURCE_ROOT) + "/config/tidemarkd.example.toml");
  ASSERT_TRUE(loaded) << loaded.error().message;
  const Config defaults;
  const std::string example = ReadSource("config/tidemarkd.example.toml");
  for (const std::string& key : KnownKeys()) {
    EXPECT_EQ(ShowSetting(*loaded, key), ShowSetting(defaults, key)) << key;
    if (InArrayOfTables(key) || !ShowSetting(defaults, key)) continue;
    // Written out under its table, not left to the default.
    const size_t table = example.find("\n[" + TableOf(key) + "]\n");
    ASSERT_NE(table, std::string::npos) << key;
    const size_t next = example.find("\n[", table + 1);
    const size_t at = example.find("\n" + key.substr(key.rfind('.') + 1) + " = ", table);
    EXPECT_TRUE(at != std::string::npos && at < next) << key << " is not in the example file";
  }
  EXPECT_TRUE(KeysNeedingRestart(defaults, *loaded).empty());
}

// docs/configuration.md: under each "## [table]" heading, rows "| `key` | `default` | ...".
struct DocumentedDefault {
  std::string key, value;  // value: the TOML text, or "—" for none.
};
std::vector<DocumentedDefault> DocumentedDefaults() {
  std::vector<DocumentedDefault> rows;
  std::istringstream lines(ReadSource("docs/configuration.md"));
  std::vector<std::string> tables;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("## [", 0) == 0) {
      tables.clear();  // "## [retention.summary] and [retention.graph]", "## [[rules]]".
      for (size_t at = line.find('['); at != std::string::npos; at = line.find(" [", at + 1)) {
        const size_t open = line.find_first_not_of("[ ", at);
        tables.push_back(line.substr(open, line.find(']', open) - open));
      }
      continue;
    }
    if (line.rfind("| `", 0) != 0 || tables.empty()) continue;
    const size_t key_end = line.find('`', 3);
    const std::string name = line.substr(3, key_end - 3);
    const size_t cell = line.find("| ", key_end) + 2;
    std::string values = line.substr(cell, line.find(" |", cell) - cell);
    for (size_t i = 0; i < tables.size(); ++i) {  // "`"30d"` / `"7d"`": one per table.
      const size_t slash = values.find(" / ");
      std::string value = values.substr(0, slash);
      if (slash != std::string::npos) values = values.substr(slash + 3);
      if (value.size() >= 2 && value.front() == '`') value = value.substr(1, value.size() - 2);
      rows.push_back({tables[i] + "." + name, value});
    }
  }
  return rows;
}

TEST(Config, TheDocumentedDefaultsAreTheEmbeddedOnes) {
  const std::vector<DocumentedDefault> rows = DocumentedDefaults();
  std::set<std::string> documented;
  for (const DocumentedDefault& row : rows) {
    SCOPED_TRACE(row.key + " = " + row.value);
    documented.insert(row.key);
    const std::vector<std::string> known = KnownKeys();
    ASSERT_NE(std::find(known.begin(), known.end(), row.key), known.end())
        << "documented but not a key";
    const std::string table = TableOf(row.key);
    // An element of [[hooks]] or [[schedules]] starts from its own defaults.
    std::string element = InArrayOfTables(row.key) ? "[[" + table + "]]\n" : "";
    if (table == "schedules") {  // One of every and at is required.
      element += row.key == "schedules.every" ? "at = \"03:00\"\n" : "every = \"1h\"\n";
    }
    auto base = Parse(element, "base.toml");
    ASSERT_TRUE(base) << base.error().message;
    const Config defaults = table == "rules" ? Config{} : *base;
    if (row.value == "—") {
      EXPECT_FALSE(ShowSetting(defaults, row.key)) << "has a default, documented as none";
      continue;
    }
    std::string value = row.value;
    if (const size_t n = value.find("-N\""); n != std::string::npos) value.replace(n, 2, "-1");
    const std::string text = (element.empty() ? "[" + table + "]\n" : element) +
                             row.key.substr(row.key.rfind('.') + 1) + " = " + value + "\n";
    auto parsed = Parse(text, "doc.toml");
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(ShowSetting(*parsed, row.key), ShowSetting(defaults, row.key));
  }
  for (const std::string& key : KnownKeys()) {
    EXPECT_TRUE(documented.count(key)) << key << " has no row in docs/configuration.md";
  }
}

TEST(Config, EveryKeyIsDocumentedUnderItsTable) {
  std::ifstream in(std::string(SOURCE_ROOT) + "/docs/configuration.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string docs = text.str();
  for (const std::string& key : KnownKeys()) {
    const auto dot = key.rfind('.');
    const std::string table = "[" + key.substr(0, dot) + "]";
    const std::string name = "`" + key.substr(dot + 1) + "`";
    EXPECT_NE(docs.find(table), std::string::npos) << key;
    EXPECT_NE(docs.find(name, docs.find(table)), std::string::npos) << key;
  }
}

TEST(Config, RulesHooksAndSchedulesAreReadAsArraysOfTables) {
  auto parsed = Parse(R"(
[[rules]]
name = "fast"
types = ["app.*"]
min_rate = "4MiB/h"
window = "10m"
for = "1m"
min_fit = 0.8

[[hooks]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:9093"
headers = { Authorization = "Bearer x" }

[[hooks]]
name = "pager"
kind = "command"
command = ["/bin/cat"]
timeout = "2s"

[[schedules]]
name = "nightly"
at = "03:30"
hooks = ["am"]
)",
                      "t.toml");
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->rules.size(), 1u) << "a file's rules replace the default rule";
  EXPECT_EQ(parsed->rules[0].name, "fast");
  EXPECT_EQ(parsed->rules[0].types, std::vector<std::string>{"app.*"});
  EXPECT_EQ(parsed->rules[0].min_rate, uint64_t{4} << 20);
  EXPECT_EQ(parsed->rules[0].window_ms, 600'000);
  EXPECT_DOUBLE_EQ(parsed->rules[0].min_fit, 0.8);
  EXPECT_EQ(parsed->rules[0].min_growth, LeakRuleConfig{}.min_growth);
  ASSERT_EQ(parsed->hooks.size(), 2u);
  EXPECT_EQ(parsed->hooks[0].kind, HookKind::kAlertmanager);
  EXPECT_EQ(parsed->hooks[0].headers,
            (std::vector<std::pair<std::string, std::string>>{{"Authorization", "Bearer x"}}));
  EXPECT_EQ(parsed->hooks[1].command, std::vector<std::string>{"/bin/cat"});
  EXPECT_EQ(parsed->hooks[1].timeout_ms, 2000);
  ASSERT_EQ(parsed->schedules.size(), 1u);
  EXPECT_EQ(parsed->schedules[0].at_minute, 210);
}

TEST(Config, BadElementsAreNamed) {
  auto no_url = Parse("[[hooks]]\nname = \"x\"\nkind = \"webhook\"\n", "t.toml");
  ASSERT_FALSE(no_url);
  EXPECT_NE(no_url.error().message.find("hook 'x': kind webhook needs url"), std::string::npos)
      << no_url.error().message;
  auto unknown_hook = Parse("[[schedules]]\nevery = \"6h\"\nhooks = [\"nope\"]\n", "t.toml");
  ASSERT_FALSE(unknown_hook);
  EXPECT_NE(unknown_hook.error().message.find("'nope', which is not defined"), std::string::npos);
  auto both = Parse("[[schedules]]\nevery = \"6h\"\nat = \"03:00\"\n", "t.toml");
  ASSERT_FALSE(both);
  EXPECT_NE(both.error().message.find("exactly one of every"), std::string::npos)
      << both.error().message;
  auto bad_time = Parse("[[schedules]]\nat = \"25:00\"\n", "t.toml");
  ASSERT_FALSE(bad_time);
  EXPECT_NE(bad_time.error().message.find("t.toml:2: schedules.at"), std::string::npos)
      << bad_time.error().message;
  auto too_long = Parse("[growth]\nspan = \"10m\"\n[[rules]]\nwindow = \"1h\"\n", "t.toml");
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message.find("longer than growth.span"), std::string::npos);
  auto bad_header = Parse("[[hooks]]\nheaders = { \"Bad Name\" = \"x\" }\n", "t.toml");
  ASSERT_FALSE(bad_header);
  EXPECT_NE(bad_header.error().message.find("not a valid HTTP header"), std::string::npos)
      << bad_header.error().message;
  auto bad_kind = Parse("[[hooks]]\nkind = \"email\"\n", "t.toml");
  ASSERT_FALSE(bad_kind);
  EXPECT_NE(bad_kind.error().message.find("hooks.kind: expected one of \"webhook\""),
            std::string::npos);
}

TEST(Config, ArraysOfTablesWrittenAsTablesAreErrorsNotACrashOrAnEditedDefault) {
  for (const char* name : {"hooks", "schedules", "rules"}) {
    const std::string text = std::string("# comment\n[") + name + "]\nname = \"x\"\n";
    auto parsed = Parse(text, "t.toml");
    ASSERT_FALSE(parsed) << name;
    EXPECT_NE(parsed.error().message.find(std::string("t.toml:2: '") + name +
                                          "' must be an array of tables: write [[" + name + "]]"),
              std::string::npos)
        << parsed.error().message;
  }
}

TEST(Config, SizesAndDurationsThatOverflowAreRefusedNamingTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"[growth]\nspan = \"999999999999w\"\n", "growth.span: \"999999999999w\" is too long"},
      {"[limits]\nmax_body_bytes = \"20000000TiB\"\n",
       "limits.max_body_bytes: \"20000000TiB\" is too large"},
      {"[limits]\nmax_body_bytes = 9223372036854775807\n",
       "limits.max_body_bytes: 9223372036854775807 is too large"},
      {"[growth]\nspan = 9223372036854775807\n", "growth.span: 9223372036854775807 is too large"}};
  for (const auto& [text, expected] : cases) {
    auto parsed = Parse(text, "t.toml");
    ASSERT_FALSE(parsed) << text;
    EXPECT_NE(parsed.error().message.find(std::string("t.toml:2: ") + expected), std::string::npos)
        << parsed.error().message;
  }
}

TEST(Config, ValuesThatWouldStopOrSilenceTheDaemonAreRefusedNamingTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      // Was an uncaught std::out_of_range: --check-config aborted, a reload stopped the daemon.
      {"[http]\nlisten = \"127.0.0.1:99999999999999999999\"\n",
       "http.listen: port \"99999999999999999999\" is not a number from 0 to 65535"},
      {"[[rules]]\nname = \"r\"\nmin_fit = nan\n", "rules.min_fit: must be between"},
      {"[native]\nmin_fit = inf\n", "native.min_fit: must be between"},
      {"[[hooks]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"http://[::1\"\n",
       "hooks.url: \"http://[::1\" is not a usable URL: no closing ']'"},
      {"[[hooks]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"http://h:99999999999/\"\n",
       "is not a number from 1 to 65535"},
      {"[[hooks]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"http:///x\"\n", "no host"},
      {"[limits]\nmax_body_bytes = 0\n", "limits.max_body_bytes: must be at least 64KiB"},
      {"[limits]\nmax_message_bytes = \"1KiB\"\n",
       "limits.max_message_bytes: must be at least 64KiB"}};
  for (const auto& [text, expected] : cases) {
    auto parsed = Parse(text, "t.toml");
    ASSERT_FALSE(parsed) << text;
    EXPECT_NE(parsed.error().message.find(expected), std::string::npos) << parsed.error().message;
  }
  auto url = ParseHttpUrl("https://[::1]:8443/hook?x=1");
  ASSERT_TRUE(url) << url.error().message;
  EXPECT_EQ((url->tls ? 1 : 0), 1);
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, "8443");
  EXPECT_EQ(url->target, "/hook?x=1");
}

TEST(Config, InputThatReachesTheTomlParsersAssertsIsAnErrorInEveryBuild) {
  for (const std::string& text : {std::string("[="), std::string("a = \"x\"\n\xe2\x82"),
                                  std::string("\xff"), std::string("[a]\n[=\n")}) {
    auto parsed = Parse(text, "t.toml");
    ASSERT_FALSE(parsed);
    EXPECT_NE(parsed.error().message.find("t.toml:"), std::string::npos) << parsed.error().message;
  }
}

TEST(Config, UnknownKeyIsNamedWithItsLine) {
  auto parsed = Parse("[store]\nsync = \"fsync\"\nsegmnet_bytes = 5\n", "t.toml");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("t.toml:3"), std::string::npos) << parsed.error().message;
  EXPECT_NE(parsed.error().message.find("store.segmnet_bytes"), std::string::npos)
      << parsed.error().message;
}

TEST(Config, UnknownTableIsAnError) {
  auto parsed = Parse("[colector]\nendpoint = \"tcp://x:1\"\n", "t.toml");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("colector"), std::string::npos) << parsed.error().message;
}

TEST(Config, WrongTypeNamesKeyLineAndExpectation) {
  auto parsed = Parse("[limits]\n\nmax_objects = \"many\"\n", "t.toml");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("t.toml:3: limits.max_objects: expected an integer"),
            std::string::npos)
      << parsed.error().message;
}

TEST(Config, SyntaxErrorNamesTheLine) {
  auto parsed = Parse("[store]\ndir = \"unterminated\n", "t.toml");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("t.toml:2"), std::string::npos) << parsed.error().message;
}

TEST(Config, SizesAndDurationsTakeUnitsOrPlainIntegers) {
  auto parsed = Parse(
      "[store]\nsegment_bytes = \"8MiB\"\nsegment_age = 90\n"
      "[retention.graph]\nmax_age = \"36h\"\nmax_bytes = 4096\nkeep_last = 3\n",
      "t");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->segment_bytes, 8u << 20);
  EXPECT_EQ(parsed->segment_age_ms, 90'000);
  EXPECT_EQ(parsed->graph_retention.max_age_ms, 36 * 3600'000);
  EXPECT_EQ(parsed->graph_retention.max_bytes, 4096u);
  EXPECT_EQ(parsed->graph_retention.keep_last, 3u);
  EXPECT_EQ(parsed->summary_retention.keep_last, 0u);
}

TEST(Config, BadUnitIsRejected) {
  auto parsed = Parse("[store]\nsegment_bytes = \"8 parsecs\"\n", "t");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("store.segment_bytes"), std::string::npos)
      << parsed.error().message;
  EXPECT_NE(parsed.error().message.find("not a size"), std::string::npos) << parsed.error().message;
}

TEST(Config, BadEndpointAndLevelAreRejected) {
  EXPECT_FALSE(Parse("[collector]\nendpoint = \"127.0.0.1:7878\"\n", "t"));
  EXPECT_FALSE(Parse("[log]\nlevel = \"loud\"\n", "t"));
  EXPECT_FALSE(Parse("[http]\nlisten = \"localhost:99999\"\n", "t"));
  EXPECT_TRUE(Parse("[http]\nlisten = \"\"\n", "t"));
}

TEST(Config, CurveNeedsASecretKey) {
  auto parsed = Parse("[curve]\nenabled = true\n", "t");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("curve.secret_key"), std::string::npos)
      << parsed.error().message;
}

TEST(Config, ListeningOffLoopbackNeedsATokenFile) {
  for (const char* loopback : {"127.0.0.1:7879", "127.8.9.1:80", "[::1]:7879", "::1:7879"}) {
    EXPECT_TRUE(Parse(std::string("[http]\nlisten = \"") + loopback + "\"\n", "t")) << loopback;
  }
  for (const char* open : {"0.0.0.0:7879", "10.1.2.3:7879", "[::]:7879"}) {
    auto parsed = Parse(std::string("[http]\nlisten = \"") + open + "\"\n", "t");
    ASSERT_FALSE(parsed) << open;
    EXPECT_NE(parsed.error().message.find("http.token_file"), std::string::npos)
        << parsed.error().message;
  }
  const std::string path = std::string(TEST_TMPDIR) + "/token";
  std::ofstream(path) << "  0123456789abcdefXYZ \n";
  ::chmod(path.c_str(), 0600);
  auto parsed = Parse("[http]\nlisten = \"0.0.0.0:7879\"\ntoken_file = \"" + path + "\"\n", "t");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->http_token, "0123456789abcdefXYZ");
}

TEST(Config, ATokenFileEveryoneCanReadOrAShortTokenIsRefused) {
  const std::string path = std::string(TEST_TMPDIR) + "/token-bad";
  std::ofstream(path) << "0123456789abcdefXYZ\n";
  ::chmod(path.c_str(), 0644);
  auto parsed = Parse("[http]\ntoken_file = \"" + path + "\"\n", "t");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("readable by every user"), std::string::npos)
      << parsed.error().message;
  ::chmod(path.c_str(), 0600);
  std::ofstream(path) << "short\n";
  parsed = Parse("[http]\ntoken_file = \"" + path + "\"\n", "t");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("at least 16"), std::string::npos)
      << parsed.error().message;
  parsed = Parse("[http]\ntoken_file = \"" + path + "-missing\"\n", "t");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("token-bad-missing"), std::string::npos)
      << parsed.error().message;
}

TEST(Config, AllowedClientsFileIsReadAndChecked) {
  const std::string path = std::string(TEST_TMPDIR) + "/clients.txt";
  std::ofstream(path) << "# ops laptop\nrq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n";
  auto parsed = Parse("[curve]\nallowed_clients_file = \"" + path + "\"\n", "t");
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->curve_allowed_clients.size(), 1u);
  // Z85 keys contain '#': only a line starting with it, or '#' after a space, is a comment.
  const std::string hashed = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y#7";
  std::ofstream(path) << "  # ops laptop\n" << hashed << "\n" << hashed << "  # again\n";
  parsed = Parse("[curve]\nallowed_clients_file = \"" + path + "\"\n", "t");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->curve_allowed_clients, (std::vector<std::string>{hashed, hashed}));
  std::ofstream(path) << "not-a-key\n";
  parsed = Parse("[curve]\nallowed_clients_file = \"" + path + "\"\n", "t");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("clients.txt:1"), std::string::npos)
      << parsed.error().message;
}

TEST(Config, ReloadReportsWhatNeedsARestart) {
  Config running;
  auto loaded =
      Parse("[log]\nlevel = \"debug\"\n[collector]\nendpoint = \"tcp://127.0.0.1:9\"\n", "t");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(KeysNeedingRestart(running, *loaded), std::vector<std::string>{"collector.endpoint"});
}

}  // namespace
}  // namespace tidemark::config
