#include "config/config.h"

// toml++'s internal asserts abort a debug build on some malformed input that a release build
// reports as a parse error (a lone "[=", a UTF-8 sequence cut by the end of the file): every
// build type reports it.
#define TOML_ASSERT(expr) static_cast<void>(0)
#include <sys/stat.h>
#include <toml++/toml.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "config/http_url.h"

namespace tidemark::config {
namespace {

using snapshot::Fail;
// A setter returns "" when the value was taken, else what was wrong with it.
using Setter = std::function<std::string(const toml::node&, Config&)>;
// The value a key holds in a configuration, in one canonical form (sizes in bytes, durations
// in ms); nullopt where the key holds nothing of its own (a key file, an unset `every`).
using Show = std::function<std::optional<std::string>(const Config&)>;

// A key of the one table of settings: how a file sets it, and how its value is shown.
struct Key {
  Setter set;
  Show show;
};

template <typename Field>
Show ShowNumber(Field field) {
  return [=](const Config& c) -> std::optional<std::string> {
    std::ostringstream out;
    out << field(c);
    return out.str();
  };
}

std::string Quoted(const std::string& v) { return "\"" + v + "\""; }

template <typename Field>
Show ShowString(Field field) {
  return [=](const Config& c) -> std::optional<std::string> { return Quoted(field(c)); };
}

template <typename Field>
Show ShowList(Field field) {
  return [=](const Config& c) -> std::optional<std::string> {
    std::string out = "[";
    for (const std::string& v : field(c)) out += (out.size() > 1 ? ", " : "") + Quoted(v);
    return out + "]";
  };
}

std::string Describe(const toml::node& node) {
  std::ostringstream out;
  out << node.type();
  if (node.is_string()) out << " \"" << node.as_string()->get() << "\"";
  if (node.is_integer()) out << " " << node.as_integer()->get();
  return out.str();
}

// FIELD(x) reaches Config::x, nested members included.
#define FIELD(member) \
  [](auto& c) -> auto& { return c.member; }

template <typename Field>
Key Integer(Field field, int64_t min, int64_t max) {
  return {[=](const toml::node& node, Config& c) -> std::string {
            auto v = node.value<int64_t>();
            if (!node.is_integer() || !v) return "expected an integer, got " + Describe(node);
            if (*v < min || *v > max) {
              return "must be between " + std::to_string(min) + " and " + std::to_string(max);
            }
            auto& out = field(c);
            out = static_cast<std::remove_reference_t<decltype(out)>>(*v);
            return "";
          },
          ShowNumber(field)};
}

// An integer is taken as `integer_scale` units (bytes for sizes, seconds for durations).
template <typename Field, typename Parsed>
Setter WithUnit(Field field, snapshot::Result<Parsed> (*parse)(std::string_view),
                int64_t integer_scale, int64_t max, const char* example) {
  return [=](const toml::node& node, Config& c) -> std::string {
    snapshot::Result<Parsed> v;
    if (node.is_integer()) {
      const int64_t raw = node.as_integer()->get();
      if (raw < 0) return "must not be negative";
      int64_t scaled;
      if (__builtin_mul_overflow(raw, integer_scale, &scaled) || scaled > max) {
        return std::to_string(raw) + " is too large (expected " + example + ")";
      }
      v = static_cast<Parsed>(scaled);
    } else if (node.is_string()) {
      v = parse(node.as_string()->get());
    } else {
      return std::string("expected ") + example + ", got " + Describe(node);
    }
    if (!v) return v.error().message + " (expected " + example + ")";
    auto& out = field(c);
    out = static_cast<std::remove_reference_t<decltype(out)>>(*v);
    return "";
  };
}

template <typename Field>
Key Size(Field field) {
  return {
      WithUnit(field, &ParseSize, 1, static_cast<int64_t>(kMaxSizeBytes), "a size like \"64MiB\""),
      ShowNumber(field)};
}
// A size below `min` would make the setting useless (a message limit of 0 drops everything).
template <typename Field>
Key SizeAtLeast(Field field, uint64_t min, const char* min_text) {
  Key key = Size(field);
  key.set = [=, set = key.set](const toml::node& node, Config& c) -> std::string {
    Config probe = c;
    if (std::string error = set(node, probe); !error.empty()) return error;
    if (static_cast<uint64_t>(field(probe)) < min) {
      return std::string("must be at least ") + min_text + " (smaller refuses every snapshot)";
    }
    field(c) = field(probe);
    return "";
  };
  return key;
}

template <typename Field>
Key Duration(Field field) {
  return {
      WithUnit(field, &ParseDurationMs, 1000, kMaxDurationMs, "a duration like \"10s\" or \"30d\""),
      ShowNumber(field)};
}

template <typename Field>
Key String(Field field, std::function<std::string(const std::string&)> check) {
  return {[=](const toml::node& node, Config& c) -> std::string {
            if (!node.is_string()) return "expected a string, got " + Describe(node);
            const std::string value = node.as_string()->get();
            if (check) {
              if (std::string error = check(value); !error.empty()) return error;
            }
            field(c) = value;
            return "";
          },
          ShowString(field)};
}

template <typename Field>
Key Bool(Field field) {
  return {
      [=](const toml::node& node, Config& c) -> std::string {
        if (!node.is_boolean()) return "expected true or false, got " + Describe(node);
        field(c) = node.as_boolean()->get();
        return "";
      },
      [=](const Config& c) -> std::optional<std::string> { return field(c) ? "true" : "false"; }};
}

template <typename Field>
Key Float(Field field, double min, double max) {
  return {[=](const toml::node& node, Config& c) -> std::string {
            if (!node.is_number()) return "expected a number, got " + Describe(node);
            const double v = node.value<double>().value_or(0);
            if (!(v >= min && v <= max)) {  // NaN too.
              return "must be between " + std::to_string(min) + " and " + std::to_string(max);
            }
            field(c) = v;
            return "";
          },
          ShowNumber(field)};
}

template <typename Field>
Key StringList(Field field, bool allow_empty) {
  return {[=](const toml::node& node, Config& c) -> std::string {
            const toml::array* items = node.as_array();
            if (!items) return "expected an array of strings, got " + Describe(node);
            std::vector<std::string> out;
            for (const toml::node& item : *items) {
              const auto v = item.value<std::string>();
              if (!item.is_string() || !v) return "every entry must be a string";
              out.push_back(*v);
            }
            if (out.empty() && !allow_empty) return "must not be empty";
            field(c) = std::move(out);
            return "";
          },
          ShowList(field)};
}

// A rate: a size per hour, "4MiB" or "4MiB/h".
template <typename Field>
Key Rate(Field field) {
  return {[=](const toml::node& node, Config& c) -> std::string {
            if (node.is_string()) {
              std::string text = node.as_string()->get();
              if (text.size() > 2 && text.ends_with("/h")) text.resize(text.size() - 2);
              auto v = ParseSize(text);
              if (!v) return v.error().message + " (expected a size per hour like \"1MiB/h\")";
              field(c) = *v;
              return "";
            }
            return Size(field).set(node, c);
          },
          ShowNumber(field)};
}

// "HH:MM", local time.
std::string SetTimeOfDay(const toml::node& node, int& minute) {
  const auto v = node.value<std::string>();
  int h = -1, m = -1;
  char rest = 0;
  if (!node.is_string() || std::sscanf(v->c_str(), "%d:%d%c", &h, &m, &rest) != 2 || h < 0 ||
      h > 23 || m < 0 || m > 59) {
    return "expected a local time of day like \"03:00\", got " + Describe(node);
  }
  minute = h * 60 + m;
  return "";
}

std::string CheckEndpoint(const std::string& v) {
  if (v.rfind("tcp://", 0) == 0 || v.rfind("ipc://", 0) == 0) return "";
  return "expected a ZeroMQ endpoint like \"tcp://127.0.0.1:7878\" or \"ipc:///run/tidemark.sock\"";
}

std::string CheckHostPort(const std::string& v) {
  if (v.empty()) return "";
  const auto colon = v.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == v.size()) {
    return "expected HOST:PORT like \"127.0.0.1:7879\", or \"\" to disable";
  }
  const std::string port = v.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stol(port) > 65535) {
    return "port \"" + port + "\" is not a number from 0 to 65535";
  }
  return "";
}

