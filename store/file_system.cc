#include "store/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace tidemark::store {
namespace {

std::unexpected<Error> SysFail(const std::string& what, const std::string& path, int err = errno) {
  return Fail(err == ENOENT ? snapshot::Code::kNotFound : snapshot::Code::kIo,
              what + " " + path + ": " + std::strerror(err));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  Result<void> Append(std::string_view a, std::string_view b) override {
    iovec parts[2] = {{const_cast<char*>(a.data()), a.size()},
                      {const_cast<char*>(b.data()), b.size()}};
    int first = 0;
    size_t left = a.size() + b.size();
    while (left > 0) {
      const ssize_t n = ::writev(fd_.get(), parts + first, 2 - first);
      if (n < 0) {
        if (errno == EINTR) continue;
        return SysFail("write", path_);
      }
      left -= static_cast<size_t>(n);
      for (size_t done = static_cast<size_t>(n); done > 0 && first < 2;) {
        const size_t step = std::min(done, parts[first].iov_len);
        parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + step;
        parts[first].iov_len -= step;
        done -= step;
        if (parts[first].iov_len == 0) ++first;
      }
      while (first < 2 && parts[first].iov_len == 0) ++first;
    }
    size_ += a.size() + b.size();
    return {};
  }

  Result<void> Truncate(uint64_t size) override {
    if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) return SysFail("truncate", path_);
    size_ = size;
    return {};
  }

  Result<void> Sync() override {
    if (::fdatasync(fd_.get()) != 0) return SysFail("sync", path_);
    return {};
  }

  uint64_t size() const override { return size_; }

 private:
  std::string path_;
  Fd fd_;
  uint64_t size_ = 0;
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}

 private:
  Fd fd_;
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> Create(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return SysFail("create", path);
    return std::make_unique<PosixWritableFile>(path, fd);
  }

  Result<std::string> Read(const std::string& path, uint64_t offset, uint64_t length) override {
    std::vector<std::string> out;
    const std::pair<uint64_t, uint64_t> range{offset, length};
    if (auto r = ReadLocked(path, {&range, 1}, out); !r) return std::unexpected(r.error());
    return std::move(out.front());
  }

  Result<std::vector<std::string>> ReadRanges(
      const std::string& path, std::span<const std::pair<uint64_t, uint32_t>> ranges) override {
    std::vector<std::pair<uint64_t, uint64_t>> wide(ranges.begin(), ranges.end());
    std::vector<std::string> out;
    if (auto r = ReadLocked(path, wide, out); !r) return std::unexpected(r.error());
    return out;
  }

 private:
  // Each of `ranges` (offset, length; length 0 = to EOF) of `path`, opened and locked once.
  static Result<void> ReadLocked(const std::string& path,
                                 std::span<const std::pair<uint64_t, uint64_t>> ranges,
                                 std::vector<std::string>& out) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return SysFail("open", path);
    while (::flock(fd.get(), LOCK_SH) != 0) {
      if (errno != EINTR) return SysFail("lock", path);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return SysFail("stat", path);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    for (const auto& [offset, length] : ranges) {
      std::string& bytes = out.emplace_back();
      if (offset > size) continue;
      uint64_t want = size - offset;
      if (length != 0 && length < want) want = length;
      bytes.resize(want);
      size_t done = 0;
      while (done < want) {
        const ssize_t n =
            ::pread(fd.get(), bytes.data() + done, want - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return SysFail("read", path);
        if (n == 0) break;
        done += static_cast<size_t>(n);
      }
      bytes.resize(done);
    }
    return {};
  }

 public:
  Result<uint64_t> Size(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return SysFail("stat", path);
    return static_cast<uint64_t>(st.st_size);
  }

  Result<uint64_t> NextData(const std::string& path, uint64_t offset) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return SysFail("open", path);
    const off_t at = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
    const int error = errno;
    struct stat st {};
    const bool sized = ::fstat(fd, &st) == 0;
    ::close(fd);
    if (at >= 0) return static_cast<uint64_t>(at);
    if (error == ENXIO && sized) return static_cast<uint64_t>(st.st_size);  // Only a hole left.
    return offset;  // SEEK_DATA unsupported: no hole is known.
  }

  Result<void> Truncate(const std::string& path, uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) return SysFail("truncate", path);
    return {};
  }

  Result<std::vector<std::string>> List(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return SysFail("list", dir);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    ::closedir(d);
    return names;
  }

  Result<void> CreateDirs(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Fail("create directory " + dir + ": " + ec.message());
    if (::access(dir.c_str(), W_OK) != 0) return SysFail("write to", dir);
    return {};
  }

  Result<void> Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return SysFail("rename", from + " to " + to);
    return {};
  }

  Result<void> SyncDir(const std::string& dir) override {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return SysFail("open", dir);
    if (::fsync(fd.get()) != 0) return SysFail("sync", dir);
    return {};
  }

  Result<bool> RemoveIfUnused(const std::string& path) override {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT) return true;
      return SysFail("open", path);
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return false;
      return SysFail("lock", path);
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return SysFail("remove", path);
    return true;
  }

  Result<std::unique_ptr<FileLock>> Lock(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return SysFail("open", path);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) return Fail(path + " is locked: another tidemarkd uses this store");
      return SysFail("lock", path, err);
    }
    return std::make_unique<PosixFileLock>(fd);
  }
};

}  // namespace

FileSystem& FileSystem::Default() {
  static PosixFileSystem fs;
  return fs;
}

}  // namespace tidemark::store
