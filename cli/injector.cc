#include "cli/injector.h"

#include <dirent.h>
#include <signal.h>
#include <sys/user.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "cli/process_maps.h"
#include "cli/traced_thread.h"

namespace tidemark::cli {
namespace {

using Clock = std::chrono::steady_clock;

// System calls a thread blocks in outside any lock of libc (x86-64 numbers).
struct BlockingCall {
  long number;
  const char* name;
};
constexpr BlockingCall kBlockingCalls[] = {{35, "nanosleep"},
                                           {230, "clock_nanosleep"},
                                           {23, "select"},
                                           {270, "pselect6"},
                                           {7, "poll"},
                                           {271, "ppoll"},
                                           {232, "epoll_wait"},
                                           {281, "epoll_pwait"},
                                           {441, "epoll_pwait2"},
                                           {0, "read"},
                                           {19, "readv"},
                                           {45, "recvfrom"},
                                           {47, "recvmsg"},
                                           {299, "recvmmsg"},
                                           {43, "accept"},
                                           {288, "accept4"},
                                           {61, "wait4"},
                                           {247, "waitid"},
                                           {34, "pause"},
                                           {128, "rt_sigtimedwait"},
                                           {130, "rt_sigsuspend"},
                                           {202, "futex"},
                                           {449, "futex_waitv"}};
constexpr long kFutex = 202;
constexpr long kErestartsys = -512, kErestartnointr = -513, kErestartnohand = -514,
               kErestartRestartblock = -516, kEintr = -4;
constexpr int kTrapHardwareBreakpoint = 4;  // TRAP_HWBKPT
constexpr uint64_t kRedZone = 128;
constexpr uint64_t kStackNeeded = 64 * 1024;  // What dlopen and pthread_create may use.
constexpr auto kCallTimeout = std::chrono::seconds(20);

const char* BlockingName(long number, uint64_t first_argument) {
  if (number == kFutex) {
    const uint64_t command = first_argument & ~uint64_t{128 | 256};  // PRIVATE, CLOCK_REALTIME
    if (command != 0 && command != 9) return nullptr;  // FUTEX_WAIT, FUTEX_WAIT_BITSET
  }
  for (const BlockingCall& call : kBlockingCalls) {
    if (call.number == number) return call.name;
  }
  return nullptr;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<pid_t> Threads(pid_t pid) {
  std::vector<pid_t> tids;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] >= '1' && e->d_name[0] <= '9') tids.push_back(std::atoi(e->d_name));
    }
    closedir(d);
  }
  return tids;
}

// A hexadecimal signal mask line of /proc/PID/task/TID/status ("SigBlk:", "SigIgn:").
uint64_t SignalMask(const std::string& status, const std::string& field) {
  const size_t at = status.find("\n" + field);
  if (at == std::string::npos) return ~uint64_t{0};
  return std::strtoull(status.c_str() + at + field.size() + 1, nullptr, 16);
}

std::string Hex(uint64_t value) {
  std::ostringstream s;
  s << "0x" << std::hex << value;
  return s.str();
}

struct Candidate {
  pid_t tid = 0;
  long number = -1;
  const char* name = "";
};

class Injection {
 public:
  explicit Injection(const InjectRequest& request)
      : request_(request),
        deadline_(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(request.timeout_s))) {}

  InjectResult<Injected> Run();

 private:
  std::unexpected<InjectFailure> Failure(std::string step, std::string reason, bool intact = true) {
    return std::unexpected(InjectFailure{std::move(step), std::move(reason), intact, detail_});
  }
  bool FaultAt(const std::string& step) const { return request_.fault == step; }
  std::unexpected<InjectFailure> OnPurpose(const std::string& step) {
    return Failure(step, "failed on purpose after this step (TIDEMARK_ATTACH_FAULT)");
  }
  void Note(std::string line) { detail_.push_back(std::move(line)); }
  std::string Thread(pid_t tid) const { return "thread " + std::to_string(tid); }

  InjectResult<void> Resolve();
  std::vector<Candidate> BlockedThreads() const;
  bool SignalUsable(pid_t tid, int signal) const;
  InjectResult<bool> AtSyscall(const Candidate& candidate);
  InjectResult<std::string> AtBreakpoint(Clock::time_point deadline);
  InjectResult<std::optional<std::string>> AtStep();
  InjectResult<std::optional<std::string>> StepEachRunningThread();
  InjectResult<std::optional<TracedThread>> StoppedThread(pid_t tid);
  InjectResult<void> CallIn(TracedThread& thread, const user_regs_struct& saved);
  InjectResult<uint64_t> Call(TracedThread& thread, const user_regs_struct& base, uint64_t frame,
                              uint64_t function, uint64_t first, uint64_t second);
  std::string TargetString(uint64_t address);
  bool RoomOnStack(uint64_t lowest) const;

  const InjectRequest& request_;
  const Clock::time_point deadline_;
  std::vector<std::string> detail_;
  std::vector<Mapping> maps_;
  std::map<std::string, uint64_t> libc_;    // dlopen, dlsym, dlerror, dlclose
  std::map<std::string, uint64_t> python_;  // The breakpoint route's functions.
};