// Whether HOST:PORT names a loopback address (127.0.0.0/8, ::1, [::1]).
bool IsLoopback(const std::string& host_port) {
  std::string host = host_port.substr(0, host_port.rfind(':'));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return IsLoopbackAddress(host);
}

std::string CheckLevel(const std::string& v) {
  static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error", "off"};
  return levels.count(v) ? "" : "expected one of trace, debug, info, warn, error, off";
}

bool IsZ85Key(std::string_view v) {
  static constexpr std::string_view alphabet =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  return v.size() == 40 && v.find_first_not_of(alphabet) == std::string_view::npos;
}

std::string CheckName(const std::string& v) {
  if (v.empty() || v.size() > 100 || v.find_first_of("/ \t\n") != std::string::npos) {
    return "expected a name of 1 to 100 characters without '/' or spaces";
  }
  return "";
}

std::string CheckUrl(const std::string& v) {
  // "" is the default: none (a webhook or alertmanager hook without one is refused whole).
  if (v.empty()) return "";
  auto url = ParseHttpUrl(v);
  return url ? "" : url.error().message;
}

std::string CheckKey(const std::string& v) {
  return v.empty() || IsZ85Key(v) ? "" : "expected a Z85 CURVE key (40 characters)";
}

snapshot::Result<std::string> ReadWholeFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return Fail(snapshot::Code::kInvalid,
                "cannot read " + path + ": " +
                    (S_ISDIR(st.st_mode) ? "it is a directory" : "it is not a regular file") +
                    ", not a file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    return Fail(error == ENOENT ? snapshot::Code::kNotFound : snapshot::Code::kIo,
                "cannot read " + path + ": " + std::strerror(error));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Key files hold one key per line. A comment is a line starting with '#', or '#' after
