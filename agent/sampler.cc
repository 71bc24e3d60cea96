#include "agent/sampler.h"

#include "agent/compat.h"
// compat.h brings Python.h first, as CPython requires.
#include <cmath>
#include <span>
#include <unordered_map>

#include "agent/sample_table.h"
#include "agent/walker.h"

namespace tidemark::agent {
namespace {

constexpr int kMaxFrames = 64;
constexpr int64_t kNever = INT64_MAX;

struct Domain {
  PyMemAllocatorDomain domain;
  PyMemAllocatorEx previous;
};

// Plain data with a trivial destructor: the hooks may run during and after interpreter
// finalization, after static destructors would have run. The tables are made once and never
// freed for the same reason.
struct State {
  Domain obj{PYMEM_DOMAIN_OBJ, {}};
  Domain mem{PYMEM_DOMAIN_MEM, {}};
  bool on = false;
  bool probing = false;
  void* probe_seen = nullptr;
  uint64_t mean = 0;
  int64_t countdown = kNever;  // Bytes until the next sample.
  uint64_t rng = 0x853c49e6748fea9bull;
  uint64_t taken = 0;
  uint64_t restarts = 0;
  SampleTable* samples = nullptr;
  StackTable* stacks = nullptr;
} g;

int64_t NextGap() {
  // xorshift64*: a draw costs a few instructions; its quality is ample for sampling gaps.
  g.rng ^= g.rng >> 12;
  g.rng ^= g.rng << 25;
  g.rng ^= g.rng >> 27;
  const uint64_t bits = (g.rng * 0x2545F4914F6CDD1Dull) >> 11;
  const double u = (static_cast<double>(bits) + 1.0) / 9007199254740993.0;  // (0, 1]
  const double gap = -std::log(u) * static_cast<double>(g.mean);
  return gap < 1 ? 1 : gap > 4e18 ? kNever : static_cast<int64_t>(gap);
}

// The tables are the main interpreter's, guarded by its GIL; the hooks also serve
// sub-interpreters, which on 3.12+ may have a GIL of their own and run at the same time. Their
// allocations are never sampled and their frees (never of a sampled block: objects do not move
// between interpreters) never reach the tables; only the filter's counts are read.
bool OwnedByUs() { return tm_thread_in_main_interpreter() != 0; }

__attribute__((noinline)) void ForgetSampled(uint64_t address) {
  if (!OwnedByUs()) return;
  SampleTable::Sample removed;
  if (g.samples->Erase(address, &removed) && removed.stack != StackTable::kNoStack) {
    g.stacks->Release(removed.stack);
  }
}

inline void Forget(uint64_t address) {
  if (g.samples->MayContain(address)) ForgetSampled(address);
}

// The slow path: this allocation is sampled. Runs inside the allocator: allocates nothing
// through Python and calls nothing that could.
__attribute__((noinline)) void Sample(void* p, size_t size) {
  if (!OwnedByUs()) return;  // The next allocation of the main interpreter is the one sampled.
  if (g.probing) {
    g.probe_seen = p;
    return;
  }
  if (!g.on) {
    g.countdown = kNever;
    return;
  }
  g.countdown = NextGap();
  ++g.taken;
  tm_frame captured[kMaxFrames];
  const int n = tm_capture_stack(captured, kMaxFrames);
  StackFrame frames[kMaxFrames];
  for (int i = 0; i < n; ++i) frames[i] = {captured[i].code, captured[i].lasti};
  bool added = false;
  const uint32_t id = g.stacks->Intern(std::span<const StackFrame>(frames, n), &added);
  if (added) {
    for (int i = 0; i < n; ++i) Py_INCREF(captured[i].code);
  }
  if (!g.samples->Insert(reinterpret_cast<uintptr_t>(p), size, id) && id != StackTable::kNoStack) {
    g.stacks->Release(id);
  }
}

// The hooks. An allocation that is not sampled only moves the countdown and tail-calls the
// previous allocator; a free that was never sampled reads one count of the filter and
// tail-calls it.
// The sampled path is out of line.
inline bool Due(size_t size) {
  g.countdown -= static_cast<int64_t>(size);
  return __builtin_expect(g.countdown < 0, 0);
}

__attribute__((noinline)) void* SampledMalloc(const Domain* d, size_t size) {
  void* p = d->previous.malloc(d->previous.ctx, size);
  if (p != nullptr) Sample(p, size);  // Else the next allocation is the one sampled.
  return p;
}

void* Malloc(void* ctx, size_t size) {
  const Domain* d = static_cast<Domain*>(ctx);
  if (Due(size)) return SampledMalloc(d, size);
  return d->previous.malloc(d->previous.ctx, size);
}

__attribute__((noinline)) void* SampledCalloc(const Domain* d, size_t nelem, size_t elsize) {
  void* p = d->previous.calloc(d->previous.ctx, nelem, elsize);
  if (p != nullptr) Sample(p, nelem * elsize);
  return p;
}

void* Calloc(void* ctx, size_t nelem, size_t elsize) {
  const Domain* d = static_cast<Domain*>(ctx);
  size_t size;
  if (!__builtin_mul_overflow(nelem, elsize, &size) && Due(size)) {
    return SampledCalloc(d, nelem, elsize);
  }
  return d->previous.calloc(d->previous.ctx, nelem, elsize);
}

__attribute__((noinline)) void* SampledRealloc(const Domain* d, void* old, size_t size) {
  void* p = d->previous.realloc(d->previous.ctx, old, size);
  if (p != nullptr) Sample(p, size);
  return p;
}

void* Realloc(void* ctx, void* old, size_t size) {
  const Domain* d = static_cast<Domain*>(ctx);
  // A new block as far as sampling goes: the old one is forgotten (even if the realloc fails,
  // which leaves it in place unsampled), and the new size is a fresh draw.
  if (old != nullptr) Forget(reinterpret_cast<uintptr_t>(old));
  if (Due(size)) return SampledRealloc(d, old, size);
  return d->previous.realloc(d->previous.ctx, old, size);
}

__attribute__((noinline)) void FreeSampled(const Domain* d, void* p) {
  if (p != nullptr) ForgetSampled(reinterpret_cast<uintptr_t>(p));
  d->previous.free(d->previous.ctx, p);
}

void Free(void* ctx, void* p) {
  const Domain* d = static_cast<Domain*>(ctx);
  if (g.samples->MayContain(reinterpret_cast<uintptr_t>(p))) return FreeSampled(d, p);
  d->previous.free(d->previous.ctx, p);
}

bool Installed(Domain& d) {
  PyMemAllocatorEx current;
  PyMem_GetAllocator(d.domain, &current);
  return current.malloc == &Malloc && current.ctx == &d;
}

// Whether an allocation in this domain reaches our hook (under another hook that chains to
// it, or installed ourselves).
bool Reached(Domain& d) {
  if (Installed(d)) return true;
  const int64_t saved = g.countdown;
  g.probing = true;
  g.probe_seen = nullptr;
  g.countdown = -1;
  void* p = d.domain == PYMEM_DOMAIN_OBJ ? PyObject_Malloc(1) : PyMem_Malloc(1);
  g.probing = false;
  g.countdown = saved;
  const bool reached = p != nullptr && g.probe_seen == p;
  if (d.domain == PYMEM_DOMAIN_OBJ) {
    PyObject_Free(p);
  } else {
    PyMem_Free(p);
  }
  return reached;
}

void ForgetAllSamples() {
  g.samples->Clear([](const SampleTable::Sample& s) {
    if (s.stack != StackTable::kNoStack) g.stacks->Release(s.stack);
  });
}

void SweepStacks() {
  std::vector<PyObject*> codes;
  g.stacks->Sweep([&](const StackFrame& f) {
    codes.push_back(static_cast<PyObject*>(const_cast<void*>(f.code)));
  });
  // After the sweep: releasing a code object may free memory, which comes back to Free.
  for (PyObject* code : codes) Py_DECREF(code);
}

// Hooks `d` on top of whatever is installed, unless allocations already reach us. Returns
// whether it had to (the samples taken so far then missed frees: they are forgotten).
bool Hook(Domain& d) {
  if (Reached(d)) return false;
  PyMem_GetAllocator(d.domain, &d.previous);
  PyMemAllocatorEx ours{&d, &Malloc, &Calloc, &Realloc, &Free};
  PyMem_SetAllocator(d.domain, &ours);
  return true;
}

}  // namespace

bool StartSampling(const SamplerSettings& settings) {
  if (settings.mean_bytes == 0 || settings.max_samples == 0 || settings.max_stacks == 0) {
    PyErr_SetString(PyExc_ValueError,
                    "sampling needs a mean of at least 1 byte and tables of at least 1 entry");
    return false;
  }
  if (g.samples == nullptr) {
    g.samples = new SampleTable(settings.max_samples);
    g.stacks = new StackTable(settings.max_stacks);
  }
  g.mean = settings.mean_bytes;
  g.on = true;
  g.countdown = NextGap();
  Hook(g.obj);
  Hook(g.mem);
  return true;
}

void StopSampling() {
  if (!g.on) return;
  g.on = false;
  g.countdown = kNever;
  for (Domain* d : {&g.obj, &g.mem}) {
    if (Installed(*d)) PyMem_SetAllocator(d->domain, &d->previous);
  }
  ForgetAllSamples();
  SweepStacks();
}

bool SamplingOn() { return g.on; }

SamplerFigures GetSamplerFigures() {
  SamplerFigures f;
  f.on = g.on;
  f.mean_bytes = g.mean;
  f.samples_taken = g.taken;
  f.restarts = g.restarts;
  if (g.samples != nullptr) {
    f.live_samples = g.samples->size();
    f.dropped_samples = g.samples->full_count();
    f.stacks = g.stacks->size();
    f.dropped_stacks = g.stacks->full_count();
    f.table_bytes = g.samples->memory_bytes();
  }
  return f;
}

void CheckSamplerHooked() {
  if (!g.on) return;
  const bool obj = Hook(g.obj);
  const bool mem = Hook(g.mem);
  if (obj || mem) {
    ++g.restarts;
    ForgetAllSamples();
  }
}

void ForEachLiveSample(const std::function<void(uint64_t, uint64_t, uint32_t)>& f) {
  if (g.samples == nullptr) return;
  g.samples->ForEach([&](const SampleTable::Sample& s) { f(s.address, s.size, s.stack); });
}

double SampleWeight(uint64_t size) {
  const double p = -std::expm1(-static_cast<double>(size) / static_cast<double>(g.mean));
  return p > 0 ? 1.0 / p : 1.0;
}

namespace {

// Turns sampler stack ids into the snapshot's stacks, frames and strings.
class SiteWriter {
 public:
  explicit SiteWriter(snapshot::Sites* sites) : sites_(sites) {}

