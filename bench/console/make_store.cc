// make_store: a synthetic tidemark store, written through store::Store as tidemarkd writes it,
// for the console's and query API's benchmark (bench/console/RESULTS.md): AGENTS agents in
// SERVICES services, each sending a summary of TYPES types every INTERVAL seconds for HOURS
// hours, ending now. Type k of every agent grows by k % 7 objects a step (a few leak; most
// stay flat); the RSS follows the heap.
//
//   make_store DIR [--agents 1000] [--types 500] [--hours 24] [--interval 60] [--services 20]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "snapshot/clock.h"
#include "snapshot/wire.h"
#include "store/store.h"

namespace {

using namespace tidemark;

struct Options {
  std::string dir;
  int agents = 1000, types = 500, services = 20;
  double hours = 24, interval_s = 60;
};

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "make_store: " << message << "\n";
  std::exit(2);
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> double {
      if (i + 1 >= argc) Die(a + " needs a value");
      return std::atof(argv[++i]);
    };
    if (a == "--agents")
      o.agents = static_cast<int>(value());
    else if (a == "--types")
      o.types = static_cast<int>(value());
    else if (a == "--services")
      o.services = static_cast<int>(value());
    else if (a == "--hours")
      o.hours = value();
    else if (a == "--interval")
      o.interval_s = value();
    else if (!a.empty() && a[0] != '-' && o.dir.empty())
      o.dir = a;
    else
      Die("unknown argument " + a +
          " (make_store DIR [--agents N] [--types N] [--hours H] "
          "[--interval S] [--services N])");
  }
  if (o.dir.empty()) Die("name the store directory");
  if (o.agents < 1 || o.types < 1 || o.services < 1 || o.hours <= 0 || o.interval_s <= 0) {
    Die("--agents, --types, --services, --hours and --interval must be positive");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  const int64_t now = snapshot::WallNowNs();
  const int64_t step_ns = static_cast<int64_t>(o.interval_s * 1e9);
  const int64_t steps = static_cast<int64_t>(o.hours * 3600 / o.interval_s);
  const int64_t first = now - steps * step_ns;
  store::StoreOptions options;
  options.sync = false;
  auto opened = store::Store::Open(o.dir, options, first);
  if (!opened) Die(opened.error().message);
  store::Store& st = **opened;
  snapshot::Snapshot s;
  s.header.python_version = "3.12.1";
  for (int k = 0; k < o.types; ++k) {
    s.types.push_back({"bench.models.Type" + std::to_string(k), 0, 0, 64});
  }
  const auto start = std::chrono::steady_clock::now();
  uint64_t written = 0;
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t t = first + step * step_ns;
    for (int a = 0; a < o.agents; ++a) {
      s.header.identity = {"service-" + std::to_string(a % o.services),
                           "host-" + std::to_string(a / o.services),
                           1000 + a,
                           first,
                           {}};
      s.header.seq = static_cast<uint64_t>(step + 1);
      s.header.timestamp_ns = t;
      uint64_t heap = 0;
      for (int k = 0; k < o.types; ++k) {
        snapshot::TypeStat& row = s.types[static_cast<size_t>(k)];
        row.count = 1000 + static_cast<uint64_t>(k) + static_cast<uint64_t>(step * (k % 7));
        row.bytes = row.count * 64;
        heap += row.bytes;
      }
      s.header.objects = 0;
      s.header.bytes = heap;
      s.header.types = static_cast<uint64_t>(o.types);
      s.header.rss_bytes = heap + (uint64_t{40} << 20);
      auto message = snapshot::Encode(s);
      if (!message) Die(message.error().message);
      auto appended = st.Append(*message, s.header, s.types, t);
      if (!appended) Die(appended.error().message);
      ++written;
    }
    if (step % 60 == 0) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\rmake_store: %llu of %lld summaries (%.0f s)",
                   static_cast<unsigned long long>(written),
                   static_cast<long long>(steps * o.agents), seconds);
    }
  }
  st.Flush();
  std::fprintf(stderr,
               "\nmake_store: %llu summaries of %d types from %d agents over %.1f h in %s\n",
               static_cast<unsigned long long>(written), o.types, o.agents, o.hours, o.dir.c_str());
  return 0;
}
