#include "config/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace tidemark::config {
namespace {

TEST(Config, ShippedExampleEqualsEmbeddedDefaults) {
  auto loaded = Load(std::string(SOURCE_ROOT) + "/config/tidemarkd.example.toml");
  ASSERT_TRUE(loaded) << loaded.error();
  const Config defaults;
  EXPECT_EQ(loaded->endpoint, defaults.endpoint);
  EXPECT_EQ(loaded->http_listen, defaults.http_listen);
  EXPECT_EQ(loaded->segment_bytes, defaults.segment_bytes);
  EXPECT_EQ(loaded->segment_age_ms, defaults.segment_age_ms);
  EXPECT_EQ(loaded->summary_retention.max_age_ms, defaults.summary_retention.max_age_ms);
  EXPECT_EQ(loaded->graph_retention.max_bytes, defaults.graph_retention.max_bytes);
  EXPECT_EQ(loaded->max_message_bytes, defaults.max_message_bytes);
  EXPECT_EQ(loaded->max_objects, defaults.max_objects);
  EXPECT_EQ(loaded->drop_log_interval_ms, defaults.drop_log_interval_ms);
  EXPECT_TRUE(KeysNeedingRestart(defaults, *loaded).empty());
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
  ASSERT_TRUE(parsed) << parsed.error();
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
  EXPECT_NE(no_url.error().find("hook 'x': kind webhook needs url"), std::string::npos)
      << no_url.error();
  auto unknown_hook = Parse("[[schedules]]\nevery = \"6h\"\nhooks = [\"nope\"]\n", "t.toml");
  ASSERT_FALSE(unknown_hook);
  EXPECT_NE(unknown_hook.error().find("'nope', which is not defined"), std::string::npos);
  auto both = Parse("[[schedules]]\nevery = \"6h\"\nat = \"03:00\"\n", "t.toml");
  ASSERT_FALSE(both);
  EXPECT_NE(both.error().find("exactly one of every"), std::string::npos) << both.error();
  auto bad_time = Parse("[[schedules]]\nat = \"25:00\"\n", "t.toml");
  ASSERT_FALSE(bad_time);
  EXPECT_NE(bad_time.error().find("t.toml:2: schedules.at"), std::string::npos) << bad_time.error();
  auto too_long = Parse("[growth]\nspan = \"10m\"\n[[rules]]\nwindow = \"1h\"\n", "t.toml");
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().find("longer than growth.span"), std::string::npos);
  auto bad_header = Parse("[[hooks]]\nheaders = { \"Bad Name\" = \"x\" }\n", "t.toml");
  ASSERT_FALSE(bad_header);
  EXPECT_NE(bad_header.error().find("not a valid HTTP header"), std::string::npos)
      << bad_header.error();
  auto bad_kind = Parse("[[hooks]]\nkind = \"email\"\n", "t.toml");
  ASSERT_FALSE(bad_kind);
  EXPECT_NE(bad_kind.error().find("hooks.kind: expected \"webhook\""), std::string::npos);
}

TEST(Config, ArraysOfTablesWrittenAsTablesAreErrorsNotACrashOrAnEditedDefault) {
  for (const char* name : {"hooks", "schedules", "rules"}) {
    const std::string text = std::string("# comment\n[") + name + "]\nname = \"x\"\n";
    auto parsed = Parse(text, "t.toml");
    ASSERT_FALSE(parsed) << name;
    EXPECT_NE(parsed.error().find(std::string("t.toml:2: '") + name +
                                  "' must be an array of tables: write [[" + name + "]]"),
              std::string::npos)
        << parsed.error();
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
    EXPECT_NE(parsed.error().find(std::string("t.toml:2: ") + expected), std::string::npos)
        << parsed.error();
  }
}

TEST(Config, InputThatReachesTheTomlParsersAssertsIsAnErrorInEveryBuild) {
  for (const std::string& text : {std::string("[="), std::string("a = \"x\"\n\xe2\x82"),
                                  std::string("\xff"), std::string("[a]\n[=\n")}) {
    auto parsed = Parse(text, "t.toml");
    ASSERT_FALSE(parsed);
    EXPECT_NE(parsed.error().find("t.toml:"), std::string::npos) << parsed.error();
  }
}

TEST(Config, UnknownKeyIsNamedWithItsLine) {
  auto parsed = Parse("[store]\nsync = \"fsync\"\nsegmnet_bytes = 5\n", "t.toml");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().find("t.toml:3"), std::string::npos) << parsed.error();
  EXPECT_NE(parsed.error().find("store.segmnet_bytes"), std::string::npos) << parsed.error();
}

TEST(Config, UnknownTableIsAnError) {
  auto parsed = Parse("[colector]\nendpoint = \"tcp://x:1\"\n", "t.toml");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().find("colector"), std::string::npos) << parsed.error();
}

TEST(Config, WrongTypeNamesKeyLineAndExpectation) {
  auto parsed = Parse("[limits]\n\nmax_objects = \"many\"\n", "t.toml");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().find("t.toml:3: limits.max_objects: expected an integer"),
            std::string::npos)
      << parsed.error();
}

TEST(Config, SyntaxErrorNamesTheLine) {
  auto parsed = Parse("[store]\ndir = \"unterminated\n", "t.toml");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().find("t.toml:2"), std::string::npos) << parsed.error();
}

TEST(Config, SizesAndDurationsTakeUnitsOrPlainIntegers) {
  auto parsed = Parse(
      "[store]\nsegment_bytes = \"8MiB\"\nsegment_age = 90\n"
      "[retention.graph]\nmax_age = \"36h\"\nmax_bytes = 4096\nkeep_last = 3\n",
      "t");
  ASSERT_TRUE(parsed) << parsed.error();
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
  EXPECT_NE(parsed.error().find("store.segment_bytes"), std::string::npos) << parsed.error();
  EXPECT_NE(parsed.error().find("not a size"), std::string::npos) << parsed.error();
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
  EXPECT_NE(parsed.error().find("curve.secret_key"), std::string::npos) << parsed.error();
}

TEST(Config, AllowedClientsFileIsReadAndChecked) {
  const std::string path = std::string(TEST_TMPDIR) + "/clients.txt";
  std::ofstream(path) << "# ops laptop\nrq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n";
  auto parsed = Parse("[curve]\nallowed_clients_file = \"" + path + "\"\n", "t");
  ASSERT_TRUE(parsed) << parsed.error();
  ASSERT_EQ(parsed->curve_allowed_clients.size(), 1u);
  std::ofstream(path) << "not-a-key\n";
  parsed = Parse("[curve]\nallowed_clients_file = \"" + path + "\"\n", "t");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().find("clients.txt:1"), std::string::npos) << parsed.error();
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
