// One thread of another process under ptrace(PTRACE_SEIZE): a small move-only owner that
// detaches in its destructor, with the few requests the injector (cli/injector.h) makes.
// x86-64 Linux only.
//
// Registers are the general ones (user_regs_struct) and the whole extended state
// (NT_X86_XSTATE: x87, SSE, AVX, AVX-512, AMX tiles, PKRU...) in a buffer of exactly the size
// the kernel reports for this machine, which is the only size it accepts back; a machine whose
// kernel exposes no extended state (no XSAVE) falls back to the 512-byte FXSAVE area.
//
// Thread-safety: one TracedThread is used by the thread that seized it (ptrace's rule).
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/user.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "snapshot/result.h"

namespace tidemark::cli {

using Deadline = std::chrono::steady_clock::time_point;

// What a traced thread stopped for (waitpid's status, decoded).
struct Stop {
  enum class Kind {
    kInterrupt,  // PTRACE_EVENT_STOP: our PTRACE_INTERRUPT, or a group-stop (signal != SIGTRAP).
    kSignal,     // Signal-delivery-stop: `signal` is about to be delivered.
    kSyscall,    // Syscall-entry or -exit stop (PTRACE_SYSCALL with PTRACE_O_TRACESYSGOOD).
    kGone,       // The thread (or the whole process) exited or was killed.
  };
  Kind kind = Kind::kGone;
  int signal = 0;
};

// The extended register state, as the kernel hands it out.
struct ExtendedState {
  bool xsave = true;  // false: the FXSAVE area (PTRACE_GETFPREGS).
  std::vector<uint8_t> bytes;
};

class TracedThread {
 public:
  // Attaches to thread `tid` without stopping it (PTRACE_SEIZE, PTRACE_O_TRACESYSGOOD).
  static snapshot::Result<TracedThread> Seize(pid_t tid);

  TracedThread(TracedThread&& other) noexcept : tid_(other.tid_) { other.tid_ = 0; }
  TracedThread& operator=(TracedThread&& other) noexcept;
  TracedThread(const TracedThread&) = delete;
  TracedThread& operator=(const TracedThread&) = delete;
  ~TracedThread() { Detach(0); }

  pid_t tid() const { return tid_; }

  snapshot::Result<void> Interrupt();
  // The next stop, waiting until `deadline` (kIo "did not stop" past it).
  snapshot::Result<Stop> Wait(Deadline deadline);
  // Syscall stops: true at an entry, false at an exit (PTRACE_GET_SYSCALL_INFO).
  snapshot::Result<bool> AtSyscallEntry();
  // Resumes it: PTRACE_CONT, or PTRACE_SYSCALL to stop at the next syscall entry or exit.
  snapshot::Result<void> Continue(int signal, bool to_syscall = false);
  // Executes one instruction (PTRACE_SINGLESTEP), then stops with SIGTRAP.
  snapshot::Result<void> Step();
  // Detaches (letting `signal` be delivered, 0 for none). Idempotent.
  void Detach(int signal);

  snapshot::Result<user_regs_struct> Registers();
  snapshot::Result<void> SetRegisters(const user_regs_struct& regs);
  snapshot::Result<ExtendedState> Extended();
  snapshot::Result<void> SetExtended(const ExtendedState& state);

  // Debug register `index` (0-7), through the user area.
  snapshot::Result<uint64_t> DebugRegister(int index);
  snapshot::Result<void> SetDebugRegister(int index, uint64_t value);
  snapshot::Result<siginfo_t> SignalInfo();

 private:
  explicit TracedThread(pid_t tid) : tid_(tid) {}
  snapshot::Result<void> Request(const char* what, long result);

  pid_t tid_ = 0;
};

// Copies bytes into or out of another process's memory (process_vm_writev / readv).
snapshot::Result<void> WriteMemory(pid_t pid, uint64_t address, const void* data, size_t size);
snapshot::Result<void> ReadMemory(pid_t pid, uint64_t address, void* data, size_t size);

}  // namespace tidemark::cli
