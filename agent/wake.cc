#include "agent/wake.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace tidemark::agent::wake {
namespace {

std::atomic<int> g_fd{-1};
std::atomic<bool> g_triggered{false};
std::mutex g_create;  // Never taken by a signal handler.

void Write(int fd) {
  const uint64_t one = 1;
  if (fd >= 0) (void)!write(fd, &one, sizeof one);
}

}  // namespace

int Fd() {
  int fd = g_fd.load();
  if (fd >= 0) return fd;
  std::lock_guard lock(g_create);
  fd = g_fd.load();
  if (fd < 0) {
    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    g_fd.store(fd);
  }
  return fd;
}

void Trigger() {
  g_triggered.store(true);
  Write(g_fd.load());
}

void Poke() { Write(g_fd.load()); }

bool TakeTrigger() {
  const int fd = g_fd.load();
  if (fd >= 0) {
    uint64_t count;
    (void)!read(fd, &count, sizeof count);
  }
  return g_triggered.exchange(false);
}

void CloseInherited() {
  const int fd = g_fd.exchange(-1);
  if (fd >= 0) close(fd);
  g_triggered.store(false);
}

void Forget() {
  g_fd.store(-1);
  g_triggered.store(false);
}

}  // namespace tidemark::agent::wake
