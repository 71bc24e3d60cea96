#include "agent/isolation.h"

#include "agent/compat.h"
// compat.h brings Python.h first, as CPython requires.
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "agent/child_memory.h"
#include "agent/process_memory.h"
#include "agent/take.h"
#include "snapshot/wire.h"

namespace tidemark::agent {

// The shared mapping: this header in the first page, the message after it.
struct SharedResult {
  enum State : uint32_t { kRunning = 0, kDone = 1, kFailed = 2 };
  std::atomic<uint32_t> state;  // Also the futex word the parent waits on.
  double walk_ms;               // The walk alone, as an inline walk's pause.
  double walk_cpu_ms;           // Its CPU time.
  double child_ms;              // Walk, encode, compression.
  double child_cpu_ms;          // The child's whole CPU time (walk, encode, compression).
  uint64_t peak_bytes;
  uint64_t sizers_skipped;
  uint64_t references;
  uint64_t message_bytes;
  bool abandoned;   // At a configured limit (max_objects): the message holds what was walked.
  char error[512];  // kFailed: what went wrong; kDone: why the walk was abandoned, if it was.
};

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMessageOffset = 4096;
static_assert(sizeof(SharedResult) <= kMessageOffset);

// --- In the child -------------------------------------------------------------------------

SharedResult* g_shared = nullptr;  // The child's view of the mapping.

// The parent's: the futex word of the Wait in progress (one at a time per reporter; a
// snapshot() from Python may wait beside it, and is woken by its own 20 ms slices).
std::atomic<std::atomic<uint32_t>*> g_waiting{nullptr};

void Publish(uint32_t state) {
  g_shared->state.store(state, std::memory_order_release);
  syscall(SYS_futex, &g_shared->state, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

[[noreturn]] void ChildFail(const char* what, const char* detail = "") {
  std::snprintf(g_shared->error, sizeof g_shared->error, "%s%s", what, detail);
  Publish(SharedResult::kFailed);
  _exit(1);
}

void OnExhausted(size_t cap) {
  char text[96];
  std::snprintf(text, sizeof text, "the child's memory cap of %zu bytes was reached", cap);
  ChildFail(text);
}

void CloseInheritedDescriptors() {
  if (syscall(SYS_close_range, 0u, ~0u, 0u) == 0) return;
  rlimit limit{};
  const rlim_t n = getrlimit(RLIMIT_NOFILE, &limit) == 0 ? limit.rlim_cur : 1024;
  for (rlim_t fd = 0; fd < std::min<rlim_t>(n, 1 << 20); ++fd) close(static_cast<int>(fd));
}

void* PyAllocate(void*, size_t bytes) { return ChildAllocate(bytes); }
void* PyAllocateZeroed(void*, size_t count, size_t size) {
  if (size != 0 && count > SIZE_MAX / size) return nullptr;
  void* p = ChildAllocate(count * size);
  std::memset(p, 0, count * size);  // A reused top span is not zero.
  return p;
}
void* PyReallocate(void*, void* block, size_t bytes) { return ChildReallocate(block, bytes); }
void PyFree(void*, void* block) { ChildFree(block); }

// CPython's allocators, every domain, from the child's memory: the walk's C __sizeof__ calls
// and the stack names of allocation sites allocate through them.
void InstallChildPyAllocators() {
  PyMemAllocatorEx allocator = {nullptr, &PyAllocate, &PyAllocateZeroed, &PyReallocate, &PyFree};
  PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &allocator);
  PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &allocator);
  PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &allocator);
}

