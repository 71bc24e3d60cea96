#include "agent/descriptors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace tidemark::agent {
namespace {

struct Identity {
  dev_t device = 0;
  ino_t inode = 0;
  bool operator==(const Identity&) const = default;
};

std::optional<Identity> IdentityOf(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return std::nullopt;
  return Identity{st.st_dev, st.st_ino};
}

std::optional<Identity> IdentityAt(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  return Identity{st.st_dev, st.st_ino};
}

// A descriptor below 3 moved above 2; the low number is closed only while it is still ours.
int MoveAbove(int fd) {
  if (fd < 0 || fd >= 3) return fd;
  const auto made = IdentityOf(fd);
  const int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  const int saved = errno;
  if (made && IdentityOf(fd) == made) close(fd);
  errno = saved;
  return high;
}

// Reads from the start of `fd` into a string of at most `limit` bytes.
std::string ReadFrom(int fd, size_t limit) {
  std::string text(limit, '\0');
  size_t used = 0;
  while (used < text.size()) {
    const ssize_t n = ::pread(fd, text.data() + used, text.size() - used, static_cast<off_t>(used));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<size_t>(n);
  }
  text.resize(used);
  return text;
}

struct KeptFile {
  std::string path;  // Empty: a free entry.
  int fd = -1;
  Identity identity;
};

constexpr size_t kKeptFiles = 16;
std::mutex g_kept_mutex;
std::array<KeptFile, kKeptFiles> g_kept;  // GUARDED_BY(g_kept_mutex)

}  // namespace

int MakeAboveStdio(const std::function<int()>& make) { return MoveAbove(make()); }

int OpenAboveStdio(const char* path, int flags) {
  return MakeAboveStdio([&] { return ::open(path, flags | O_CLOEXEC); });
}

std::optional<std::string> ReadSmallFile(const char* path, size_t limit) {
  const int fd = OpenAboveStdio(path, O_RDONLY);
  if (fd < 0) return std::nullopt;
  std::string text = ReadFrom(fd, limit);
  ::close(fd);
  return text;
}

std::optional<std::string> ReadKeptFile(const std::string& path, size_t limit) {
  std::lock_guard lock(g_kept_mutex);
  KeptFile* kept = nullptr;
  for (KeptFile& k : g_kept) {
    if (k.path == path) kept = &k;
  }
  for (KeptFile& k : g_kept) {
    if (kept == nullptr && k.path.empty()) (kept = &k)->path = path;
  }
  if (kept == nullptr) return ReadSmallFile(path.c_str(), limit);  // For a fixed few only.
  if (kept->fd >= 0 && IdentityOf(kept->fd) != kept->identity) kept->fd = -1;  // Not ours now.
  if (kept->fd >= 0 && IdentityAt(path) != kept->identity) {  // The path names another file.
    close(kept->fd);
    kept->fd = -1;
  }
  if (kept->fd < 0) {
    kept->fd = OpenAboveStdio(path.c_str(), O_RDONLY);
    if (kept->fd < 0) return std::nullopt;
    kept->identity = IdentityOf(kept->fd).value_or(Identity{});
  }
  return ReadFrom(kept->fd, limit);
}

void ForgetParentsProcFiles() {
  std::lock_guard lock(g_kept_mutex);
  for (KeptFile& k : g_kept) {
    if (k.fd < 0 || k.path.rfind("/proc/self/", 0) != 0) continue;
    if (IdentityOf(k.fd) == k.identity) close(k.fd);
    k.fd = -1;
  }
}

}  // namespace tidemark::agent
