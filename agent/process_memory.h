// What the kernel says about this process's memory and CPU time, read from /proc/self,
// getrusage and clock_gettime. No Python. Thread-safety: reentrant; the /proc readers allocate
// a little (their text), so never from a snapshot child (ThreadCpuMs may be).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tidemark::agent {

uint64_t ResidentBytes();   // /proc/self/statm; 0 if unreadable.
uint64_t PageTableBytes();  // VmPTE of /proc/self/status; 0 if unreadable.
// The figure after `key` ("VmPTE:", "MemAvailable:") at a line start of a /proc text (kB in
// those files); 0 if absent.
uint64_t StatusKiB(const std::optional<std::string>& text, const char* key);
uint64_t MinorFaults();  // getrusage(RUSAGE_SELF): every thread's minor page faults.

// CPU time (user and system) the calling thread has used, in ms. Allocates nothing: safe in a
// snapshot child. Unlike wall time, it does not count the time a loaded machine kept the
// thread off a CPU, so decisions made from it do not swing with the load.
double ThreadCpuMs();

}  // namespace tidemark::agent