// whitespace: Z85 keys contain '#' themselves (half of all key pairs do), and no whitespace.
snapshot::Result<std::vector<std::string>> ReadKeyFile(const std::string& path) {
  auto text = ReadWholeFile(path);
  if (!text) return std::unexpected(text.error());
  std::vector<std::string> keys;
  std::istringstream lines(*text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    line.erase(0, line.find_first_not_of(" \t\r"));
    if (!line.empty() && line[0] == '#') continue;
    line = line.substr(0, std::min(line.find(" #"), line.find("\t#")));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (line.empty()) continue;
    if (!IsZ85Key(line)) return Fail(path + ":" + std::to_string(number) + ": not a Z85 key");
    keys.push_back(line);
  }
  return keys;
}

// A key whose value is one of a few names.
template <typename Field, typename Value>
Key OneOf(Field field, std::vector<std::pair<std::string, Value>> names) {
  return {[=](const toml::node& node, Config& c) -> std::string {
            const auto v = node.value<std::string>();
            std::string expected;
            for (const auto& [name, value] : names) {
              if (v == name) {
                field(c) = value;
                return "";
              }
              expected += (expected.empty() ? "" : ", ") + Quoted(name);
            }
            return "expected one of " + expected + ", got " + Describe(node);
          },
          [=](const Config& c) -> std::optional<std::string> {
            for (const auto& [name, value] : names) {
              if (field(c) == value) return Quoted(name);
            }
            return std::nullopt;
          }};
}

const std::vector<std::pair<std::string, HookKind>>& HookKinds() {
  static const std::vector<std::pair<std::string, HookKind>> kinds = {
      {"webhook", HookKind::kWebhook},
      {"alertmanager", HookKind::kAlertmanager},
      {"command", HookKind::kCommand},
      {"log", HookKind::kLog}};
  return kinds;
}

// A key that only adds to another (a key file): it holds nothing of its own.
Key Adding(Setter set) {
  return {std::move(set), [](const Config&) -> std::optional<std::string> { return std::nullopt; }};
}

std::string SetClientKeys(const toml::node& node, Config& c) {
  const toml::array* items = node.as_array();
  if (!items) return "expected an array of Z85 public keys, got " + Describe(node);
  for (const toml::node& item : *items) {
    const auto key = item.value<std::string>();
    if (!key || !IsZ85Key(*key)) return "every entry must be a Z85 key (40 characters)";
    c.curve_allowed_clients.push_back(*key);
  }
  return "";
}

std::string SetSecretKeyFile(const toml::node& node, Config& c) {
  if (!node.is_string()) return "expected a path, got " + Describe(node);
  auto keys = ReadKeyFile(node.as_string()->get());
  if (!keys) return keys.error().message;
  if (keys->size() != 1) return "expected exactly one key in the file";
  c.curve_secret_key = keys->front();
  return "";
}

// A token file: one line (surrounding blanks ignored), at least 16 characters, readable by its
// owner and group only.
std::string SetTokenFile(const toml::node& node, Config& c) {
  if (!node.is_string()) return "expected a path, got " + Describe(node);
  const std::string path = node.as_string()->get();
  if (path.empty()) {
    c.http_token_file.clear();
    c.http_token.clear();
    return "";
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IROTH)) {
    return path + " is readable by every user; chmod o-r " + path;
  }
  auto text = ReadWholeFile(path);
  if (!text) return text.error().message;
  std::string token = *text;
  token.erase(0, token.find_first_not_of(" \t\r\n"));
  token.erase(token.find_last_not_of(" \t\r\n") + 1);
  if (token.size() < 16 || token.find_first_of(" \t\r\n") != std::string::npos) {
    return path +
           ": the token must be one word of at least 16 characters (e.g. the output of "
           "`head -c 32 /dev/urandom | base64`)";
  }
  c.http_token_file = path;
  c.http_token = token;
  return "";
}

