// tidemarkd's configuration: every setting with its default, read from a TOML file.
//
// Config{} is the embedded defaults; Load() reads a file over them. Every key is listed in
// docs/configuration.md. An unknown key, a value of the wrong type or out of range is an
// error naming the key and its line ("store.segment_bytes (line 7): expected a size like
// \"64MiB\""). Sizes are integers (bytes) or strings with a unit (KiB, MiB, GiB, TiB, KB, MB,
// GB); durations are integers (seconds) or strings like "500ms", "10s", "5m", "1h", "30d".
//
// Thread-safety: plain values; Load/Parse are reentrant.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "snapshot/result.h"

namespace tidemark::config {

// How long each kind of snapshot is kept. A limit of 0 means none.
struct Retention {
  int64_t max_age_ms = 0;
  uint64_t max_bytes = 0;
  uint32_t keep_last = 0;  // 0..64: each agent's newest N of this kind outlive max_age.
  // 0..64: each agent's newest N of this kind taken for a memory threshold (the agent's
  // memory-limit watch) outlive max_age.
  uint32_t keep_memory = 4;
};

enum class SyncPolicy {
  kFsync,  // Acknowledge once fdatasync() returned: survives power loss.
  kNone,   // Acknowledge once written to the page cache: survives a daemon crash only.
};

// What a growth rule tests and when it fires (diff/detector.h). Rates are bytes per hour.
struct GrowthRule {
  uint64_t min_rate = uint64_t{1} << 20;      // Bytes per hour.
  uint64_t min_growth = uint64_t{512} << 10;  // Bytes over the window.
  double min_fit = 0.5;                       // R^2 of the growth line.
  int64_t window_ms = 1800'000;
  int64_t for_ms = 600'000;
  int64_t cooldown_ms = 3600'000;
  int64_t resolve_after_ms = 600'000;
};

// [[rules]]: a leak rule over the per-type series of the services and types it selects.
struct LeakRuleConfig : GrowthRule {
  std::string name = "python-heap-growth";
  std::vector<std::string> services = {"*"};  // Globs: '*' any run, '?' one character.
  std::vector<std::string> types = {"*"};
};

// [native]: RSS growing outside Python objects.
struct NativeConfig : GrowthRule {
  NativeConfig() {
    min_rate = uint64_t{8} << 20;
    min_growth = uint64_t{4} << 20;
  }
  bool enabled = true;
  double max_python_share = 0.25;
};

// [silence]: agents that stop sending.
struct SilenceConfig {
  bool enabled = true;
  double intervals = 5;
  int64_t min_silence_ms = 60'000;
  int64_t forget_after_ms = 86400'000;
};

// [investigate]: graph snapshots requested from an agent whose type looks like a leak.
struct InvestigateConfig {
  bool enabled = true;
  int64_t min_interval_ms = 900'000;  // Per agent, between two graph requests.
  int64_t gap_ms = 120'000;           // Between the two graphs of one investigation.
  int64_t wait_ms = 600'000;          // A requested graph not received by then: given up.
  bool values = true;                 // Ask for short values (names dict keys in paths).
};

enum class HookKind { kWebhook, kAlertmanager, kCommand, kLog };

// [[hooks]]: where alerts (and the reports of schedules naming the hook) are sent.
struct HookConfig {
  std::string name;
  HookKind kind = HookKind::kLog;
  std::string url;                   // webhook, alertmanager: http:// or https://.
  std::vector<std::string> command;  // command: argv; the JSON arrives on stdin.
  int64_t timeout_ms = 10'000;
  int max_attempts = 5;
  int64_t backoff_ms = 1000;  // Before the first retry; doubles up to 5 minutes.
  bool alerts = true;         // Receives firing alerts.
  bool send_resolved = true;  // And resolved ones.
  std::vector<std::pair<std::string, std::string>> headers;  // Extra HTTP headers (auth).
  std::string ca_file;  // https: CA bundle; "" uses the system's.
  bool tls_verify = true;
  // alertmanager: firing alerts are posted again this often, each valid (endsAt) for alert_ttl,
  // so that Alertmanager neither resolves a live alert nor keeps one a dead collector raised.
  int64_t resend_interval_ms = 60'000;
  int64_t alert_ttl_ms = 15 * 60'000;

  bool operator==(const HookConfig&) const = default;
};

// [[schedules]]: a diff report between the newest snapshot and the one nearest to an age.
struct ScheduleConfig {
  std::string name;
  int64_t every_ms = 0;  // Either every ...
  int at_minute = -1;    // ... or at a local time of day ("03:00" -> 180).
  int64_t compare_age_ms = 86400'000;
  std::vector<std::string> hooks;  // Hook names the report is sent to.
  int rows = 20;                   // Types per section.
};

struct Config {
  std::string source = "embedded defaults";  // The file read, for log lines.

  // [collector]
  std::string endpoint = "tcp://127.0.0.1:7878";  // ROUTER bind address (tcp:// or ipc://).
  int receive_hwm = 1000;                         // Messages queued per agent connection.

