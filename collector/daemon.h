// tidemarkd as a whole: store, ingest thread, HTTP endpoint, retention timer and signals on
// one Boost.Asio io_context.
//
// SIGTERM/SIGINT: stop receiving, make everything received durable and acknowledge it, exit 0.
// SIGHUP: read the configuration file again; apply limits, retention, log settings and the
// CURVE allowlist live, and log each key that needs a restart instead.
//
// Thread-safety: Run() is called once, from the main thread.
#pragma once

#include <optional>
#include <string>

#include "config/config.h"

namespace tidemark::collector {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // Runtime failure: the store, a port.
inline constexpr int kExitUsage = 64;   // EX_USAGE: bad command line.
inline constexpr int kExitConfig = 78;  // EX_CONFIG: systemd does not restart on it.

struct DaemonOptions {
  config::Config config;
  std::string config_path;               // "" runs on embedded defaults; SIGHUP re-reads it.
  std::optional<std::string> log_level;  // --log-level, over the file's log.level.
};

int RunDaemon(const DaemonOptions& options);

}  // namespace tidemark::collector