std::string SetClientKeysFile(const toml::node& node, Config& c) {
  if (!node.is_string()) return "expected a path, got " + Describe(node);
  auto keys = ReadKeyFile(node.as_string()->get());
  if (!keys) return keys.error().message;
  c.curve_allowed_clients.insert(c.curve_allowed_clients.end(), keys->begin(), keys->end());
  return "";
}

std::string SetHeaders(const toml::node& node, Config& c) {
  const toml::table* table = node.as_table();
  if (!table) return "expected a table like { Authorization = \"Bearer ...\" }";
  for (const auto& [name, value] : *table) {
    const auto text = value.value<std::string>();
    const std::string key(name.str());
    if (!value.is_string() || !text) return "header " + key + ": expected a string";
    if (key.empty() || key.find_first_of(" :\r\n") != std::string::npos ||
        text->find_first_of("\r\n") != std::string::npos) {
      return "header " + key + ": not a valid HTTP header name or value";
    }
    c.hooks.back().headers.emplace_back(key, *text);
  }
  return "";
}

std::optional<std::string> ShowHeaders(const Config& c) {
  std::string out = "{";
  for (const auto& [name, value] : c.hooks.back().headers) {
    out += (out.size() > 1 ? ", " : " ") + name + " = " + Quoted(value);
  }
  return out + (out.size() > 1 ? " }" : "}");
}

// `every` and `at`: nothing when unset (a schedule sets exactly one).
std::optional<std::string> ShowEvery(const Config& c) {
  if (c.schedules.back().every_ms == 0) return std::nullopt;
  return std::to_string(c.schedules.back().every_ms);
}
std::optional<std::string> ShowAt(const Config& c) {
  if (c.schedules.back().at_minute < 0) return std::nullopt;
  return std::to_string(c.schedules.back().at_minute);
}