[[noreturn]] void RunChild(SharedResult* shared, pid_t parent, const WalkOptions& parent_options,
                           const IsolationSettings& settings, uint64_t rss_bytes) {
  g_shared = shared;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);  // The thread that made it is gone already.
  CloseInheritedDescriptors();
  if (!OpenChildMemory(settings.child_max_bytes, &OnExhausted)) {
    ChildFail("the child could not map its memory: ", strerror(errno));
  }
  InstallChildPyAllocators();
  const auto started = Clock::now();
  WalkOptions options = parent_options;
  options.max_pause_ms = 0;  // No GIL to spare here: the deadline bounds the child.
  WalkOutcome outcome;
  UnresolvedReferences unresolved;
  const bool graph = options.kind == snapshot::Kind::kGraph;
  snapshot::Snapshot s =
      TakeHoldingGil(options, PrepareWalkBuffers(graph, rss_bytes), &outcome, &unresolved);
  FinishWithoutGil(std::move(unresolved), &s, rss_bytes);
  s.header.identity.service = "-";  // Valid until the parent puts the agent's identity in.
  s.header.identity.pid = parent;
  auto encoded =
      snapshot::Encode(s, {.zstd_level = settings.zstd_level, .allocator = ChildZstdAllocator()});
  if (!encoded) ChildFail("encode: ", encoded.error().message.c_str());
  if (encoded->size() > settings.child_max_bytes) ChildFail("the message outgrew its mapping");
  std::memcpy(reinterpret_cast<char*>(shared) + kMessageOffset, encoded->data(), encoded->size());
  shared->message_bytes = encoded->size();
  shared->sizers_skipped = outcome.needs_sizer.size();
  shared->references = outcome.references;
  shared->abandoned = outcome.abandoned;
  std::snprintf(shared->error, sizeof shared->error, "%s", outcome.abandon_reason.c_str());
  shared->walk_ms = outcome.pause_ms;
  shared->walk_cpu_ms = outcome.cpu_ms;
  shared->child_ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
  timespec cpu{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);  // The child is a process of its own.
  shared->child_cpu_ms =
      static_cast<double>(cpu.tv_sec) * 1e3 + static_cast<double>(cpu.tv_nsec) / 1e6;
  shared->peak_bytes = ChildPeakBytes();
  Publish(SharedResult::kDone);
  _exit(0);
}

}  // namespace

// --- In the parent ------------------------------------------------------------------------

snapshot::Result<ChildWalk> ChildWalk::Start(const WalkOptions& options,
                                             const IsolationSettings& settings, uint64_t rss_bytes,
                                             int* error_number) {
  const size_t shared_bytes = kMessageOffset + settings.child_max_bytes;
  void* mapped = mmap(nullptr, shared_bytes, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapped == MAP_FAILED) {
    *error_number = errno;
    return snapshot::Fail(snapshot::Code::kIo,
                          std::string("cannot map the child's result area: ") + strerror(errno));
  }
  auto* shared = static_cast<SharedResult*>(mapped);
  const pid_t parent = getpid();
  const uint64_t faults_before = MinorFaults();
  const auto started = Clock::now();
  // The child starts with every signal blocked: no handler of the host ever runs in it.
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  // Exit signal 0, nothing shared: a copy-on-write copy of this process that only
  // waitpid(__WCLONE) sees. The raw system call runs no atfork handler.
  const long pid = syscall(SYS_clone, 0ul, nullptr, nullptr, nullptr, 0ul);
  if (pid == 0) RunChild(shared, parent, options, settings, rss_bytes);
  const int clone_errno = errno;
  const auto cloned = Clock::now();
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (pid < 0) {
    munmap(mapped, shared_bytes);
    *error_number = clone_errno;
    return snapshot::Fail(snapshot::Code::kIo, std::string("clone refused: ") +
                                                   strerrorname_np(clone_errno) + " (" +
                                                   strerror(clone_errno) + ")");
  }
  madvise(mapped, shared_bytes, MADV_DONTFORK);  // The host's own forks do not inherit it.
  const auto deadline = started + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(settings.child_timeout_s));
  ChildWalk walk(static_cast<pid_t>(pid), shared, shared_bytes, deadline, faults_before);
  walk.started_ = started;
  walk.clone_ms_ = std::chrono::duration<double, std::milli>(cloned - started).count();
  return walk;
}

ChildWalk::ChildWalk(pid_t pid, SharedResult* shared, size_t shared_bytes,
                     Clock::time_point deadline, uint64_t faults_before)
    : pid_(pid),
      shared_(shared),
      shared_bytes_(shared_bytes),
      deadline_(deadline),
      faults_before_(faults_before) {}