  // [http]: "" disables the endpoint.
  std::string http_listen = "127.0.0.1:7879";
  int http_max_connections = 64;  // At once; more are answered 503.
  // The query API (docs/api.md): worker threads, queries waiting at most, the loaded graphs
  // kept (bytes), and the largest graph snapshot a query loads (objects).
  int api_workers = 2;
  int api_max_queued = 32;
  uint64_t api_graph_cache_bytes = uint64_t{512} << 20;
  int64_t api_max_graph_objects = 20'000'000;
  // Series rollups (collector/series_rollup.h): memory at most, and how far back they reach.
  uint64_t api_series_memory_bytes = uint64_t{512} << 20;
  int64_t api_series_span_ms = int64_t{7} * 24 * 3600'000;
  // The bearer token every request but /healthz and the console's files needs, read from
  // http_token_file ("" = none; required when http_listen is not a loopback address), and the
  // least time between two "graph snapshot now" requests for one agent.
  std::string http_token_file;
  std::string http_token;
  // Without a token: the Host names a request may carry besides localhost and loopback
  // addresses (a browser page of another site must not read the API: DNS rebinding).
  std::vector<std::string> http_allowed_hosts;
  int64_t http_snapshot_interval_ms = 60'000;

  // [store]: dir "" is $STATE_DIRECTORY (systemd) or ./tidemark-data.
  std::string store_dir;
  SyncPolicy sync = SyncPolicy::kFsync;
  uint64_t segment_bytes = uint64_t{64} << 20;
  int64_t segment_age_ms = 3600'000;
  int64_t retention_interval_ms = 60'000;

  // [retention.summary], [retention.graph]
  Retention summary_retention{.max_age_ms = int64_t{30} * 86400'000,
                              .max_bytes = uint64_t{10} << 30};
  Retention graph_retention{.max_age_ms = int64_t{7} * 86400'000, .max_bytes = uint64_t{20} << 30};

  // [limits]: checked before anything is stored.
  uint64_t max_message_bytes = uint64_t{256} << 20;
  uint64_t max_body_bytes = uint64_t{1} << 30;
  uint64_t max_objects = 50'000'000;
  uint64_t max_types = 1'000'000;
  // How graph bodies are checked: true decodes every object (every stored graph provably
  // decodes); false checks the zstd frame (size, content checksum) only, several times faster.
  // Summaries are always decoded: their type table feeds the series.
  bool decode_graphs = true;
  int validation_threads = 0;  // Threads validating in parallel; 0: one per CPU.

  // [log]
  std::string log_level = "info";         // trace, debug, info, warn, error, off.
  int64_t drop_log_interval_ms = 10'000;  // At most one line per drop reason per interval.

  // [curve]: ZeroMQ CURVE encryption with an allowlist of agent public keys.
  bool curve_enabled = false;
  std::string curve_secret_key;  // Z85, 40 characters; or read from curve_secret_key_file.
  std::vector<std::string> curve_allowed_clients;  // Z85 public keys.

  // [growth]: the rolling state and the detector.
  int64_t growth_span_ms = 3600'000;  // History kept in memory; every rule window fits in it.
  int64_t detect_interval_ms = 30'000;
  int max_types_per_agent = 5000;
  uint64_t growth_max_memory_bytes = uint64_t{1} << 30;  // The whole growth state.
  int metrics_top_k = 20;                                // Types per service in /metrics.
  int metrics_max_services = 200;                        // Services in the per-type gauges.
  int alert_history = 1000;                              // Resolved alerts kept.
  int report_history = 200;                              // Reports kept.

  std::vector<LeakRuleConfig> rules = {LeakRuleConfig{}};
  NativeConfig native;
  SilenceConfig silence;
  InvestigateConfig investigate;
  std::vector<HookConfig> hooks;
  std::vector<ScheduleConfig> schedules;
};

const char* HookKindName(HookKind kind);  // "webhook", "alertmanager", "command", "log".

// The store directory the configuration resolves to (see Config::store_dir).
std::string ResolvedStoreDir(const Config& config);

// Parses TOML text; `origin` names it in errors (a path, or "<string>"). Errors are kInvalid.
snapshot::Result<Config> Parse(std::string_view text, std::string_view origin);

// Reads and parses a file; key files named in it are read too. A file that cannot be read
// is kNotFound or kIo.
snapshot::Result<Config> Load(const std::string& path);

// Every key a file may set, as "table.key" (docs/configuration.md documents each).
std::vector<std::string> KnownKeys();

// The value `key` holds in `config`, in one canonical form: sizes in bytes, durations in ms,
// strings quoted, lists as ["a", "b"]. nullopt for an unknown key, a key holding nothing of
// its own (a key file, an unset schedule `every`/`at`), or an element key ("hooks.url") when
// there is no element. Of [[rules]], [[hooks]], [[schedules]]: the last element.
std::optional<std::string> ShowSetting(const Config& config, const std::string& key);

// The settings a SIGHUP reload cannot apply to a running daemon, by key.
std::vector<std::string> KeysNeedingRestart(const Config& running, const Config& loaded);

// Parsers for the value syntaxes above; exposed for the CLI and tests.
// "64MiB", "10GB", "512" (bytes), at most kMaxSizeBytes; an error naming the text otherwise.
inline constexpr uint64_t kMaxSizeBytes = uint64_t{1} << 60;
snapshot::Result<uint64_t> ParseSize(std::string_view text);
// "250ms", "10s", "30d", "2w", at most kMaxDurationMs (100 years); an error otherwise.
inline constexpr int64_t kMaxDurationMs = int64_t{100} * 365 * 86400'000;
snapshot::Result<int64_t> ParseDurationMs(std::string_view text);

}  // namespace tidemark::config
