// Reading the framed records of one store file (store/log_format.h) in bounded memory, past
// damage.
//
// The file is read through a window of kScanWindowBytes, or one record when a record is larger,
// never more than ScanOptions::max_record_bytes at once, whatever size the file claims (a 40 GB
// sparse file costs a window, not 40 GB). A record that fails its length or CRC check is not
// taken for the end of the file: the scan looks for the next offset where an intact record
// starts (its payload's first bytes plausible, its CRC right) and carries on from there, so one
// flipped byte costs the records it touches, not every record after them. The regions skipped
// between intact records are reported as damage; only damage with no intact record after it is
// a torn tail, the one thing a crash leaves in an append-only file.
//
// Thread-safety: reentrant; reads files through the FileSystem given.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "store/file_system.h"
#include "store/log_format.h"

namespace tidemark::store {

inline constexpr uint64_t kScanWindowBytes = uint64_t{1} << 20;

// A region [begin, end) of a file that holds no intact record, followed by one that does.
struct Damage {
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct ScanOptions {
  uint64_t max_record_bytes = kMaxRecordBytes;
  // Whether a payload may start with `head` (its first bytes, at most 16): checked before the
  // CRC, so resynchronizing after damage rarely computes one. Empty: any payload.
  std::function<bool(std::string_view head)> plausible;
};

struct ScanOutcome {
  uint64_t end = 0;             // After the last intact record: anything later is a torn tail.
  std::vector<Damage> damaged;  // Skipped, each followed by an intact record.
};

// Visits the intact records of `path` from file offset `from` to `size` (the file's size, or
// less), in order, with their file offsets.
Result<ScanOutcome> ScanFile(FileSystem& fs, const std::string& path, uint64_t from, uint64_t size,
                             const ScanOptions& options,
                             const std::function<void(uint64_t offset, std::string_view)>& visit);

// The same over bytes already in memory that start at file offset `base`.
ScanOutcome ScanBytes(std::string_view bytes, uint64_t base, const ScanOptions& options,
                      const std::function<void(uint64_t offset, std::string_view)>& visit);

// Payloads whose first byte is one of `tags`.
std::function<bool(std::string_view)> TagIs(std::string_view tags);

}  // namespace tidemark::store