ChildWalk::ChildWalk(ChildWalk&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      shared_(std::exchange(other.shared_, nullptr)),
      shared_bytes_(other.shared_bytes_),
      started_(other.started_),
      deadline_(other.deadline_),
      faults_before_(other.faults_before_),
      clone_ms_(other.clone_ms_) {}

ChildWalk::~ChildWalk() {
  if (pid_ > 0) KillAndReap();
  if (shared_ != nullptr) munmap(shared_, shared_bytes_);
}

void ChildWalk::KillAndReap() {
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, __WCLONE) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string ChildWalk::Describe(int status) const {
  if (shared_->state.load() == SharedResult::kFailed) {
    return std::string(shared_->error, strnlen(shared_->error, sizeof shared_->error));
  }
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return name != nullptr ? std::string("the child was killed by SIG") + name
                           : "the child was killed by signal " + std::to_string(WTERMSIG(status));
  }
  return "the child exited with status " + std::to_string(WEXITSTATUS(status)) + " and no snapshot";
}

void InterruptChildWaits() {
  // A wake on a word that is no longer mapped fails harmlessly (EFAULT).
  if (auto* word = g_waiting.load())
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

snapshot::Result<ChildOutcome> ChildWalk::Wait(const std::atomic<bool>* cancel) {
  int status = 0;
  bool reaped = false;
  if (cancel != nullptr) g_waiting.store(&shared_->state);
  struct Unregister {
    bool armed;
    ~Unregister() {
      if (armed) g_waiting.store(nullptr);
    }
  } unregister{cancel != nullptr};
  while (shared_->state.load(std::memory_order_acquire) == SharedResult::kRunning) {
    if (cancel != nullptr && cancel->load()) {
      KillAndReap();
      return snapshot::Fail("the snapshot was cancelled: its child was killed");
    }
    const auto now = Clock::now();
    if (now >= deadline_) {
      KillAndReap();
      return snapshot::Fail(snapshot::Code::kLimit,
                            "the child overran its deadline and was killed");
    }
    const auto slice = std::min<Clock::duration>(deadline_ - now, std::chrono::milliseconds(20));
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(slice).count();
    timespec timeout{static_cast<time_t>(ns / 1'000'000'000),
                     static_cast<long>(ns % 1'000'000'000)};
    syscall(SYS_futex, &shared_->state, FUTEX_WAIT, SharedResult::kRunning, &timeout, nullptr, 0);
    if (shared_->state.load(std::memory_order_acquire) != SharedResult::kRunning) break;
    const pid_t gone = waitpid(pid_, &status, WNOHANG | __WCLONE);
    if (gone == pid_) {  // Died without a word (killed, or a crash).
      reaped = true;
      pid_ = -1;
      break;
    }
  }
  if (!reaped) {
    while (waitpid(pid_, &status, __WCLONE) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  if (shared_->state.load(std::memory_order_acquire) != SharedResult::kDone) {
    return snapshot::Fail(Describe(status));
  }
  ChildOutcome outcome;
  outcome.message.assign(reinterpret_cast<const char*>(shared_) + kMessageOffset,
                         shared_->message_bytes);
  outcome.walk_ms = shared_->walk_ms;
  outcome.walk_cpu_ms = shared_->walk_cpu_ms;
  outcome.child_ms = shared_->child_ms;
  outcome.child_cpu_ms = shared_->child_cpu_ms;
  outcome.peak_bytes = shared_->peak_bytes;
  outcome.sizers_skipped = shared_->sizers_skipped;
  outcome.references = shared_->references;
  outcome.abandoned = shared_->abandoned;
  if (outcome.abandoned) outcome.abandon_reason = shared_->error;
  outcome.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
  outcome.clone_ms = clone_ms_;
  outcome.parent_fault_bytes =
      (MinorFaults() - faults_before_) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return outcome;
}

}  // namespace tidemark::agent
