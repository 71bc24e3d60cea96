#include "collector/daemon.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <csignal>

#include "collector/api.h"
#include "collector/console.h"
#include "collector/http_auth.h"
#include "collector/http_host.h"
#include "collector/http_server.h"
#include "collector/ingest.h"
#include "collector/metrics.h"
#include "collector/notifier.h"
#include "collector/pipeline.h"
#include "snapshot/clock.h"
#include "store/store.h"

namespace tidemark::collector {
namespace {

constexpr int64_t kMsToNs = 1'000'000;

IngestSettings SettingsOf(const config::Config& c) {
  IngestSettings s;
  s.limits = {c.max_message_bytes, c.max_body_bytes, c.max_objects, c.max_types, c.decode_graphs};
  s.drop_log_interval_ns = c.drop_log_interval_ms * kMsToNs;
  s.allowed_clients = c.curve_allowed_clients;
  return s;
}

store::RetentionPolicy PolicyOf(const config::Retention& r) {
  return {r.max_age_ms * kMsToNs, r.max_bytes, r.keep_last, r.keep_memory};
}

void SetupLogging(const std::string& level) {
  // stdout, line-buffered by spdlog's flush_on: journald takes it under systemd.
  auto logger = spdlog::stdout_logger_mt("tidemarkd");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

std::string HttpMetrics(const HttpCounters& c, uint64_t unauthorized, uint64_t wrong_host) {
  return "# HELP tidemark_http_connections_refused_total HTTP connections over "
         "http.max_connections, answered 503.\n"
         "# TYPE tidemark_http_connections_refused_total counter\n"
         "tidemark_http_connections_refused_total " +
         std::to_string(c.refused.load()) +
         "\n# HELP tidemark_http_accept_errors_total Failed accepts (no descriptor left), "
         "each followed by a pause.\n"
         "# TYPE tidemark_http_accept_errors_total counter\n"
         "tidemark_http_accept_errors_total " +
         std::to_string(c.accept_errors.load()) +
         "\n# HELP tidemark_http_unauthorized_total Requests refused 401: no or a wrong token.\n"
         "# TYPE tidemark_http_unauthorized_total counter\n"
         "tidemark_http_unauthorized_total " +
         std::to_string(unauthorized) +
         "\n# HELP tidemark_http_wrong_host_total Requests refused 421: without a token, a Host "
         "that is not localhost, a loopback address or one of http.allowed_hosts.\n"
         "# TYPE tidemark_http_wrong_host_total counter\n"
         "tidemark_http_wrong_host_total " +
         std::to_string(wrong_host) + "\n";
}

class Daemon {
 public:
  explicit Daemon(const DaemonOptions& options)
      : options_(options),
        config_(options.config),
        signals_(io_, SIGINT, SIGTERM, SIGHUP),
        retention_timer_(io_),
        http_(
            io_, [this](const HttpRequest& r, HttpServer::Reply reply) { Serve(r, reply); },
            static_cast<size_t>(config_.http_max_connections)),
        api_(config::ResolvedStoreDir(config_),
             ApiOptions{.workers = static_cast<size_t>(config_.api_workers),
                        .max_queued = static_cast<size_t>(config_.api_max_queued),
                        .graph_cache_bytes = config_.api_graph_cache_bytes,
                        .max_graph_objects = static_cast<uint64_t>(config_.api_max_graph_objects),
                        .writes_enabled = !config_.http_token.empty(),
                        .snapshot_interval_ns = config_.http_snapshot_interval_ms * kMsToNs,
                        .series_memory_bytes = config_.api_series_memory_bytes,
                        .series_span_ns = config_.api_series_span_ms * kMsToNs}),
        auth_(config_.http_token),
        hosts_(config_.http_listen, config_.http_allowed_hosts) {}

  int Run() {
    const std::string dir = config::ResolvedStoreDir(config_);
    store::StoreOptions store_options;
    store_options.sync = config_.sync == config::SyncPolicy::kFsync;
    store_options.segment_bytes = config_.segment_bytes;
    store_options.segment_age_ns = config_.segment_age_ms * kMsToNs;
    store_options.log = [](const std::string& line) { spdlog::warn("store: {}", line); };
    store_options.on_durable = [this](uint64_t from, uint64_t to, bool ok) {
      if (Ingest* ingest = ingest_ptr_.load()) ingest->OnDurable(from, to, ok);
    };
    store_options.on_series = [this](const store::SeriesRecord& r, std::string_view service) {
      api_.rollup().Apply(r, service);
    };
    auto store = store::Store::Open(dir, store_options, snapshot::WallNowNs());
    if (!store) {
      spdlog::error("cannot open the store: {}", store.error().message);
      return kExitFailure;
    }
    store_ = std::move(*store);
    const store::StoreStats stats = store_->stats();
    spdlog::info("store {}: {} summary and {} graph snapshots from {} agents", dir,
                 stats.summary.snapshots, stats.graph.snapshots, stats.agents);
    api_.Start(snapshot::WallNowNs());

    notifier_ = std::make_unique<Notifier>(config_.hooks);
    pipeline_ = std::make_unique<Pipeline>(config_, dir, *notifier_);
    if (auto started = pipeline_->Start(snapshot::WallNowNs()); !started) {
      spdlog::error("cannot start the growth pipeline: {}", started.error().message);
      return Shutdown(kExitFailure);
    }
    ingest_ = std::make_unique<Ingest>(*store_, metrics_, pipeline_.get());
    pipeline_->SetGraphRequester([this](const std::string& agent, bool values) {
      Ingest* ingest = ingest_ptr_.load();
      return ingest && ingest->RequestGraph(agent, values);
    });
    ingest_ptr_ = ingest_.get();
    api_.SetGraphRequester([this](const std::string& agent) {
      Ingest* ingest = ingest_ptr_.load();
      return ingest && ingest->RequestGraph(agent, /*values=*/false);
    });
    IngestOptions ingest_options;
    ingest_options.endpoint = config_.endpoint;
    ingest_options.receive_hwm = config_.receive_hwm;
    ingest_options.validation_threads = config_.validation_threads;
    ingest_options.curve = config_.curve_enabled;
    ingest_options.curve_secret_key = config_.curve_secret_key;
    ingest_options.settings = SettingsOf(config_);
    auto bound = ingest_->Start(ingest_options);
    if (!bound) {
      spdlog::error("{}", bound.error().message);
      return Shutdown(kExitFailure);
    }
    spdlog::info("listening for agents on {}{}", *bound,
                 config_.curve_enabled
                     ? " (CURVE, " + std::to_string(config_.curve_allowed_clients.size()) +
                           " allowed client keys)"
                     : "");
    if (!config_.http_listen.empty()) {
      auto http = http_.Listen(config_.http_listen);
      if (!http) {
        spdlog::error("{}", http.error().message);
        return Shutdown(kExitFailure);
      }
      spdlog::info("serving http on {} (console at /, /healthz, /metrics, /alerts, /api/v1/){}",
                   *http, auth_.Enabled() ? "; requests need the token of http.token_file" : "");
    }
    WaitForSignal();
    ScheduleRetention();
    io_.run();
    return Shutdown(exit_code_);
  }

 private:
  int Shutdown(int code) {
    http_.Stop();
    if (ingest_) ingest_->Stop();  // Flushes the store and sends the last acks.
    ingest_ptr_ = nullptr;
    if (pipeline_) pipeline_->Stop();
    pipeline_.reset();
    notifier_.reset();  // Waits for attempts in progress, at most a hook's timeout.
    store_.reset();
    spdlog::info("stopped");
    return code;
  }

  void WaitForSignal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      if (signal == SIGHUP) {
        Reload();
        WaitForSignal();
        return;
      }
      spdlog::info("{}: stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
      io_.stop();
    });
  }

