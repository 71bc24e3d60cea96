// Sampler: where the live heap was allocated, from a sample of its allocations.
//
// Hooks the PYMEM_DOMAIN_OBJ and PYMEM_DOMAIN_MEM allocators (PyMem_SetAllocator), chaining
// to whatever was installed before (pymalloc, tracemalloc, a debug hook). Allocations are
// sampled by bytes: the gap between two samples is drawn from an exponential distribution of
// mean `mean_bytes` (Go's MemProfileRate, tcmalloc), so an allocation of s bytes is sampled
// with probability 1 - exp(-s / mean) and an unsampled allocation costs a subtraction and a
// branch. A sampled allocation records its Python stack, read in place from the frame chain
// (compat.h: tm_capture_stack; no Python object made, no lock taken), into bounded tables
// (sample_table.h); its free removes it. A snapshot then reads which walked object each live
// sample is, and the stacks' file, line and function (Walker, DescribeSites).
//
// Coexistence with other hooks (tracemalloc, memray): started after us, another hook chains
// to ours and both see every allocation. If another hook that started before us is stopped,
// it restores the allocator it saved and so cuts ours off; each snapshot checks that an
// allocation still reaches the sampler (one probe allocation per domain) and, if not, hooks
// in again on top and forgets its samples (their frees were not seen), counted as a restart.
// StopSampling unhooks only when ours is the installed allocator; otherwise the hooks stay
// and pass everything through.
//
// Thread-safety: every function REQUIRES the GIL (the hooked domains require it too).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "snapshot/snapshot.h"

namespace tidemark::agent {

struct SamplerSettings {
  uint64_t mean_bytes = 512 * 1024;
  size_t max_samples = 1 << 16;  // Live samples kept; about 32 GiB of heap at the default mean.
  size_t max_stacks = 1 << 14;
};

// Starts sampling, or changes the mean of a running sampler. False with a ValueError set for
// a mean of 0 or tables of size 0.
bool StartSampling(const SamplerSettings& settings);
// Stops sampling and forgets every sample. Idempotent.
void StopSampling();
bool SamplingOn();

struct SamplerFigures {
  bool on = false;
  uint64_t mean_bytes = 0;
  uint64_t samples_taken = 0;  // Since start.
  uint64_t live_samples = 0;
  uint64_t dropped_samples = 0;
  uint64_t stacks = 0;
  uint64_t dropped_stacks = 0;
  uint64_t restarts = 0;
  uint64_t table_bytes = 0;  // Memory of the sample table's array.
};
SamplerFigures GetSamplerFigures();

// Before a walk: makes sure allocations still reach the sampler (see above).
void CheckSamplerHooked();

// Calls f(address, size, stack) for each live sampled allocation.
void ForEachLiveSample(const std::function<void(uint64_t, uint64_t, uint32_t)>& f);

// The number of allocations one sample of `size` bytes stands for: 1 / (1 - exp(-size/mean)).
double SampleWeight(uint64_t size);

// Fills sites' figures, strings, frames and stacks for the stack ids that sites->rows and
// `object_sites` use (sampler ids as the walk wrote them), renumbering both to sites->stacks.
// Then forgets stacks no live sample uses.
void DescribeSites(snapshot::Sites* sites,
                   std::vector<std::pair<uint64_t, uint32_t>>* object_sites);

}  // namespace tidemark::agent