InjectResult<void> Injection::Resolve() {
  auto maps = ReadMaps(request_.pid);
  if (!maps) return Failure("read the process's memory map", maps.error().message);
  maps_ = std::move(*maps);
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> sources = {
      {{"libc.so.6", "libc-2.", "libc.musl", "ld-musl"}, {"dlopen", "dlsym", "dlerror", "dlclose"}},
      {{"libdl.so"}, {"dlopen", "dlsym", "dlerror", "dlclose"}},
      {{"libc.so.6", "libc-2."}, {"__libc_dlopen_mode", "__libc_dlsym", "__libc_dlclose"}}};
  for (const auto& [files, names] : sources) {
    const auto path = MappedFile(maps_, files);
    if (!path) continue;
    auto found = FunctionAddresses(request_.pid, maps_, *path, names);
    if (!found) return Failure("find dlopen", found.error().message);
    if (found->count(names[0]) && found->count(names[1]) && found->count(names[2])) {
      libc_["dlopen"] = (*found)[names[0]];
      libc_["dlsym"] = (*found)[names[1]];
      libc_["dlclose"] = (*found)[names.back()];
      if (found->count("dlerror")) libc_["dlerror"] = (*found)["dlerror"];
      Note("dlopen at " + Hex(libc_["dlopen"]) + " in " + *path);
      break;
    }
  }
  if (libc_.empty()) return Failure("find dlopen", "no C library with dlopen is mapped");
  std::optional<std::string> python = MappedFile(maps_, {"libpython3"});
  if (!python) {
    if (!maps_.empty()) python = maps_.front().path;  // The executable, mapped first.
  }
  if (python) {
    auto found = FunctionAddresses(
        request_.pid, maps_, *python,
        {"PyEval_SaveThread", "PyEval_RestoreThread", "PyObject_Malloc", "PyObject_Free"});
    if (found) python_ = std::move(*found);
  }
  return {};
}

std::vector<Candidate> Injection::BlockedThreads() const {
  std::vector<Candidate> found, futexes;
  const std::string task = "/proc/" + std::to_string(request_.pid) + "/task/";
  for (const pid_t tid : Threads(request_.pid)) {
    // "NUMBER ARG1 ... ARG6 SP PC" while blocked in a system call, else "running" or "-1 ...".
    std::istringstream in(ReadText(task + std::to_string(tid) + "/syscall"));
    long number = -1;
    std::string address, op;
    if (!(in >> number) || number < 0) continue;
    in >> address >> op;  // futex(uaddr, op, ...)
    const char* name = BlockingName(number, std::strtoull(op.c_str(), nullptr, 16));
    if (name == nullptr || !SignalUsable(tid, SIGSEGV)) continue;
    (number == kFutex ? futexes : found).push_back({tid, number, name});
  }
  // A futex wait may be a lock's: prefer sleeps and I/O waits.
  found.insert(found.end(), futexes.begin(), futexes.end());
  return found;
}

// The kernel leaves a signal's disposition alone when it forces it on a thread only if the
// thread neither blocks nor ignores it.
bool Injection::SignalUsable(pid_t tid, int signal) const {
  const std::string status = ReadText("/proc/" + std::to_string(request_.pid) + "/task/" +
                                      std::to_string(tid) + "/status");
  const uint64_t bit = uint64_t{1} << (signal - 1);
  return (SignalMask(status, "SigBlk:") & bit) == 0 && (SignalMask(status, "SigIgn:") & bit) == 0;
}

