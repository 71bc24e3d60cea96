// tidemarkd: receives heap snapshots from tidemark agents, validates and stores them.
#include <malloc.h>

#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "collector/daemon.h"
#include "config/config.h"

namespace {

constexpr const char* kUsage = R"(usage: tidemarkd [--config FILE] [--log-level LEVEL]
       tidemarkd --check-config FILE

Receives heap snapshots from tidemark agents over ZeroMQ, validates them, stores them durably
and acknowledges each once stored; follows every type's growth, raises leak, native-memory and
silent-agent alerts (naming what holds a leak) and sends them to the configured hooks. Without
--config it runs on embedded defaults: agents on tcp://127.0.0.1:7878, HTTP (/healthz,
/metrics, /alerts) on 127.0.0.1:7879, store in $STATE_DIRECTORY or ./tidemark-data.

  --config FILE       read FILE (TOML; docs/configuration.md lists every key)
  --check-config FILE validate FILE, print the problem if any, and exit (0 valid, 78 not)
  --log-level LEVEL   trace, debug, info, warn, error or off; overrides log.level
  --help              this text
  --version           print the version

Signals: SIGTERM/SIGINT stop after acknowledging what was received; SIGHUP reloads --config.
Exit codes: 0 stopped, 1 runtime failure, 64 bad usage, 78 bad configuration.
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace tidemark;
#if defined(__GLIBC__)
  // Validating a graph allocates and frees columns of millions of entries per message. Kept
  // in the heap (not mmap'ed and unmapped each time, not trimmed), they cost no page faults
  // the next time: decoding runs about twice as fast, for memory the daemon reuses anyway.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
  const std::vector<std::string> args(argv + 1, argv + argc);
  collector::DaemonOptions options;
  std::optional<std::string> check;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 < args.size()) return args[++i];
      std::cerr << "tidemarkd: " << a << " needs a value\n" << kUsage;
      return std::nullopt;
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--version") {
      std::cout << "tidemarkd 0.1.0\n";
      return 0;
    } else if (a == "--config") {
      auto v = value();
      if (!v) return collector::kExitUsage;
      options.config_path = *v;
    } else if (a == "--check-config") {
      check = value();
      if (!check) return collector::kExitUsage;
    } else if (a == "--log-level") {
      options.log_level = value();
      if (!options.log_level) return collector::kExitUsage;
      const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error", "off"};
      if (!levels.count(*options.log_level)) {
        std::cerr << "tidemarkd: --log-level: expected trace, debug, info, warn, error or off\n";
        return collector::kExitUsage;
      }
    } else {
      std::cerr << "tidemarkd: unknown argument '" << a << "'\n" << kUsage;
      return collector::kExitUsage;
    }
  }
  if (check) {
    auto loaded = config::Load(*check);
    if (!loaded) {
      std::cerr << "tidemarkd: " << loaded.error().message << "\n";
      return collector::kExitConfig;
    }
    std::cout << *check << ": valid\n";
    return 0;
  }
  if (!options.config_path.empty()) {
    auto loaded = config::Load(options.config_path);
    if (!loaded) {
      std::cerr << "tidemarkd: " << loaded.error().message << "\n";
      return collector::kExitConfig;
    }
    options.config = *loaded;
  }
  // Nothing may end the daemon with an uncaught exception (exit 134 is a restart loop under
  // systemd): what escapes everything else is reported and ends it with a failure status.
  try {
    return collector::RunDaemon(options);
  } catch (const std::exception& e) {
    std::cerr << "tidemarkd: stopped by an unexpected error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "tidemarkd: stopped by an unexpected error\n";
  }
  return collector::kExitFailure;
}
