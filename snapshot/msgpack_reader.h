// MsgpackReader: a bounded pull reader over one msgpack buffer.
//
// Why not msgpack::unpack: it builds a tree of msgpack::object for the whole input (tens of
// bytes per integer for a graph of millions of objects) and preallocates declared counts.
// This reader allocates nothing: every array or map count it returns has been checked
// against the bytes left (each element takes at least one byte), so callers may reserve()
// that many elements safely. Thread-safety: one reader per thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "snapshot/result.h"

namespace tidemark::snapshot {

class MsgpackReader {
 public:
  // `what` prefixes every error message ("header", "body").
  MsgpackReader(std::string_view data, std::string what) : data_(data), what_(std::move(what)) {}

  bool AtEnd() const { return pos_ == data_.size(); }
  size_t position() const { return pos_; }

  Result<uint32_t> ReadMapHeader();
  Result<uint32_t> ReadArrayHeader();
  // Inline for the common case (a fixint: most graph columns are small deltas).
  Result<uint64_t> ReadUint() {
    if (pos_ < data_.size() && static_cast<uint8_t>(data_[pos_]) <= 0x7f) {
      return static_cast<uint8_t>(data_[pos_++]);
    }
    return ReadUintSlow();
  }
  Result<int64_t> ReadInt() {
    if (pos_ < data_.size()) {
      const uint8_t t = static_cast<uint8_t>(data_[pos_]);
      if (t <= 0x7f || t >= 0xe0) {
        ++pos_;
        return static_cast<int64_t>(static_cast<int8_t>(t));  // Positive or negative fixint.
      }
    }
    return ReadIntSlow();
  }
  Result<double> ReadDouble();  // Accepts float, double and integers.
  Result<bool> ReadBool();
  Result<std::string_view> ReadStr();
  bool NextIsNil() const;
  // Skips one value of any type, nested at most `max_depth` deep.
  Result<void> Skip(int max_depth = 32);

 private:
  std::unexpected<Error> Bad(const std::string& why) const;
  Result<uint64_t> ReadUintSlow();
  Result<int64_t> ReadIntSlow();
  Result<uint8_t> Byte();
  Result<uint64_t> BigEndian(size_t width);
  Result<uint32_t> CheckedCount(uint64_t count, size_t min_element_bytes);

  std::string_view data_;
  std::string what_;
  size_t pos_ = 0;
};

}  // namespace tidemark::snapshot
