// The store's only way to touch files: a seam so tests inject faults (a full disk, a failed
// sync) into the real code paths, as leveldb's Env does.
//
// Default() is the POSIX implementation. Every call reports failure as a value naming the
// path and the system error. Thread-safety: FileSystem methods are safe to call from any
// thread; a WritableFile is used by one thread at a time, except Sync(), which may run on
// another thread concurrently with Append() (as fdatasync may).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "snapshot/result.h"

namespace tidemark::store {

using snapshot::Error;
using snapshot::Fail;
using snapshot::Result;

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Appends all of `a` then `b`, or fails; after a failure the file may hold part of them
  // (the caller truncates back to size()).
  virtual Result<void> Append(std::string_view a, std::string_view b = {}) = 0;
  virtual Result<void> Truncate(uint64_t size) = 0;
  virtual Result<void> Sync() = 0;    // fdatasync.
  virtual uint64_t size() const = 0;  // Bytes known written, i.e. after the last success.
};

// Held while the store is open for writing; released on destruction.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  static FileSystem& Default();

  // REQUIRES: `path` does not exist (O_EXCL): a store never reopens a file for writing.
  virtual Result<std::unique_ptr<WritableFile>> Create(const std::string& path) = 0;
  // The bytes [offset, offset + length) of `path` (fewer at end of file), read under a
  // shared lock so that RemoveIfUnused() cannot remove the file meanwhile. length 0 = to EOF.
  virtual Result<std::string> Read(const std::string& path, uint64_t offset = 0,
                                   uint64_t length = 0) = 0;
  // Read of each of `ranges` (offset, length), in that order; the POSIX one opens and locks the
  // file once.
  virtual Result<std::vector<std::string>> ReadRanges(
      const std::string& path, std::span<const std::pair<uint64_t, uint32_t>> ranges) {
    std::vector<std::string> out;
    for (const auto& [offset, length] : ranges) {
      auto bytes = Read(path, offset, length);
      if (!bytes) return std::unexpected(bytes.error());
      out.push_back(std::move(*bytes));
    }
    return out;
  }
  virtual Result<uint64_t> Size(const std::string& path) = 0;
  // The first offset at or after `offset` that is not in a hole of a sparse file (holes read
  // as zeros), or the file's size if none is; `offset` where holes are not known.
  virtual Result<uint64_t> NextData(const std::string& path, uint64_t offset) {
    (void)path;
    return offset;
  }
  virtual Result<void> Truncate(const std::string& path, uint64_t size) = 0;
  virtual Result<std::vector<std::string>> List(const std::string& dir) = 0;  // Names only.
  virtual Result<void> CreateDirs(const std::string& dir) = 0;
  virtual Result<void> Rename(const std::string& from, const std::string& to) = 0;
  virtual Result<void> SyncDir(const std::string& dir) = 0;
  // Removes `path` unless a reader holds it; returns whether it was removed.
  virtual Result<bool> RemoveIfUnused(const std::string& path) = 0;
  // An exclusive lock on `path` (created if missing); fails if another process holds it.
  virtual Result<std::unique_ptr<FileLock>> Lock(const std::string& path) = 0;
};

}  // namespace tidemark::store
