#include "agent/wake.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>

#include "agent/descriptors.h"

namespace tidemark::agent::wake {
namespace {

std::atomic<int> g_fd{-1};
// The eventfd's identity, set before g_fd is published.
std::atomic<uint64_t> g_device{0}, g_inode{0};
std::atomic<bool> g_triggered{false};
std::mutex g_create;  // Never taken by a signal handler.

// `fd` if it is still the eventfd made here, else -1.
int Checked(int fd) {
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_dev != g_device.load() || st.st_ino != g_inode.load()) {
    return -1;
  }
  return fd;
}

void Write(int fd) {
  const uint64_t one = 1;
  fd = Checked(fd);
  if (fd >= 0) (void)!write(fd, &one, sizeof one);
}

}  // namespace

int Fd() {
  int fd = g_fd.load();
  if (Checked(fd) >= 0) return fd;
  std::lock_guard lock(g_create);
  fd = g_fd.load();
  if (Checked(fd) >= 0) return fd;
  fd = MakeAboveStdio([] { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); });
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0) {
    g_device.store(st.st_dev);
    g_inode.store(st.st_ino);
  } else {
    fd = -1;
  }
  g_fd.store(fd);
  return fd;
}

void Trigger() {
  g_triggered.store(true);
  Write(g_fd.load());
}

void Poke() { Write(g_fd.load()); }

bool TakeTrigger() {
  const int fd = Checked(g_fd.load());
  if (fd >= 0) {
    uint64_t count;
    (void)!read(fd, &count, sizeof count);
  }
  return g_triggered.exchange(false);
}

void CloseInherited() {
  const int fd = Checked(g_fd.exchange(-1));
  if (fd >= 0) close(fd);
  g_triggered.store(false);
}

void Forget() {
  g_fd.store(-1);
  g_triggered.store(false);
}

}  // namespace tidemark::agent::wake
