#include "store/record_scan.h"

#include <algorithm>
#include <cstring>
#include <optional>

namespace tidemark::store {
namespace {

uint32_t LoadU32(std::string_view bytes, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[at + i]);
  return v;
}

// Bytes of a file by offset: a view of memory, or a window read from the file system.
class Source {
 public:
  Source(std::string_view memory, uint64_t base) : memory_(memory), base_(base) {}
  Source(FileSystem& fs, const std::string& path) : fs_(&fs), path_(&path) {}

  // The first offset at or after `offset` that may hold data: holes of a sparse file are
  // skipped without reading them.
  Result<uint64_t> NextData(uint64_t offset) {
    if (fs_ == nullptr) return offset;
    return fs_->NextData(*path_, offset);
  }

  // Up to `n` bytes at `offset` (fewer at the end of the data).
  Result<std::string_view> Get(uint64_t offset, uint64_t n, uint64_t size) {
    if (fs_ == nullptr) {
      if (offset < base_ || offset - base_ >= memory_.size()) return std::string_view();
      return memory_.substr(offset - base_, n);
    }
    n = std::min(n, size - std::min(size, offset));
    if (offset >= window_at_ && offset + n <= window_at_ + window_.size()) {
      return std::string_view(window_).substr(offset - window_at_, n);
    }
    const uint64_t length = std::min(std::max(n, kScanWindowBytes), size - offset);
    if (length == 0) return std::string_view();
    auto read = fs_->Read(*path_, offset, length);
    if (!read) return std::unexpected(read.error());
    window_ = std::move(*read);
    window_at_ = offset;
    return std::string_view(window_).substr(0, n);
  }

 private:
  std::string_view memory_;
  uint64_t base_ = 0;
  FileSystem* fs_ = nullptr;
  const std::string* path_ = nullptr;
  std::string window_;
  uint64_t window_at_ = 0;
};

// The record at `at`, if an intact one starts there.
Result<std::optional<std::string_view>> RecordAt(Source& source, uint64_t at, uint64_t size,
                                                 const ScanOptions& options) {
  auto header = source.Get(at, kRecordHeaderSize + 16, size);
  if (!header) return std::unexpected(header.error());
  if (header->size() < kRecordHeaderSize) return std::optional<std::string_view>();
  const uint64_t length = LoadU32(*header, 0);
  const uint32_t crc = LoadU32(*header, 4);
  if (length == 0 || length > options.max_record_bytes || length > size - at - kRecordHeaderSize)
    return std::optional<std::string_view>();
  if (options.plausible &&
      !options.plausible(header->substr(kRecordHeaderSize, std::min<uint64_t>(length, 16)))) {
    return std::optional<std::string_view>();
  }
  auto record = source.Get(at, kRecordHeaderSize + length, size);
  if (!record) return std::unexpected(record.error());
  if (record->size() < kRecordHeaderSize + length) return std::optional<std::string_view>();
  const std::string_view payload = record->substr(kRecordHeaderSize);
  if (Crc32c(payload) != crc) return std::optional<std::string_view>();
  return std::optional<std::string_view>(payload);
}

// Where to look next after `at`, which holds no record: past a run of zero bytes at once (a
// zero length is never a record; sparse and zero-filled files are common damage).
Result<uint64_t> NextCandidate(Source& source, uint64_t at, uint64_t size) {
  auto bytes = source.Get(at, kScanWindowBytes, size);
  if (!bytes) return std::unexpected(bytes.error());
  size_t zeros = 0;
  uint64_t word = 0;
  while (zeros + 8 <= bytes->size() && (std::memcpy(&word, bytes->data() + zeros, 8), word == 0)) {
    zeros += 8;
  }
  while (zeros < bytes->size() && (*bytes)[zeros] == 0) ++zeros;
  if (zeros == bytes->size() && zeros > 0) {
    // Zeros to the end of the window: a hole, perhaps, to skip without reading it.
    auto data = source.NextData(at + zeros);
    if (!data) return std::unexpected(data.error());
    return std::max(at + zeros - std::min<uint64_t>(zeros, 3), std::min(*data, size));
  }
  // A record's length field may have up to three zero bytes before its first non-zero one.
  return at + std::max<uint64_t>(1, zeros > 3 ? zeros - 3 : 1);
}

Result<ScanOutcome> Scan(Source& source, uint64_t from, uint64_t size, const ScanOptions& options,
                         const std::function<void(uint64_t, std::string_view)>& visit) {
  ScanOutcome outcome;
  outcome.end = from;
  uint64_t at = from;
  constexpr uint64_t kIntact = UINT64_MAX;
  uint64_t damaged_from = kIntact;  // Where the damage being skipped began.
  while (size > at && size - at >= kRecordHeaderSize) {
    auto record = RecordAt(source, at, size, options);
    if (!record) return std::unexpected(record.error());
    if (*record) {
      if (damaged_from != kIntact) outcome.damaged.push_back({damaged_from, at});
      damaged_from = kIntact;
      visit(at, **record);
      at += kRecordHeaderSize + (*record)->size();
      outcome.end = at;
      continue;
    }
    if (damaged_from == kIntact) damaged_from = at;
    auto next = NextCandidate(source, at, size);
    if (!next) return std::unexpected(next.error());
    at = *next;
  }
  return outcome;
}

}  // namespace

Result<ScanOutcome> ScanFile(FileSystem& fs, const std::string& path, uint64_t from, uint64_t size,
                             const ScanOptions& options,
                             const std::function<void(uint64_t, std::string_view)>& visit) {
  Source source(fs, path);
  return Scan(source, from, size, options, visit);
}

ScanOutcome ScanBytes(std::string_view bytes, uint64_t base, const ScanOptions& options,
                      const std::function<void(uint64_t, std::string_view)>& visit) {
  Source source(bytes, base);
  return *Scan(source, base, base + bytes.size(), options, visit);  // Memory cannot fail.
}

std::function<bool(std::string_view)> TagIs(std::string_view tags) {
  return [tags = std::string(tags)](std::string_view head) {
    return !head.empty() && tags.find(head[0]) != std::string::npos;
  };
}

}  // namespace tidemark::store