  uint32_t Stack(uint32_t id) {
    auto [it, added] = stacks_.try_emplace(id, static_cast<uint32_t>(sites_->stacks.size()));
    if (!added) return it->second;
    std::vector<uint32_t>& frames = sites_->stacks.emplace_back();
    if (id == StackTable::kNoStack) return it->second;  // Not kept: an empty stack.
    for (const StackFrame& f : g.stacks->Frames(id)) frames.push_back(Frame(f));
    return it->second;
  }

 private:
  uint32_t Frame(const StackFrame& f) {
    auto [it, added] = frames_.try_emplace(f, static_cast<uint32_t>(sites_->frames.size()));
    if (!added) return it->second;
    auto* code = static_cast<PyObject*>(const_cast<void*>(f.code));
    const int line = tm_code_line(code, f.lasti);
    sites_->frames.push_back({String(tm_code_filename(code)), String(tm_code_name(code)),
                              static_cast<uint32_t>(line < 0 ? 0 : line)});
    return it->second;
  }

  uint32_t String(PyObject* str) {
    auto [it, added] = strings_.try_emplace(str, static_cast<uint32_t>(sites_->strings.size()));
    if (!added) return it->second;
    std::string text;
    if (str != nullptr && PyUnicode_Check(str)) AppendUtf8(str, 1000, &text);
    sites_->strings.push_back(std::move(text));
    return it->second;
  }

  struct FrameHash {
    size_t operator()(const StackFrame& f) const {
      return std::hash<const void*>()(f.code) * 31 + static_cast<size_t>(f.lasti);
    }
  };
  snapshot::Sites* sites_;
  std::unordered_map<uint32_t, uint32_t> stacks_;
  std::unordered_map<StackFrame, uint32_t, FrameHash> frames_;
  std::unordered_map<PyObject*, uint32_t> strings_;
};

}  // namespace

void DescribeSites(snapshot::Sites* sites,
                   std::vector<std::pair<uint64_t, uint32_t>>* object_sites) {
  const SamplerFigures figures = GetSamplerFigures();
  sites->mean_bytes = figures.mean_bytes;
  sites->live_samples = figures.live_samples;
  sites->dropped_samples = figures.dropped_samples;
  sites->dropped_stacks = figures.dropped_stacks;
  sites->restarts = figures.restarts;
  SiteWriter writer(sites);
  for (snapshot::Sites::Row& row : sites->rows) row.stack = writer.Stack(row.stack);
  for (auto& [address, stack] : *object_sites) stack = writer.Stack(stack);
  SweepStacks();
}

}  // namespace tidemark::agent
