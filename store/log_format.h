// The byte layout shared by every store file: a file header, then length + CRC framed records.
//
//   file header (16 bytes)
//     offset  size  field
//          0     4  magic: "TDMS" segment, "TDMI" index, "TDMT" type series
//          4     4  kStoreFormatVersion, little-endian
//          8     8  created, ns since the Unix epoch, little-endian
//   record (repeated until end of file)
//          0     4  L: payload length, little-endian, 1 .. kMaxRecordBytes
//          4     4  CRC-32C (Castagnoli) of the payload, little-endian
//          8     L  payload (its first byte says what it is; see store.h)
//
// Files are append-only and never reopened for writing, so a record that fails its length
// or CRC check can only be the torn tail of a write cut short: it and everything after it are
// ignored by readers and truncated by the writer's recovery. Integers in payloads are
// little-endian; strings are a u32 length then bytes.
//
// Thread-safety: reentrant functions over values.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "snapshot/result.h"

namespace tidemark::store {

inline constexpr uint32_t kStoreFormatVersion = 1;
inline constexpr size_t kFileHeaderSize = 16;
inline constexpr size_t kRecordHeaderSize = 8;
inline constexpr uint32_t kMaxRecordBytes = 0xFFFFFFF0u;

uint32_t Crc32c(std::string_view data);
// The CRC-32C of the concatenation: Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
uint32_t Crc32cExtend(uint32_t crc, std::string_view data);

std::string FileHeader(std::string_view magic, int64_t created_ns);
// The creation time, or an error naming what is wrong.
snapshot::Result<int64_t> ReadFileHeader(std::string_view bytes, std::string_view magic);

std::string RecordHeader(std::string_view payload);

// Calls visit(offset, payload) for each intact record of `bytes`, which starts at file
// offset `base`; stops at the first torn or corrupt one. Returns the file offset where the
// intact records end.
uint64_t ScanRecords(std::string_view bytes, uint64_t base,
                     const std::function<void(uint64_t offset, std::string_view payload)>& visit);

// Little-endian payload building and bounds-checked reading.
class PayloadWriter {
 public:
  PayloadWriter& U8(uint8_t v) { return Fixed(v, 1); }
  PayloadWriter& U32(uint32_t v) { return Fixed(v, 4); }
  PayloadWriter& U64(uint64_t v) { return Fixed(v, 8); }
  PayloadWriter& I64(int64_t v) { return Fixed(static_cast<uint64_t>(v), 8); }
  PayloadWriter& Var(uint64_t v) {  // LEB128: 7 bits a byte, small numbers in one byte.
    for (; v >= 0x80; v >>= 7) out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  PayloadWriter& Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
    return *this;
  }
  std::string& bytes() { return out_; }

 private:
  PayloadWriter& Fixed(uint64_t v, int width) {
    for (int i = 0; i < width; ++i) out_.push_back(static_cast<char>(v >> (8 * i)));
    return *this;
  }
  std::string out_;
};

// Reads fields in order; after any read past the end, ok() is false and values are 0.
class PayloadReader {
 public:
  explicit PayloadReader(std::string_view bytes) : bytes_(bytes) {}
  uint8_t U8() { return static_cast<uint8_t>(Fixed(1)); }
  uint32_t U32() { return static_cast<uint32_t>(Fixed(4)); }
  uint64_t U64() { return Fixed(8); }
  int64_t I64() { return static_cast<int64_t>(Fixed(8)); }
  uint64_t Var();
  std::string Str();
  bool ok() const { return ok_; }
  bool at_end() const { return at_ == bytes_.size(); }

 private:
  uint64_t Fixed(int width);
  std::string_view bytes_;
  size_t at_ = 0;
  bool ok_ = true;
};

}  // namespace tidemark::store
