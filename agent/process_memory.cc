#include "agent/process_memory.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "agent/descriptors.h"

namespace tidemark::agent {

uint64_t ResidentBytes() {
  const auto text = ReadKeptFile("/proc/self/statm", 256);
  unsigned long long pages_total = 0, pages_resident = 0;
  if (!text || std::sscanf(text->c_str(), "%llu %llu", &pages_total, &pages_resident) != 2) {
    return 0;
  }
  return pages_resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

uint64_t PageTableBytes() {
  return StatusKiB(ReadKeptFile("/proc/self/status", 8 << 10), "VmPTE:") * 1024;
}

uint64_t StatusKiB(const std::optional<std::string>& text, const char* key) {
  if (!text) return 0;
  const size_t at = text->find(key);
  if (at == std::string::npos || (at > 0 && (*text)[at - 1] != '\n')) return 0;
  unsigned long long kib = 0;
  std::sscanf(text->c_str() + at + std::strlen(key), "%llu", &kib);
  return kib;
}

uint64_t MinorFaults() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<uint64_t>(usage.ru_minflt);
}

double ThreadCpuMs() {
  timespec t{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) != 0) return 0;
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

}  // namespace tidemark::agent