  void Reload() {
    if (options_.config_path.empty()) {
      spdlog::info("SIGHUP: running on embedded defaults, nothing to reload");
      return;
    }
    auto loaded = config::Load(options_.config_path);
    if (!loaded) {
      spdlog::error("SIGHUP: keeping the running configuration: {}", loaded.error().message);
      return;
    }
    for (const std::string& key : config::KeysNeedingRestart(config_, *loaded)) {
      spdlog::warn("SIGHUP: {} changed; it takes effect after a restart", key);
    }
    // Only what can change live is taken; the rest stays as running.
    config_.summary_retention = loaded->summary_retention;
    config_.graph_retention = loaded->graph_retention;
    config_.retention_interval_ms = loaded->retention_interval_ms;
    config_.max_body_bytes = loaded->max_body_bytes;
    config_.max_objects = loaded->max_objects;
    config_.max_types = loaded->max_types;
    config_.decode_graphs = loaded->decode_graphs;
    config_.drop_log_interval_ms = loaded->drop_log_interval_ms;
    config_.curve_allowed_clients = loaded->curve_allowed_clients;
    config_.log_level = options_.log_level.value_or(loaded->log_level);
    // The detector, investigations, schedules and /metrics sizes; not hooks or growth.span.
    config_.rules = loaded->rules;
    config_.native = loaded->native;
    config_.silence = loaded->silence;
    config_.investigate = loaded->investigate;
    config_.schedules = loaded->schedules;
    config_.detect_interval_ms = loaded->detect_interval_ms;
    config_.metrics_top_k = loaded->metrics_top_k;
    config_.metrics_max_services = loaded->metrics_max_services;
    config_.alert_history = loaded->alert_history;
    config_.report_history = loaded->report_history;
    pipeline_->Reconfigure(config_);
    spdlog::set_level(spdlog::level::from_str(config_.log_level));
    ingest_->UpdateSettings(SettingsOf(config_));
    spdlog::info("SIGHUP: reloaded {} (log level {}, {} allowed client keys)", options_.config_path,
                 config_.log_level, config_.curve_allowed_clients.size());
  }