// The one table of settings: every key a file may set, its checks, and through Show its
// default in Config{} (docs/configuration.md and config/tidemarkd.example.toml are checked
// against it by tests/config).
const std::map<std::string, Key>& Keys() {
  static const std::map<std::string, Key> keys = {
      {"collector.endpoint", String(FIELD(endpoint), CheckEndpoint)},
      {"collector.receive_hwm", Integer(FIELD(receive_hwm), 1, 1'000'000)},
      {"http.listen", String(FIELD(http_listen), CheckHostPort)},
      {"http.max_connections", Integer(FIELD(http_max_connections), 1, 100'000)},
      {"http.api_workers", Integer(FIELD(api_workers), 1, 64)},
      {"http.api_max_queued", Integer(FIELD(api_max_queued), 1, 100'000)},
      {"http.graph_cache", Size(FIELD(api_graph_cache_bytes))},
      {"http.max_graph_objects", Integer(FIELD(api_max_graph_objects), 1, int64_t{1} << 32)},
      {"http.series_memory", Size(FIELD(api_series_memory_bytes))},
      {"http.series_span", Duration(FIELD(api_series_span_ms))},
      {"http.token_file", {SetTokenFile, ShowString(FIELD(http_token_file))}},
      {"http.snapshot_interval", Duration(FIELD(http_snapshot_interval_ms))},
      {"http.allowed_hosts", StringList(FIELD(http_allowed_hosts), true)},
      {"store.dir", String(FIELD(store_dir), nullptr)},
      {"store.sync", OneOf(FIELD(sync),
                           std::vector<std::pair<std::string, SyncPolicy>>{
                               {"fsync", SyncPolicy::kFsync}, {"none", SyncPolicy::kNone}})},
      {"store.segment_bytes", Size(FIELD(segment_bytes))},
      {"store.segment_age", Duration(FIELD(segment_age_ms))},
      {"store.retention_interval", Duration(FIELD(retention_interval_ms))},
      {"retention.summary.max_age", Duration(FIELD(summary_retention.max_age_ms))},
      {"retention.summary.max_bytes", Size(FIELD(summary_retention.max_bytes))},
      {"retention.summary.keep_last", Integer(FIELD(summary_retention.keep_last), 0, 64)},
      {"retention.summary.keep_memory", Integer(FIELD(summary_retention.keep_memory), 0, 64)},
      {"retention.graph.max_age", Duration(FIELD(graph_retention.max_age_ms))},
      {"retention.graph.max_bytes", Size(FIELD(graph_retention.max_bytes))},
      {"retention.graph.keep_last", Integer(FIELD(graph_retention.keep_last), 0, 64)},
      {"retention.graph.keep_memory", Integer(FIELD(graph_retention.keep_memory), 0, 64)},
      {"limits.max_message_bytes", SizeAtLeast(FIELD(max_message_bytes), 64 << 10, "64KiB")},
      {"limits.max_body_bytes", SizeAtLeast(FIELD(max_body_bytes), 64 << 10, "64KiB")},
      {"limits.max_objects", Integer(FIELD(max_objects), 1, int64_t{1} << 40)},
      {"limits.max_types", Integer(FIELD(max_types), 1, int64_t{1} << 32)},
      {"limits.graph_validation",
       OneOf(FIELD(decode_graphs),
             std::vector<std::pair<std::string, bool>>{{"decode", true}, {"frame", false}})},
      {"limits.validation_threads", Integer(FIELD(validation_threads), 0, 256)},
      {"log.level", String(FIELD(log_level), CheckLevel)},
      {"log.drop_log_interval", Duration(FIELD(drop_log_interval_ms))},
      {"curve.enabled", Bool(FIELD(curve_enabled))},
      {"curve.secret_key", String(FIELD(curve_secret_key), CheckKey)},
      {"curve.secret_key_file", Adding(SetSecretKeyFile)},
      {"curve.allowed_clients", {SetClientKeys, ShowList(FIELD(curve_allowed_clients))}},
      {"curve.allowed_clients_file", Adding(SetClientKeysFile)},
      // [growth]
      {"growth.span", Duration(FIELD(growth_span_ms))},
      {"growth.detect_interval", Duration(FIELD(detect_interval_ms))},
      {"growth.max_types_per_agent", Integer(FIELD(max_types_per_agent), 1, 1'000'000)},
      {"growth.max_memory", Size(FIELD(growth_max_memory_bytes))},
      {"growth.metrics_top_k", Integer(FIELD(metrics_top_k), 0, 1000)},
      {"growth.metrics_max_services", Integer(FIELD(metrics_max_services), 0, 100'000)},
      {"growth.alert_history", Integer(FIELD(alert_history), 0, 1'000'000)},
      {"growth.report_history", Integer(FIELD(report_history), 0, 100'000)},
      // [[rules]]: each table fills the newest element (Apply pushes one per table).
      {"rules.name", String(FIELD(rules.back().name), CheckName)},
      {"rules.services", StringList(FIELD(rules.back().services), false)},
      {"rules.types", StringList(FIELD(rules.back().types), false)},
      {"rules.min_rate", Rate(FIELD(rules.back().min_rate))},
      {"rules.min_growth", Size(FIELD(rules.back().min_growth))},
      {"rules.min_fit", Float(FIELD(rules.back().min_fit), 0, 1)},
      {"rules.window", Duration(FIELD(rules.back().window_ms))},
      {"rules.for", Duration(FIELD(rules.back().for_ms))},
      {"rules.cooldown", Duration(FIELD(rules.back().cooldown_ms))},
      {"rules.resolve_after", Duration(FIELD(rules.back().resolve_after_ms))},
      // [native]
      {"native.enabled", Bool(FIELD(native.enabled))},
      {"native.min_rate", Rate(FIELD(native.min_rate))},
      {"native.min_growth", Size(FIELD(native.min_growth))},
      {"native.min_fit", Float(FIELD(native.min_fit), 0, 1)},
      {"native.max_python_share", Float(FIELD(native.max_python_share), 0, 1)},
      {"native.window", Duration(FIELD(native.window_ms))},
      {"native.for", Duration(FIELD(native.for_ms))},
      {"native.cooldown", Duration(FIELD(native.cooldown_ms))},
      {"native.resolve_after", Duration(FIELD(native.resolve_after_ms))},
      // [silence]
      {"silence.enabled", Bool(FIELD(silence.enabled))},
      {"silence.intervals", Float(FIELD(silence.intervals), 1, 1e6)},
      {"silence.min_silence", Duration(FIELD(silence.min_silence_ms))},
      {"silence.forget_after", Duration(FIELD(silence.forget_after_ms))},
      // [investigate]
      {"investigate.enabled", Bool(FIELD(investigate.enabled))},
      {"investigate.min_interval", Duration(FIELD(investigate.min_interval_ms))},
      {"investigate.gap", Duration(FIELD(investigate.gap_ms))},
      {"investigate.wait", Duration(FIELD(investigate.wait_ms))},
      {"investigate.values", Bool(FIELD(investigate.values))},
      // [[hooks]]
      {"hooks.name", String(FIELD(hooks.back().name), CheckName)},
      {"hooks.kind", OneOf(FIELD(hooks.back().kind), HookKinds())},
      {"hooks.url", String(FIELD(hooks.back().url), CheckUrl)},
      {"hooks.command", StringList(FIELD(hooks.back().command), true)},  // Checked whole.
      {"hooks.timeout", Duration(FIELD(hooks.back().timeout_ms))},
      {"hooks.max_attempts", Integer(FIELD(hooks.back().max_attempts), 1, 100)},
      {"hooks.backoff", Duration(FIELD(hooks.back().backoff_ms))},
      {"hooks.alerts", Bool(FIELD(hooks.back().alerts))},
      {"hooks.send_resolved", Bool(FIELD(hooks.back().send_resolved))},
      {"hooks.headers", {SetHeaders, ShowHeaders}},
      {"hooks.ca_file", String(FIELD(hooks.back().ca_file), nullptr)},
      {"hooks.tls_verify", Bool(FIELD(hooks.back().tls_verify))},
      {"hooks.resend_interval", Duration(FIELD(hooks.back().resend_interval_ms))},
      {"hooks.alert_ttl", Duration(FIELD(hooks.back().alert_ttl_ms))},
      // [[schedules]]
      {"schedules.name", String(FIELD(schedules.back().name), CheckName)},
      {"schedules.every", {Duration(FIELD(schedules.back().every_ms)).set, ShowEvery}},
      {"schedules.at",
       {[](const toml::node& node, Config& c) {
          return SetTimeOfDay(node, c.schedules.back().at_minute);
        },
        ShowAt}},
      {"schedules.compare_with", Duration(FIELD(schedules.back().compare_age_ms))},
      {"schedules.hooks", StringList(FIELD(schedules.back().hooks), true)},
      {"schedules.rows", Integer(FIELD(schedules.back().rows), 1, 10'000)},
  };
  return keys;
}

bool IsKnownTable(const std::string& path) {
  const std::string prefix = path + ".";
  for (const auto& [key, setter] : Keys()) {
    if (key.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

std::string Where(std::string_view origin, const toml::node& node) {
  return std::string(origin) + ":" + std::to_string(node.source().begin.line);
}

std::string PushElement(const std::string& path, bool first, Config& c) {
  // A file's [[rules]] replace the embedded default rule.
  if (path == "rules") {
    if (first) c.rules.clear();
    c.rules.emplace_back();
    c.rules.back().name = "rule-" + std::to_string(c.rules.size());
  } else if (path == "hooks") {
    c.hooks.emplace_back();
    c.hooks.back().name = "hook-" + std::to_string(c.hooks.size());
  } else if (path == "schedules") {
    c.schedules.emplace_back();
    c.schedules.back().name = "schedule-" + std::to_string(c.schedules.size());
  } else {
    return "'" + path + "' is a table, not an array of tables";
  }
  return "";
}

std::string CheckElement(const std::string& path, const Config& c) {
  if (path == "hooks") {
    const HookConfig& h = c.hooks.back();
    const bool http = h.kind == HookKind::kWebhook || h.kind == HookKind::kAlertmanager;
    if (http && h.url.empty())
      return "hook '" + h.name + "': kind " + HookKindName(h.kind) + " needs url";
    if (h.resend_interval_ms < 1000 || h.alert_ttl_ms <= h.resend_interval_ms) {
      return "hook '" + h.name + "': resend_interval must be at least 1s and alert_ttl longer";
    }
    if (h.kind == HookKind::kCommand && h.command.empty()) {
      return "hook '" + h.name + "': kind command needs command = [\"program\", \"arg\", ...]";
    }
  }
  if (path == "schedules") {
    const ScheduleConfig& s = c.schedules.back();
    if ((s.every_ms > 0) == (s.at_minute >= 0)) {
      return "schedule '" + s.name + "': set exactly one of every = \"6h\" or at = \"03:00\"";
    }
    if (s.every_ms > 0 && s.every_ms < 1000)
      return "schedule '" + s.name + "': every must be at least 1s";
  }
  return "";
}

std::string Apply(const toml::table& table, const std::string& prefix, std::string_view origin,
                  Config& config) {
  for (const auto& [name, node] : table) {
    const std::string path =
        prefix.empty() ? std::string(name.str()) : prefix + "." + std::string(name.str());
    if (node.is_array_of_tables() && IsKnownTable(path)) {
      // [[rules]], [[hooks]], [[schedules]]: one element per table, from the defaults.
      bool first = true;
      for (const toml::node& element : *node.as_array()) {
        if (std::string error = PushElement(path, first, config); !error.empty()) return error;
        first = false;
        if (std::string error = Apply(*element.as_table(), path, origin, config); !error.empty()) {
          return error;
        }
        if (std::string error = CheckElement(path, config); !error.empty()) {
          return Where(origin, element) + ": " + error;
        }
      }
      continue;
    }
    if (path == "rules" || path == "hooks" || path == "schedules") {
      // A plain [rules] table would edit the default rule; [hooks] one that does not exist.
      return Where(origin, node) + ": '" + path + "' must be an array of tables: write [[" + path +
             "]] for each one";
    }
    if (node.is_table() && IsKnownTable(path)) {
      if (std::string error = Apply(*node.as_table(), path, origin, config); !error.empty()) {
        return error;
      }
      continue;
    }
    const auto setter = Keys().find(path);
    if (setter == Keys().end()) {
      return Where(origin, node) + ": unknown key '" + path +
             "' (docs/configuration.md lists every key)";
    }
    std::string error;
    try {  // A setter names what is wrong; a library's exception is a wrong value too.
      error = setter->second.set(node, config);
    } catch (const std::exception& e) {
      error = std::string("cannot be read: ") + e.what();
    }
    if (!error.empty()) return Where(origin, node) + ": " + path + ": " + error;
  }
  return "";
}

std::string CheckWhole(const Config& c) {
  if (!c.http_listen.empty() && c.http_token.empty() && !IsLoopback(c.http_listen)) {
    return "http.listen is \"" + c.http_listen +
           "\", not a loopback address: set http.token_file (requests then need "
           "\"Authorization: Bearer TOKEN\"), or listen on 127.0.0.1 behind a reverse proxy "
           "that authenticates";
  }
  if (c.curve_enabled && c.curve_secret_key.empty()) {
    return "curve.enabled is true but neither curve.secret_key nor curve.secret_key_file is set";
  }
  if (c.curve_enabled && c.endpoint.rfind("tcp://", 0) != 0) {
    return "curve.enabled needs a tcp:// collector.endpoint";
  }
  if (c.segment_bytes < 4096) return "store.segment_bytes must be at least 4KiB";
  if (c.retention_interval_ms < 100) return "store.retention_interval must be at least 100ms";
  if (c.growth_span_ms < 1000) return "growth.span must be at least 1s";
  if (c.detect_interval_ms < 100) return "growth.detect_interval must be at least 100ms";
  std::set<std::string> names;
  for (const LeakRuleConfig& r : c.rules) {
    if (!names.insert(r.name).second) return "two rules are named '" + r.name + "'";
    if (r.window_ms > c.growth_span_ms) {
      return "rule '" + r.name + "': window is longer than growth.span (the history kept)";
    }
    if (r.window_ms < 1000) return "rule '" + r.name + "': window must be at least 1s";
  }
  if (c.native.window_ms > c.growth_span_ms) return "native.window is longer than growth.span";
  names.clear();
  for (const HookConfig& h : c.hooks) {
    if (!names.insert(h.name).second) return "two hooks are named '" + h.name + "'";
  }
  std::set<std::string> schedules;
  for (const ScheduleConfig& s : c.schedules) {
    if (!schedules.insert(s.name).second) return "two schedules are named '" + s.name + "'";
    for (const std::string& hook : s.hooks) {
      if (!names.count(hook))
        return "schedule '" + s.name + "' names hook '" + hook + "', which is not defined";
    }
  }
  return "";
}

}  // namespace

const char* HookKindName(HookKind kind) {
  for (const auto& [name, value] : HookKinds()) {
    if (value == kind) return name.c_str();
  }
  return "?";
}

std::vector<std::string> KnownKeys() {
  std::vector<std::string> keys;
  for (const auto& [key, setter] : Keys()) keys.push_back(key);
  return keys;
}

std::optional<std::string> ShowSetting(const Config& config, const std::string& key) {
  const auto found = Keys().find(key);
  if (found == Keys().end()) return std::nullopt;
  const std::string table = key.substr(0, key.find('.'));
  if ((table == "rules" && config.rules.empty()) || (table == "hooks" && config.hooks.empty()) ||
      (table == "schedules" && config.schedules.empty())) {
    return std::nullopt;  // No element to show.
  }
  return found->second.show(config);
}

snapshot::Result<uint64_t> ParseSize(std::string_view text) {
  static const std::map<std::string, uint64_t, std::less<>> units = {{"", 1},
                                                                     {"B", 1},
                                                                     {"KiB", 1ull << 10},
                                                                     {"MiB", 1ull << 20},
                                                                     {"GiB", 1ull << 30},
                                                                     {"TiB", 1ull << 40},
                                                                     {"KB", 1000},
                                                                     {"MB", 1000'000},
                                                                     {"GB", 1000'000'000},
                                                                     {"TB", 1000'000'000'000}};
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  std::string_view unit = text.substr(digits);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  const auto found = units.find(unit);
  if (digits == 0 || digits > 15 || found == units.end()) {
    return Fail("\"" + std::string(text) + "\" is not a size");
  }
  uint64_t bytes;
  if (__builtin_mul_overflow(std::stoull(std::string(text.substr(0, digits))), found->second,
                             &bytes) ||
      bytes > kMaxSizeBytes) {
    return Fail("\"" + std::string(text) + "\" is too large (at most 1 EiB)");
  }
  return bytes;
}

snapshot::Result<int64_t> ParseDurationMs(std::string_view text) {
  static const std::map<std::string, int64_t, std::less<>> units = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3600'000}, {"d", 86400'000}, {"w", 604800'000}};
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const auto found = units.find(text.substr(digits));
  if (digits == 0 || digits > 12 || found == units.end()) {
    return Fail("\"" + std::string(text) + "\" is not a duration");
  }
  int64_t ms;
  if (__builtin_mul_overflow(std::stoll(std::string(text.substr(0, digits))), found->second, &ms) ||
      ms > kMaxDurationMs) {
    return Fail("\"" + std::string(text) + "\" is too long (at most 100 years)");
  }
  return ms;
}

std::string ResolvedStoreDir(const Config& config) {
  if (!config.store_dir.empty()) return config.store_dir;
  if (const char* state = std::getenv("STATE_DIRECTORY"); state && *state) {
    std::string first = state;  // systemd passes a :-separated list.
    return first.substr(0, first.find(':'));
  }
  return "./tidemark-data";
}

snapshot::Result<Config> Parse(std::string_view text, std::string_view origin) {
  Config config;
  config.source = std::string(origin);
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return Fail(std::string(origin) + ":" + std::to_string(e.source().begin.line) + ": " +
                std::string(e.description()));
  }
  if (std::string error = Apply(table, "", origin, config); !error.empty()) return Fail(error);
  if (std::string error = CheckWhole(config); !error.empty()) {
    return Fail(std::string(origin) + ": " + error);
  }
  return config;
}

snapshot::Result<Config> Load(const std::string& path) {
  auto text = ReadWholeFile(path);
  if (!text) return std::unexpected(text.error());
  return Parse(*text, path);
}

std::vector<std::string> KeysNeedingRestart(const Config& running, const Config& loaded) {
  std::vector<std::string> keys;
  if (running.endpoint != loaded.endpoint) keys.push_back("collector.endpoint");
  if (running.receive_hwm != loaded.receive_hwm) keys.push_back("collector.receive_hwm");
  if (running.http_listen != loaded.http_listen) keys.push_back("http.listen");
  if (running.http_max_connections != loaded.http_max_connections) {
    keys.push_back("http.max_connections");
  }
  if (running.api_workers != loaded.api_workers) keys.push_back("http.api_workers");
  if (running.api_max_queued != loaded.api_max_queued) keys.push_back("http.api_max_queued");
  if (running.api_graph_cache_bytes != loaded.api_graph_cache_bytes) {
    keys.push_back("http.graph_cache");
  }
  if (running.api_max_graph_objects != loaded.api_max_graph_objects) {
    keys.push_back("http.max_graph_objects");
  }
  if (running.api_series_memory_bytes != loaded.api_series_memory_bytes) {
    keys.push_back("http.series_memory");
  }
  if (running.api_series_span_ms != loaded.api_series_span_ms) keys.push_back("http.series_span");
  if (running.http_token != loaded.http_token) keys.push_back("http.token_file");
  if (running.http_allowed_hosts != loaded.http_allowed_hosts) {
    keys.push_back("http.allowed_hosts");
  }
  if (running.http_snapshot_interval_ms != loaded.http_snapshot_interval_ms) {
    keys.push_back("http.snapshot_interval");
  }
  if (ResolvedStoreDir(running) != ResolvedStoreDir(loaded)) keys.push_back("store.dir");
  if (running.sync != loaded.sync) keys.push_back("store.sync");
  if (running.segment_bytes != loaded.segment_bytes) keys.push_back("store.segment_bytes");
  if (running.segment_age_ms != loaded.segment_age_ms) keys.push_back("store.segment_age");
  if (running.validation_threads != loaded.validation_threads) {
    keys.push_back("limits.validation_threads");
  }
  if (running.max_message_bytes != loaded.max_message_bytes) {
    keys.push_back("limits.max_message_bytes");  // Set on the socket at bind.
  }
  if (running.curve_enabled != loaded.curve_enabled) keys.push_back("curve.enabled");
  if (running.growth_span_ms != loaded.growth_span_ms) keys.push_back("growth.span");
  if (running.hooks != loaded.hooks) keys.push_back("hooks");
  if (running.growth_max_memory_bytes != loaded.growth_max_memory_bytes) {
    keys.push_back("growth.max_memory");
  }
  if (running.max_types_per_agent != loaded.max_types_per_agent) {
    keys.push_back("growth.max_types_per_agent");
  }
  if (running.curve_secret_key != loaded.curve_secret_key) keys.push_back("curve.secret_key");
  return keys;
}

}  // namespace tidemark::config
