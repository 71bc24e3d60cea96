// What one reading of the memory limit costs the agent's reporter thread (agent/memory_limit.h):
// the cgroup found from /proc/self/cgroup and its ancestors, plus the RSS against a limit, read
// --readings times. Run it inside a memory cgroup with a limit to see the cost of a limited one.
//
//   build/bench/bench_memory_limit [--readings N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agent/memory_limit.h"

int main(int argc, char** argv) {
  using namespace tidemark::agent;
  int readings = 20000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--readings") == 0) readings = std::atoi(argv[i + 1]);
  }
  MemoryLimitOptions options;
  options.rss_limit = uint64_t{1} << 40;  // Also read the RSS, as TIDEMARK_MEMORY_LIMIT does.
  const MemorySource source = MemorySource::Discover(options);
  const auto start = std::chrono::steady_clock::now();
  uint64_t limited = 0;
  for (int i = 0; i < readings; ++i) limited += source.Read()->source[0] == 'c';
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      readings;
  std::printf(
      "{\"watch\": \"%s\", \"readings\": %d, \"us_per_reading\": %.1f, "
      "\"cgroup_limited\": %s}\n",
      source.Describe().c_str(), readings, us, limited ? "true" : "false");
}
