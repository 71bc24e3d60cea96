// What the kernel says about this process's memory, read from /proc/self and getrusage. No
// Python. Thread-safety: reentrant; each call allocates a little (stdio), so never from a
// snapshot child.
#pragma once

#include <cstdint>

namespace tidemark::agent {

uint64_t ResidentBytes();   // /proc/self/statm; 0 if unreadable.
uint64_t PageTableBytes();  // VmPTE of /proc/self/status; 0 if unreadable.
uint64_t MinorFaults();     // getrusage(RUSAGE_SELF): every thread's minor page faults.

}  // namespace tidemark::agent