// Stops the thread where /proc said it was blocked and injects there. false: it had moved on
// (left untouched; the caller looks again).
InjectResult<bool> Injection::AtSyscall(const Candidate& candidate) {
  auto seized = TracedThread::Seize(candidate.tid);
  if (!seized) return Failure("seize", seized.error().message);
  TracedThread& thread = *seized;
  Note("seized " + Thread(candidate.tid) + ", blocked in " + candidate.name);
  if (FaultAt("seize")) return OnPurpose("seize");
  if (auto r = thread.Interrupt(); !r) return Failure("stop", r.error().message);
  for (int signals = 0;; ++signals) {
    auto stop = thread.Wait(deadline_);
    if (!stop) return Failure("stop", stop.error().message);
    if (stop->kind == Stop::Kind::kGone) return Failure("stop", "the process exited");
    if (stop->kind == Stop::Kind::kInterrupt && stop->signal == SIGTRAP) break;
    // A signal on its way (delivered as it would have been), or a group-stop: let it be.
    if (auto r = thread.Continue(stop->kind == Stop::Kind::kSignal ? stop->signal : 0); !r) {
      return Failure("stop", r.error().message);
    }
    if (signals > 100) return Failure("stop", "signals kept arriving");
  }
  if (FaultAt("stop")) return OnPurpose("stop");
  auto regs = thread.Registers();
  if (!regs) return Failure("save-registers", regs.error().message);
  const long interrupted = static_cast<long>(regs->orig_rax);
  const long result = static_cast<long>(regs->rax);
  uint16_t instruction = 0;
  const bool at_syscall =
      ReadMemory(request_.pid, regs->rip - 2, &instruction, 2).has_value() && instruction == 0x050f;
  if (interrupted != candidate.number || !at_syscall) {
    Note(Thread(candidate.tid) + " had moved on (system call " + std::to_string(interrupted) +
         "); detached");
    return false;
  }
  if (!RoomOnStack(regs->rsp - kRedZone - request_.code.size() - 4096)) {
    Note(Thread(candidate.tid) + " has too little stack left; detached");
    return false;
  }
  Note("stopped in " + std::string(candidate.name) + ", which returned " + std::to_string(result) +
       (result == kErestartsys || result == kErestartnointr || result == kErestartnohand ||
                result == kErestartRestartblock
            ? " (to be restarted by the kernel)"
        : result == kEintr ? " (EINTR)"
                           : ""));
  if (auto r = CallIn(thread, *regs); !r) return std::unexpected(r.error());
  thread.Detach(0);
  return true;
}

