#include "snapshot/msgpack_reader.h"

#include <bit>
#include <cstring>

namespace tidemark::snapshot {

std::unexpected<Error> MsgpackReader::Bad(const std::string& why) const {
  return Fail(what_ + ": " + why + " at byte " + std::to_string(pos_));
}

Result<uint8_t> MsgpackReader::Byte() {
  if (pos_ >= data_.size()) return Bad("truncated");
  return static_cast<uint8_t>(data_[pos_++]);
}

Result<uint64_t> MsgpackReader::BigEndian(size_t width) {
  if (data_.size() - pos_ < width) return Bad("truncated");
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<uint8_t>(data_[pos_ + i]);
  pos_ += width;
  return v;
}

Result<uint32_t> MsgpackReader::CheckedCount(uint64_t count, size_t min_element_bytes) {
  if (count > (data_.size() - pos_) / min_element_bytes) {
    return Bad("declared count " + std::to_string(count) + " exceeds the bytes left");
  }
  return static_cast<uint32_t>(count);
}

Result<uint32_t> MsgpackReader::ReadMapHeader() {
  auto b = Byte();
  if (!b) return std::unexpected(b.error());
  uint64_t n;
  if ((*b & 0xf0) == 0x80) {
    n = *b & 0x0f;
  } else if (*b == 0xde || *b == 0xdf) {
    auto v = BigEndian(*b == 0xde ? 2 : 4);
    if (!v) return std::unexpected(v.error());
    n = *v;
  } else {
    --pos_;
    return Bad("expected a map");
  }
  return CheckedCount(n, 2);
}

Result<uint32_t> MsgpackReader::ReadArrayHeader() {
  auto b = Byte();
  if (!b) return std::unexpected(b.error());
  uint64_t n;
  if ((*b & 0xf0) == 0x90) {
    n = *b & 0x0f;
  } else if (*b == 0xdc || *b == 0xdd) {
    auto v = BigEndian(*b == 0xdc ? 2 : 4);
    if (!v) return std::unexpected(v.error());
    n = *v;
  } else {
    --pos_;
    return Bad("expected an array");
  }
  return CheckedCount(n, 1);
}

Result<int64_t> MsgpackReader::ReadIntSlow() {
  if (pos_ >= data_.size()) return Bad("truncated");
  const uint8_t t = static_cast<uint8_t>(data_[pos_]);
  if (t <= 0x7f) return static_cast<int64_t>(data_[pos_++]);
  if (t >= 0xe0) return static_cast<int64_t>(static_cast<int8_t>(data_[pos_++]));
  // 0xcc..0xcf: uint 8/16/32/64; 0xd0..0xd3: int 8/16/32/64.
  if (t < 0xcc || t > 0xd3) return Bad("expected an integer");
  const bool is_signed = t >= 0xd0;
  const size_t width = size_t{1} << (t - (is_signed ? 0xd0 : 0xcc));
  if (data_.size() - pos_ - 1 < width) return Bad("truncated");
  const auto* p = reinterpret_cast<const uint8_t*>(data_.data()) + pos_ + 1;
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v = (v << 8) | p[i];
  pos_ += 1 + width;
  if (!is_signed) {
    if (width == 8 && v > static_cast<uint64_t>(INT64_MAX)) {
      pos_ -= 1 + width;
      return Bad("integer out of range");
    }
    return static_cast<int64_t>(v);
  }
  const int shift = 64 - static_cast<int>(width) * 8;
  return static_cast<int64_t>(v << shift) >> shift;  // Sign-extend.
}

Result<uint64_t> MsgpackReader::ReadUintSlow() {
  const size_t start = pos_;
  if (pos_ < data_.size() && static_cast<uint8_t>(data_[pos_]) == 0xcf) {
    ++pos_;
    return BigEndian(8);
  }
  auto v = ReadInt();
  if (!v) return std::unexpected(v.error());
  if (*v < 0) {
    pos_ = start;
    return Bad("expected a non-negative integer");
  }
  return static_cast<uint64_t>(*v);
}

Result<double> MsgpackReader::ReadDouble() {
  if (pos_ < data_.size()) {
    const uint8_t t = static_cast<uint8_t>(data_[pos_]);
    if (t == 0xca || t == 0xcb) {
      ++pos_;
      auto v = BigEndian(t == 0xca ? 4 : 8);
      if (!v) return std::unexpected(v.error());
      if (t == 0xca) return static_cast<double>(std::bit_cast<float>(static_cast<uint32_t>(*v)));
      return std::bit_cast<double>(*v);
    }
  }
  auto i = ReadInt();
  if (!i) return std::unexpected(i.error());
  return static_cast<double>(*i);
}

Result<bool> MsgpackReader::ReadBool() {
  auto b = Byte();
  if (!b) return std::unexpected(b.error());
  if (*b == 0xc2) return false;
  if (*b == 0xc3) return true;
  --pos_;
  return Bad("expected a boolean");
}

Result<std::string_view> MsgpackReader::ReadStr() {
  auto b = Byte();
  if (!b) return std::unexpected(b.error());
  uint64_t n;
  if ((*b & 0xe0) == 0xa0) {
    n = *b & 0x1f;
  } else if (*b == 0xd9 || *b == 0xda || *b == 0xdb) {
    auto v = BigEndian(*b == 0xd9 ? 1 : *b == 0xda ? 2 : 4);
    if (!v) return std::unexpected(v.error());
    n = *v;
  } else {
    --pos_;
    return Bad("expected a string");
  }
  if (n > data_.size() - pos_) return Bad("truncated string");
  std::string_view s = data_.substr(pos_, n);
  pos_ += n;
  return s;
}

bool MsgpackReader::NextIsNil() const {
  return pos_ < data_.size() && static_cast<uint8_t>(data_[pos_]) == 0xc0;
}

Result<void> MsgpackReader::Skip(int max_depth) {
  if (max_depth <= 0) return Bad("nesting too deep");
  if (pos_ >= data_.size()) return Bad("truncated");
  const uint8_t t = static_cast<uint8_t>(data_[pos_]);
  auto skip_bytes = [&](uint64_t n) -> Result<void> {
    if (n > data_.size() - pos_) return Bad("truncated");
    pos_ += n;
    return {};
  };
  if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
    ++pos_;
    return {};
  }
  if ((t & 0xe0) == 0xa0 || t == 0xd9 || t == 0xda || t == 0xdb) {
    auto s = ReadStr();
    if (!s) return std::unexpected(s.error());
    return {};
  }
  if ((t & 0xf0) == 0x90 || t == 0xdc || t == 0xdd) {
    auto n = ReadArrayHeader();
    if (!n) return std::unexpected(n.error());
    for (uint32_t i = 0; i < *n; ++i) {
      if (auto r = Skip(max_depth - 1); !r) return r;
    }
    return {};
  }
  if ((t & 0xf0) == 0x80 || t == 0xde || t == 0xdf) {
    auto n = ReadMapHeader();
    if (!n) return std::unexpected(n.error());
    for (uint64_t i = 0; i < uint64_t{*n} * 2; ++i) {
      if (auto r = Skip(max_depth - 1); !r) return r;
    }
    return {};
  }
  ++pos_;
  switch (t) {
    case 0xcc:
    case 0xd0:
      return skip_bytes(1);
    case 0xcd:
    case 0xd1:
      return skip_bytes(2);
    case 0xce:
    case 0xd2:
    case 0xca:
      return skip_bytes(4);
    case 0xcf:
    case 0xd3:
    case 0xcb:
      return skip_bytes(8);
    case 0xc4:
    case 0xc5:
    case 0xc6: {  // bin 8/16/32
      auto n = BigEndian(t == 0xc4 ? 1 : t == 0xc5 ? 2 : 4);
      if (!n) return std::unexpected(n.error());
      return skip_bytes(*n);
    }
    case 0xd4:
      return skip_bytes(2);  // fixext 1..16: type byte + data
    case 0xd5:
      return skip_bytes(3);
    case 0xd6:
      return skip_bytes(5);
    case 0xd7:
      return skip_bytes(9);
    case 0xd8:
      return skip_bytes(17);
    case 0xc7:
    case 0xc8:
    case 0xc9: {
      auto n = BigEndian(t == 0xc7 ? 1 : t == 0xc8 ? 2 : 4);
      if (!n) return std::unexpected(n.error());
      return skip_bytes(*n + 1);
    }
    default:
      --pos_;
      return Bad("invalid msgpack type byte");
  }
}

}  // namespace tidemark::snapshot
