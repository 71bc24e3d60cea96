#include "cli/traced_thread.h"

#include <elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <thread>

#ifndef PTRACE_GET_SYSCALL_INFO
#define PTRACE_GET_SYSCALL_INFO 0x420e
#endif

namespace tidemark::cli {
namespace {

using snapshot::Code;
using snapshot::Fail;

constexpr uint8_t kSyscallInfoEntry = 1;  // PTRACE_SYSCALL_INFO_ENTRY
// Larger than any XSAVE area a CPU has today (AMX's is about 11 KiB): the kernel shortens the
// length to what this machine's area holds.
constexpr size_t kXStateProbe = 64 * 1024;

std::string Errno() { return std::strerror(errno); }

size_t DebugRegisterOffset(int index) {
  return offsetof(struct user, u_debugreg) + sizeof(long) * static_cast<size_t>(index);
}

}  // namespace

TracedThread& TracedThread::operator=(TracedThread&& other) noexcept {
  if (this != &other) {
    Detach(0);
    tid_ = other.tid_;
    other.tid_ = 0;
  }
  return *this;
}

snapshot::Result<TracedThread> TracedThread::Seize(pid_t tid) {
  // A tracer that just let the thread go (an attach a moment ago) may not be gone from the
  // kernel's view yet: EPERM is tried again for a little while before it is an answer.
  long seized = -1;
  for (int attempt = 0; attempt < 20; ++attempt) {
    seized = ptrace(PTRACE_SEIZE, tid, nullptr, reinterpret_cast<void*>(PTRACE_O_TRACESYSGOOD));
    if (seized == 0 || errno != EPERM) break;
    usleep(10'000);
  }
  if (seized != 0) {
    const bool denied = errno == EPERM;
    return Fail(Code::kIo, "ptrace(PTRACE_SEIZE, " + std::to_string(tid) + "): " + Errno() +
                               (denied ? " (in a container, tracing needs CAP_SYS_PTRACE and the "
                                         "target's PID namespace; another tracer may hold it)"
                                       : ""));
  }
  return TracedThread(tid);
}

snapshot::Result<void> TracedThread::Request(const char* what, long result) {
  if (result == -1) {
    return Fail(Code::kIo,
                std::string(what) + " (thread " + std::to_string(tid_) + "): " + Errno());
  }
  return {};
}

snapshot::Result<void> TracedThread::Interrupt() {
  return Request("PTRACE_INTERRUPT", ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr));
}

snapshot::Result<Stop> TracedThread::Wait(Deadline deadline) {
  for (int pause_us = 50;; pause_us = std::min(pause_us * 2, 5000)) {
    int status = 0;
    const pid_t got = waitpid(tid_, &status, __WALL | WNOHANG);
    if (got == tid_) {
      Stop stop;
      if (WIFEXITED(status) || WIFSIGNALED(status)) {
        tid_ = 0;  // Nothing left to detach from.
        return stop;
      }
      const int sig = WSTOPSIG(status);
      if (sig == (SIGTRAP | 0x80)) {
        stop.kind = Stop::Kind::kSyscall;
      } else if ((status >> 16) == PTRACE_EVENT_STOP) {
        stop.kind = Stop::Kind::kInterrupt;
        stop.signal = sig;
      } else {
        stop.kind = Stop::Kind::kSignal;
        stop.signal = sig;
      }
      return stop;
    }
    if (got < 0 && errno != EINTR) {
      return Fail(Code::kIo, "waitpid(" + std::to_string(tid_) + "): " + Errno());
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Fail(Code::kLimit, "thread " + std::to_string(tid_) + " did not stop in time");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
  }
}

snapshot::Result<bool> TracedThread::AtSyscallEntry() {
  uint8_t info[256] = {};
  if (ptrace(static_cast<__ptrace_request>(PTRACE_GET_SYSCALL_INFO), tid_,
             reinterpret_cast<void*>(sizeof(info)), info) < 0) {
    return Fail(Code::kIo, "PTRACE_GET_SYSCALL_INFO: " + Errno());
  }
  return info[0] == kSyscallInfoEntry;
}

snapshot::Result<void> TracedThread::Continue(int signal, bool to_syscall) {
  return Request(to_syscall ? "PTRACE_SYSCALL" : "PTRACE_CONT",
                 ptrace(to_syscall ? PTRACE_SYSCALL : PTRACE_CONT, tid_, nullptr,
                        reinterpret_cast<void*>(static_cast<long>(signal))));
}

snapshot::Result<void> TracedThread::Step() {
  return Request("PTRACE_SINGLESTEP", ptrace(PTRACE_SINGLESTEP, tid_, nullptr, nullptr));
}

void TracedThread::Detach(int signal) {
  if (tid_ == 0) return;
  ptrace(PTRACE_DETACH, tid_, nullptr, reinterpret_cast<void*>(static_cast<long>(signal)));
  tid_ = 0;
}

snapshot::Result<user_regs_struct> TracedThread::Registers() {
  user_regs_struct regs;
  if (auto r = Request("PTRACE_GETREGS", ptrace(PTRACE_GETREGS, tid_, nullptr, &regs)); !r) {
    return std::unexpected(r.error());
  }
  return regs;
}

snapshot::Result<void> TracedThread::SetRegisters(const user_regs_struct& regs) {
  return Request("PTRACE_SETREGS", ptrace(PTRACE_SETREGS, tid_, nullptr, &regs));
}

snapshot::Result<ExtendedState> TracedThread::Extended() {
  ExtendedState state;
  state.bytes.resize(kXStateProbe);
  iovec io{state.bytes.data(), state.bytes.size()};
  if (ptrace(PTRACE_GETREGSET, tid_, reinterpret_cast<void*>(NT_X86_XSTATE), &io) == 0) {
    state.bytes.resize(io.iov_len);  // Exactly this machine's XSAVE area.
    return state;
  }
  if (errno != EINVAL && errno != ENODEV) {
    return Fail(Code::kIo, "PTRACE_GETREGSET NT_X86_XSTATE: " + Errno());
  }
  state.xsave = false;
  state.bytes.resize(sizeof(user_fpregs_struct));
  if (auto r =
          Request("PTRACE_GETFPREGS", ptrace(PTRACE_GETFPREGS, tid_, nullptr, state.bytes.data()));
      !r) {
    return std::unexpected(r.error());
  }
  return state;
}

snapshot::Result<void> TracedThread::SetExtended(const ExtendedState& state) {
  if (!state.xsave) {
    return Request("PTRACE_SETFPREGS", ptrace(PTRACE_SETFPREGS, tid_, nullptr,
                                              const_cast<uint8_t*>(state.bytes.data())));
  }
  iovec io{const_cast<uint8_t*>(state.bytes.data()), state.bytes.size()};
  return Request("PTRACE_SETREGSET NT_X86_XSTATE",
                 ptrace(PTRACE_SETREGSET, tid_, reinterpret_cast<void*>(NT_X86_XSTATE), &io));
}

snapshot::Result<uint64_t> TracedThread::DebugRegister(int index) {
  errno = 0;
  const long value =
      ptrace(PTRACE_PEEKUSER, tid_, reinterpret_cast<void*>(DebugRegisterOffset(index)), nullptr);
  if (errno != 0) return Fail(Code::kIo, "PTRACE_PEEKUSER debug register: " + Errno());
  return static_cast<uint64_t>(value);
}

snapshot::Result<void> TracedThread::SetDebugRegister(int index, uint64_t value) {
  return Request("PTRACE_POKEUSER debug register",
                 ptrace(PTRACE_POKEUSER, tid_, reinterpret_cast<void*>(DebugRegisterOffset(index)),
                        reinterpret_cast<void*>(value)));
}

snapshot::Result<siginfo_t> TracedThread::SignalInfo() {
  siginfo_t info;
  if (auto r = Request("PTRACE_GETSIGINFO", ptrace(PTRACE_GETSIGINFO, tid_, nullptr, &info)); !r) {
    return std::unexpected(r.error());
  }
  return info;
}

snapshot::Result<void> WriteMemory(pid_t pid, uint64_t address, const void* data, size_t size) {
  iovec local{const_cast<void*>(data), size};
  iovec remote{reinterpret_cast<void*>(address), size};
  if (process_vm_writev(pid, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(size)) {
    return Fail(Code::kIo, "writing the target's memory: " + Errno());
  }
  return {};
}

snapshot::Result<void> ReadMemory(pid_t pid, uint64_t address, void* data, size_t size) {
  iovec local{data, size};
  iovec remote{reinterpret_cast<void*>(address), size};
  if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(size)) {
    return Fail(Code::kIo, "reading the target's memory: " + Errno());
  }
  return {};
}

}  // namespace tidemark::cli
