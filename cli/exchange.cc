#include "cli/exchange.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace tidemark::cli {
namespace {

using snapshot::Code;
using snapshot::Fail;

std::string RandomName() {
  uint8_t bytes[8] = {};
  if (getrandom(bytes, sizeof(bytes), 0) != sizeof(bytes)) {
    const uint64_t fallback =
        static_cast<uint64_t>(getpid()) * 2654435761u ^ uint64_t(time(nullptr));
    std::memcpy(bytes, &fallback, sizeof(bytes));
  }
  std::ostringstream name;
  name << "tidemark-attach-";
  for (uint8_t b : bytes) name << "0123456789abcdef"[b >> 4] << "0123456789abcdef"[b & 15];
  return name.str();
}

}  // namespace

snapshot::Result<Exchange> Exchange::Create(pid_t pid, uid_t uid, gid_t gid,
                                            const std::vector<std::string>& names) {
  Exchange exchange;
  const std::string tmp = "/proc/" + std::to_string(pid) + "/root/tmp";
  exchange.tmp_ = open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (exchange.tmp_ < 0) {
    return Fail(Code::kIo, "cannot open the target's /tmp (" + tmp + "): " + std::strerror(errno));
  }
  exchange.name_ = RandomName();
  if (mkdirat(exchange.tmp_, exchange.name_.c_str(), 0700) != 0) {
    return Fail(Code::kIo, "cannot make a directory in " + tmp + ": " + std::strerror(errno));
  }
  exchange.dir_ = openat(exchange.tmp_, exchange.name_.c_str(),
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (exchange.dir_ < 0 || fstat(exchange.dir_, &st) != 0 || st.st_uid != geteuid() ||
      fchmod(exchange.dir_, 0755) != 0) {
    return Fail(Code::kIo, "cannot open the directory made in " + tmp);
  }
  for (const std::string& name : names) {
    const int fd = openat(exchange.dir_, name.c_str(),
                          O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Fail(Code::kIo, "cannot make " + name + ": " + std::strerror(errno));
    exchange.files_[name] = fd;
    if (uid != geteuid() && fchown(fd, uid, gid) != 0) {
      return Fail(Code::kIo, "cannot give " + name + " to uid " + std::to_string(uid) + ": " +
                                 std::strerror(errno));
    }
  }
  return exchange;
}

Exchange::Exchange(Exchange&& other) noexcept
    : tmp_(other.tmp_),
      dir_(other.dir_),
      name_(std::move(other.name_)),
      files_(std::move(other.files_)) {
  other.tmp_ = other.dir_ = -1;
  other.files_.clear();
}

Exchange::~Exchange() {
  for (const auto& [name, fd] : files_) {
    if (dir_ >= 0) unlinkat(dir_, name.c_str(), 0);
    close(fd);
  }
  if (dir_ >= 0) close(dir_);
  if (tmp_ >= 0) {
    if (!name_.empty()) unlinkat(tmp_, name_.c_str(), AT_REMOVEDIR);
    close(tmp_);
  }
}

std::string Exchange::TargetPath(const std::string& name) const {
  return "/tmp/" + name_ + "/" + name;
}

snapshot::Result<int> Exchange::Descriptor(const std::string& name) const {
  auto it = files_.find(name);
  if (it == files_.end()) return Fail(Code::kNotFound, "no exchange file " + name);
  return it->second;
}

snapshot::Result<uint64_t> Exchange::Size(const std::string& name) const {
  auto fd = Descriptor(name);
  if (!fd) return std::unexpected(fd.error());
  struct stat st;
  if (fstat(*fd, &st) != 0) return Fail(Code::kIo, name + ": " + std::strerror(errno));
  return static_cast<uint64_t>(st.st_size);
}

snapshot::Result<Exchange::Bounded> Exchange::Within(const std::string& name,
                                                     uint64_t limit) const {
  auto fd = Descriptor(name);
  if (!fd) return std::unexpected(fd.error());
  auto size = Size(name);
  if (!size) return std::unexpected(size.error());
  if (*size > limit) {
    return Fail(Code::kLimit, name + " holds " + std::to_string(*size) + " bytes, over the " +
                                  std::to_string(limit) + " accepted");
  }
  return Bounded{*fd, *size};
}

snapshot::Result<uint64_t> Exchange::CopyTo(const std::string& name, int out,
                                            uint64_t limit) const {
  auto file = Within(name, limit);
  if (!file) return std::unexpected(file.error());
  std::vector<char> buffer(1 << 20);
  uint64_t done = 0;
  while (done < file->size) {
    const ssize_t n =
        pread(file->fd, buffer.data(), std::min<uint64_t>(buffer.size(), file->size - done),
              static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // Shortened meanwhile: what was there is what it wrote.
    for (ssize_t written = 0; written < n;) {
      const ssize_t w = write(out, buffer.data() + written, static_cast<size_t>(n - written));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return Fail(Code::kIo, std::string("write: ") + std::strerror(errno));
      written += w;
    }
    done += static_cast<uint64_t>(n);
  }
  return done;
}

snapshot::Result<std::string> Exchange::Read(const std::string& name, uint64_t limit) const {
  auto file = Within(name, limit);
  if (!file) return std::unexpected(file.error());
  std::string text(file->size, '\0');
  const ssize_t n = pread(file->fd, text.data(), text.size(), 0);
  if (n < 0) return Fail(Code::kIo, name + ": " + std::strerror(errno));
  text.resize(static_cast<size_t>(n));
  return text;
}

bool Exchange::TryLock(const std::string& name) const {
  auto fd = Descriptor(name);
  return fd && flock(*fd, LOCK_EX | LOCK_NB) == 0;
}

void Exchange::Unlink(const std::string& name) const {
  if (files_.count(name)) unlinkat(dir_, name.c_str(), 0);
}

}  // namespace tidemark::cli