  void ScheduleRetention() {
    retention_timer_.expires_after(std::chrono::milliseconds(config_.retention_interval_ms));
    retention_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      const store::RetentionResult r =
          store_->ApplyRetention(PolicyOf(config_.summary_retention),
                                 PolicyOf(config_.graph_retention), snapshot::WallNowNs());
      metrics_.RetentionRemoved(r);
      if (r.snapshots_removed > 0 || r.files_in_use > 0) {
        spdlog::info("retention: removed {} snapshots ({} bytes, {} files); {} files in use kept",
                     r.snapshots_removed, r.bytes_removed, r.files_removed, r.files_in_use);
      }
      ScheduleRetention();
    });
  }

  void Serve(const HttpRequest& request, const HttpServer::Reply& reply) {
    const std::string path = request.target.substr(0, request.target.find('?'));
    // The console's files hold no data: the page must load to ask for the token.
    if (auto file = ConsoleFile(request.method, path)) return reply(std::move(*file));
    if (!auth_.Enabled() && path != "/healthz" && !hosts_.Allows(request.host)) {
      wrong_host_.fetch_add(1, std::memory_order_relaxed);
      return reply({421, "application/json",
                    "{\"error\": \"this collector answers requests for localhost, loopback "
                    "addresses and the names of http.allowed_hosts, not for the Host this "
                    "request named\"}\n"});
    }
    if (auth_.Enabled() && path != "/healthz" && !auth_.Allows(request.authorization)) {
      unauthorized_.fetch_add(1, std::memory_order_relaxed);
      return reply({401,
                    "application/json",
                    "{\"error\": \"this collector needs \\\"Authorization: Bearer TOKEN\\\" "
                    "(the token of http.token_file)\"}\n",
                    {{"WWW-Authenticate", "Bearer realm=\"tidemark\""}}});
    }
    if (path.rfind(Api::kPrefix, 0) == 0) return api_.Handle(request, reply);
    reply(ServeNow(request.method, path));
  }

  HttpResponse ServeNow(const std::string& method, const std::string& path) {
    if (method != "GET" && method != "HEAD") return {405, "text/plain", "GET only\n"};
    if (path == "/healthz") return {200, "text/plain; charset=utf-8", "ok\n"};
    if (path == "/metrics") {
      return {200, "text/plain; version=0.0.4; charset=utf-8",
              metrics_.Render(store_->stats(), snapshot::WallNowNs()) + pipeline_->RenderMetrics() +
                  HttpMetrics(http_.counters(), unauthorized_.load(), wrong_host_.load()) +
                  api_.RenderMetrics()};
    }
    if (path == "/alerts") return {200, "application/json", pipeline_->ActiveAlertsJson() + "\n"};
    return {404, "text/plain; charset=utf-8",
            "not found; try /healthz, /metrics, /alerts or /api/v1/services\n"};
  }

  const DaemonOptions& options_;
  config::Config config_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer retention_timer_;
  HttpServer http_;
  Api api_;  // After io_: its workers' replies are posted to io_ until it is destroyed.
  const BearerAuth auth_;
  const HostCheck hosts_;
  std::atomic<uint64_t> unauthorized_{0};
  std::atomic<uint64_t> wrong_host_{0};
  Metrics metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Notifier> notifier_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<Ingest> ingest_;
  std::atomic<Ingest*> ingest_ptr_{nullptr};
  int exit_code_ = kExitOk;
};

}  // namespace

int RunDaemon(const DaemonOptions& options) {
  std::signal(SIGPIPE, SIG_IGN);
  SetupLogging(options.log_level.value_or(options.config.log_level));
  spdlog::info("tidemarkd starting with {}", options.config.source);
  return Daemon(options).Run();
}

}  // namespace tidemark::collector