InjectResult<std::string> Injection::AtBreakpoint(Clock::time_point deadline) {
  if (python_.empty()) {
    return Failure("find a safe point",
                   "no thread is blocked in a system call, and the interpreter's functions to "
                   "wait at were not found");
  }
  struct Armed {
    TracedThread thread;
    uint64_t saved[8] = {};
    int pending = 0;  // The signal of the stop it is held at.
  };
  std::vector<Armed> armed;
  uint64_t control = 0;
  std::vector<std::pair<uint64_t, std::string>> points;
  for (const auto& [name, address] : python_) {
    if (points.size() == 4) break;
    control |= uint64_t{1} << (2 * points.size());  // Local enable; execute, one byte.
    points.emplace_back(address, name);
  }
  // Every thread that may take a SIGTRAP is stopped, given the breakpoints, and let go. Undoing
  // it: each thread stopped again, its debug registers put back; a stop on a breakpoint of ours
  // is swallowed, any other signal is delivered when it is let go.
  auto disarm = [&]() {
    bool all = true;
    for (Armed& a : armed) {
      if (a.thread.tid() == 0) continue;
      if (a.pending < 0) {  // Running: stop it first.
        a.pending = 0;
        if (!a.thread.Interrupt()) continue;
        auto stop = a.thread.Wait(Clock::now() + kCallTimeout);
        if (stop && stop->kind == Stop::Kind::kSignal) a.pending = stop->signal;
        if (a.thread.tid() == 0) continue;
      }
      all = a.thread.SetDebugRegister(7, a.saved[7]).has_value() && all;
      for (int i : {0, 1, 2, 3, 6})
        all = a.thread.SetDebugRegister(i, a.saved[i]).has_value() && all;
      if (a.pending == SIGTRAP) {
        auto info = a.thread.SignalInfo();
        if (info && info->si_code == kTrapHardwareBreakpoint) a.pending = 0;  // Ours.
      }
    }
    return all;
  };
  auto release = [&]() {
    const bool undone = disarm();
    for (Armed& a : armed) a.thread.Detach(a.pending);
    return undone;
  };
  std::string refused = "none may take a SIGTRAP";
  for (const pid_t tid : Threads(request_.pid)) {
    if (!SignalUsable(tid, SIGTRAP) || !SignalUsable(tid, SIGSEGV)) continue;
    auto seized = TracedThread::Seize(tid);
    if (!seized) {
      refused = seized.error().message;
      continue;
    }
    Armed a{std::move(*seized)};
    if (!a.thread.Interrupt()) continue;
    bool stopped = false;
    for (int n = 0; n < 100; ++n) {
      auto stop = a.thread.Wait(deadline_);
      if (!stop || stop->kind == Stop::Kind::kGone) break;
      if (stop->kind == Stop::Kind::kInterrupt) {
        stopped = true;
        break;
      }
      if (!a.thread.Continue(stop->kind == Stop::Kind::kSignal ? stop->signal : 0)) break;
    }
    if (!stopped) continue;
    bool saved = true;
    for (int i : {0, 1, 2, 3, 6, 7}) {
      auto v = a.thread.DebugRegister(i);
      saved = saved && v.has_value();
      if (v) a.saved[i] = *v;
    }
    if (!saved) continue;
    armed.push_back(std::move(a));
  }
  if (armed.empty()) {
    return Failure("arm-breakpoints", "no thread of the process could be stopped: " + refused);
  }
  for (Armed& a : armed) {
    bool ok = true;
    for (size_t i = 0; i < points.size(); ++i) {
      ok = ok && a.thread.SetDebugRegister(static_cast<int>(i), points[i].first).has_value();
    }
    ok = ok && a.thread.SetDebugRegister(7, control).has_value();
    if (!ok) {
      const bool undone = release();
      return Failure("arm-breakpoints",
                     "the kernel refused a debug register (no hardware breakpoints here?)", undone);
    }
  }
  std::string names;
  for (const auto& [address, name] : points) names += (names.empty() ? "" : ", ") + name;
  Note("hardware breakpoints at " + names + " in " + std::to_string(armed.size()) + " threads");
  if (FaultAt("arm-breakpoints")) {
    const bool undone = release();
    return Failure("arm-breakpoints", "failed on purpose after this step (TIDEMARK_ATTACH_FAULT)",
                   undone);
  }
  for (Armed& a : armed) {
    a.pending = -1;
    if (!a.thread.Continue(0)) a.pending = 0;
  }
  // The first thread to reach one of them.
  Armed* winner = nullptr;
  std::string reached;
  while (winner == nullptr) {
    if (Clock::now() > deadline) {
      const bool undone = release();
      return Failure("find a safe point",
                     "no safe point reached in the timeout: the process runs code that neither "
                     "waits in a system call nor allocates (a C call holding the GIL?)",
                     undone);
    }
    for (Armed& a : armed) {
      if (a.thread.tid() == 0 || a.pending >= 0) continue;
      auto stop = a.thread.Wait(Clock::now());
      if (!stop) continue;  // Still running.
      if (stop->kind == Stop::Kind::kGone) continue;
      if (stop->kind == Stop::Kind::kSignal && stop->signal == SIGTRAP) {
        auto info = a.thread.SignalInfo();
        auto regs = a.thread.Registers();
        if (info && info->si_code == kTrapHardwareBreakpoint && regs) {
          for (const auto& [address, name] : points) {
            if (regs->rip == address) reached = name;
          }
          if (!reached.empty()) {
            a.pending = SIGTRAP;
            winner = &a;
            break;
          }
        }
      }
      if (!a.thread.Continue(stop->kind == Stop::Kind::kSignal ? stop->signal : 0)) a.pending = 0;
    }
    if (winner == nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const pid_t tid = winner->thread.tid();
  Note(Thread(tid) + " reached " + reached);
  if (!disarm()) {
    for (Armed& a : armed) a.thread.Detach(a.pending);
    return Failure("disarm breakpoints", "a debug register could not be reset", false);
  }
  TracedThread chosen = std::move(winner->thread);
  for (Armed& a : armed) a.thread.Detach(a.pending);  // Their own signals go on.
  if (FaultAt("breakpoint-hit")) return OnPurpose("breakpoint-hit");
  auto regs = chosen.Registers();
  if (!regs) return Failure("save-registers", regs.error().message);
  if (auto r = CallIn(chosen, *regs); !r) return std::unexpected(r.error());
  chosen.Detach(0);
  return Thread(tid) + " at the entry of " + reached + " (hardware breakpoint)";
}

// `tid` seized and stopped by PTRACE_INTERRUPT (signals met meanwhile delivered); nullopt if
// it could not be.
InjectResult<std::optional<TracedThread>> Injection::StoppedThread(pid_t tid) {
  auto seized = TracedThread::Seize(tid);
  if (!seized || !seized->Interrupt()) return std::optional<TracedThread>();
  for (int n = 0; n < 100; ++n) {
    auto stop = seized->Wait(deadline_);
    if (!stop || stop->kind == Stop::Kind::kGone) break;
    if (stop->kind == Stop::Kind::kInterrupt) {
      return std::optional<TracedThread>(std::move(*seized));
    }
    if (!seized->Continue(stop->kind == Stop::Kind::kSignal ? stop->signal : 0)) break;
  }
  return std::optional<TracedThread>();
}

// The route where hardware breakpoints do not fire: each running thread in turn is stepped one
// instruction at a time until it is at the entry of one of the interpreter's functions. The
// thread runs thousands of times slower meanwhile (at most until the deadline). A thread that
// stops on a signal of its own, or blocks in a system call, is let go with its signal.
InjectResult<std::optional<std::string>> Injection::AtStep() {
  while (Clock::now() < deadline_) {
    auto reached = StepEachRunningThread();
    if (!reached || *reached) return reached;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // None running: look again.
  }
  return std::optional<std::string>();
}

// One pass over the threads running now (not the agent's own), each stepped for a slice of the
// time left; nullopt if none reached a safe point.
InjectResult<std::optional<std::string>> Injection::StepEachRunningThread() {
  const std::string task = "/proc/" + std::to_string(request_.pid) + "/task/";
  for (const pid_t tid : Threads(request_.pid)) {
    const std::string stat = ReadText(task + std::to_string(tid) + "/stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos || stat.compare(paren, 3, ") R") != 0) continue;
    if (stat.find("(tidemark)") != std::string::npos) continue;  // The agent's reporter.
    if (!SignalUsable(tid, SIGTRAP) || !SignalUsable(tid, SIGSEGV)) continue;
    auto stopped = StoppedThread(tid);
    if (!stopped || !*stopped) continue;
    TracedThread thread = std::move(**stopped);
    int pending = 0;
    std::string reached;
    const auto slice_end = std::min(deadline_, Clock::now() + std::chrono::seconds(1));
    while (reached.empty() && Clock::now() < slice_end) {
      if (!thread.Step()) break;
      auto stop = thread.Wait(Clock::now() + std::chrono::milliseconds(100));
      if (!stop) {  // Blocked in a system call: stopped again and let go.
        if (thread.Interrupt()) {
          auto again = thread.Wait(Clock::now() + kCallTimeout);
          if (again && again->kind == Stop::Kind::kSignal && again->signal != SIGTRAP)
            pending = again->signal;
        }
        break;
      }
      if (stop->kind == Stop::Kind::kGone) break;
      if (stop->kind != Stop::Kind::kSignal || stop->signal != SIGTRAP) {
        if (stop->kind == Stop::Kind::kSignal) pending = stop->signal;
        break;
      }
      auto info = thread.SignalInfo();
      if (!info || info->si_code <= 0) {  // A SIGTRAP someone sent: theirs.
        pending = SIGTRAP;
        break;
      }
      auto regs = thread.Registers();
      if (!regs) break;
      for (const auto& [name, address] : python_) {
        if (regs->rip == address) reached = name;
      }
    }
    if (reached.empty()) {
      thread.Detach(pending);
      continue;
    }
    Note(Thread(tid) + " reached " + reached + " by single steps");
    if (FaultAt("breakpoint-hit")) return OnPurpose("breakpoint-hit");
    auto regs = thread.Registers();
    if (!regs) return Failure("save-registers", regs.error().message);
    if (auto r = CallIn(thread, *regs); !r) return std::unexpected(r.error());
    thread.Detach(0);
    return std::optional<std::string>(Thread(tid) + " at the entry of " + reached +
                                      " (single steps)");
  }
  return std::optional<std::string>();
}

// Saves every register, calls dlopen, dlsym and tidemark_inject, restores them all. The thread
// is stopped; on return (either way) it is at a stop it can be detached from with signal 0.
InjectResult<void> Injection::CallIn(TracedThread& thread, const user_regs_struct& saved) {
  auto extended = thread.Extended();
  if (!extended) return Failure("save-registers", extended.error().message);
  Note("saved the registers and the " + std::to_string(extended->bytes.size()) + "-byte " +
       (extended->xsave ? "XSAVE" : "FXSAVE") + " area");
  if (FaultAt("save-registers")) return OnPurpose("save-registers");
  if (auto r = thread.SetExtended(*extended); !r) {
    return Failure("preflight",
                   "the kernel did not take back the extended registers it handed "
                   "out (" +
                       r.error().message + "); nothing was changed");
  }
  if (auto r = thread.SetRegisters(saved); !r) {
    return Failure("preflight", "the kernel did not take back the registers it handed out (" +
                                    r.error().message + "); nothing was changed");
  }
  Note("preflight: the registers were written back as read");
  if (FaultAt("preflight")) return OnPurpose("preflight");
  auto restore = [&]() {
    return thread.SetExtended(*extended).has_value() && thread.SetRegisters(saved).has_value();
  };
  auto failed = [&](const std::string& step, const std::string& reason) {
    const bool intact = restore();
    return Failure(step, reason + (intact ? "" : "; the registers could not be restored"), intact);
  };
  // The strings below the red zone, the calls' frames below them.
  const std::string symbol = "tidemark_inject";
  std::string blob = request_.library + '\0' + symbol + '\0' + request_.code + '\0';
  const uint64_t top = (saved.rsp - kRedZone) & ~uint64_t{15};
  const uint64_t strings = (top - blob.size()) & ~uint64_t{15};
  if (!RoomOnStack(strings)) {
    return Failure("write-arguments", Thread(thread.tid()) + " has too little stack left");
  }
  if (auto r = WriteMemory(request_.pid, strings, blob.data(), blob.size()); !r) {
    return Failure("write-arguments", r.error().message);
  }
  if (FaultAt("write-arguments"))
    return failed("write-arguments", "failed on purpose after this step (TIDEMARK_ATTACH_FAULT)");
  const uint64_t library = strings, name = strings + request_.library.size() + 1,
                 code = name + symbol.size() + 1;
  constexpr uint64_t kRtldNow = 2;
  auto handle = Call(thread, saved, strings, libc_["dlopen"], library, kRtldNow);
  if (!handle) return std::unexpected(handle.error());
  if (*handle == 0) {
    std::string why = "no reason given";
    if (libc_.count("dlerror")) {
      auto message = Call(thread, saved, strings, libc_["dlerror"], 0, 0);
      if (message && *message != 0) why = TargetString(*message);
    }
    return failed("dlopen", "dlopen(\"" + request_.library + "\"): " + why);
  }
  Note("dlopen returned " + Hex(*handle));
  auto close = [&]() {
    auto closed = Call(thread, saved, strings, libc_["dlclose"], *handle, 0);
    if (closed) Note("dlclose returned " + std::to_string(*closed));
  };
  if (FaultAt("dlopen")) {
    close();
    return failed("dlopen", "failed on purpose after this step (TIDEMARK_ATTACH_FAULT)");
  }
  auto function = Call(thread, saved, strings, libc_["dlsym"], *handle, name);
  if (!function) return std::unexpected(function.error());
  if (*function == 0 || FaultAt("dlsym")) {
    close();
    return failed("dlsym", *function == 0
                               ? request_.library + " defines no " + symbol
                               : "failed on purpose after this step (TIDEMARK_ATTACH_FAULT)");
  }
  auto started =
      Call(thread, saved, strings, *function, code, static_cast<uint64_t>(request_.gil_budget_ms));
  if (!started) return std::unexpected(started.error());
  const int error = static_cast<int>(*started & 0xffffffff);
  if (error != 0) {
    close();
    return failed("start a thread", std::string("pthread_create: ") + std::strerror(error));
  }
  Note("tidemark_inject started its thread");
  if (!restore()) {
    return Failure("restore registers", "the thread's registers could not be restored", false);
  }
  Note("registers restored");
  return {};
}

// Calls function(first, second) in the stopped thread and returns what it returned. The frame
// goes below `frame`, the return address is 0: the thread stops on that fault, which is never
// delivered.
InjectResult<uint64_t> Injection::Call(TracedThread& thread, const user_regs_struct& base,
                                       uint64_t frame, uint64_t function, uint64_t first,
                                       uint64_t second) {
  user_regs_struct regs = base;
  regs.rsp = (frame & ~uint64_t{15}) - 8;  // As after a call: rsp + 8 is 16-byte aligned.
  regs.rip = function;
  regs.rdi = first;
  regs.rsi = second;
  regs.rax = 0;
  regs.orig_rax = ~0ull;  // Not in a system call: the kernel restarts nothing.
  const uint64_t zero = 0;
  auto broken = [&](const std::string& why) {
    return Failure("call " + Hex(function), why, false);
  };
  if (!WriteMemory(request_.pid, regs.rsp, &zero, sizeof(zero)))
    return broken("cannot write the frame");
  if (!thread.SetRegisters(regs) || !thread.Continue(0)) return broken("cannot start the call");
  const auto until = Clock::now() + kCallTimeout;
  for (;;) {
    auto stop = thread.Wait(until);
    if (!stop) return broken("the call did not return: " + stop.error().message);
    if (stop->kind == Stop::Kind::kGone) return broken("the process exited during the call");
    if (stop->kind == Stop::Kind::kSignal && stop->signal == SIGSEGV) {
      auto now = thread.Registers();
      if (now && now->rip == 0 && now->rsp == regs.rsp + 8) return uint64_t(now->rax);
      return broken("the call crashed (SIGSEGV at " + Hex(now ? now->rip : 0) + ")");
    }
    const int deliver = stop->kind == Stop::Kind::kSignal ? stop->signal : 0;
    if (!thread.Continue(deliver)) return broken("cannot resume the call");
  }
}

// Whether the calls may use the stack below `lowest`: the thread's stack mapping, read now (a
// thread started after Resolve() has a stack the first read did not list), leaves kStackNeeded
// below it (the main thread's [stack] grows on demand).
bool Injection::RoomOnStack(uint64_t lowest) const {
  auto maps = ReadMaps(request_.pid);
  if (!maps) return false;
  const auto stack = MappingAt(*maps, lowest);
  return stack && (stack->path == "[stack]" || lowest - stack->start >= kStackNeeded);
}

std::string Injection::TargetString(uint64_t address) {
  char text[301] = {};
  for (size_t n = 300; n > 0; n /= 2) {  // The string may end near the end of its mapping.
    if (ReadMemory(request_.pid, address, text, n)) break;
  }
  return text;
}

InjectResult<Injected> Injection::Run() {
  if (auto r = Resolve(); !r) return std::unexpected(r.error());
  // Threads blocked in a system call first, looked at again until the deadline; a thread that
  // moved on between /proc and the stop is left as it was.
  // No thread blocked at the first look may be one back in its call a moment later (a sleep
  // just restarted, on a loaded machine): looked at for up to 20 rounds, 10 ms apart.
  for (int round = 0; Clock::now() < deadline_ && round < 20; ++round) {
    const std::vector<Candidate> candidates = BlockedThreads();
    if (candidates.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    for (const Candidate& candidate : candidates) {
      auto done = AtSyscall(candidate);
      if (!done) return std::unexpected(done.error());
      if (*done) {
        return Injected{Thread(candidate.tid) + ", blocked in " + candidate.name, detail_};
      }
    }
  }
  // Hardware breakpoints for half the time left; where none fired (a virtual machine may not
  // pass debug registers on), single steps for the rest.
  auto where = AtBreakpoint(Clock::now() + (deadline_ - Clock::now()) / 2);
  if (where || !where.error().intact || where.error().step != "find a safe point") {
    if (!where) return std::unexpected(where.error());
    return Injected{*where, detail_};
  }
  Note("no hardware breakpoint fired in half the timeout: single steps");
  auto stepped = AtStep();
  if (!stepped) return std::unexpected(stepped.error());
  if (!*stepped) return Failure(where.error().step, where.error().reason);
  return Injected{**stepped, detail_};
}

}  // namespace

InjectResult<Injected> InjectCall(const InjectRequest& request) {
  Injection injection(request);
  return injection.Run();
}

}  // namespace tidemark::cli
