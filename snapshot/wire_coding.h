// Pieces of the wire format's msgpack coding that its parts share (wire.cc, wire_sites.cc).
// Internal to snapshot/. Thread-safety: functions are reentrant.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "snapshot/msgpack_reader.h"
#include "snapshot/result.h"

// Evaluates a Result; returns its error, or declares `var` with its value.
#define TM_TRY(var, expr)                                          \
  auto var##_result = (expr);                                      \
  if (!var##_result) return std::unexpected(var##_result.error()); \
  auto var = *var##_result

namespace tidemark::snapshot::coding {

template <typename Packer>
void PackStr(Packer& p, std::string_view s) {
  p.pack_str(static_cast<uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

template <typename Packer>
void PackKey(Packer& p, std::string_view key) {
  PackStr(p, key);
}

// Rows of W object indices as one flat array of W * rows integers. A field marked in `delta` is
// coded as its difference to the same field of the previous row (0 before the first): rows are
// written in walk order, so those differences are small.
template <size_t W, typename Packer, typename Row>
void PackTuples(Packer& p, size_t rows, std::array<bool, W> delta, Row row) {
  p.pack_array(static_cast<uint32_t>(rows * W));
  std::array<int64_t, W> previous{};
  for (size_t k = 0; k < rows; ++k) {
    const std::array<uint32_t, W> r = row(k);
    for (size_t f = 0; f < W; ++f) {
      p.pack_int64(delta[f] ? int64_t{r[f]} - previous[f] : int64_t{r[f]});
      previous[f] = r[f];
    }
  }
}

// The inverse of PackTuples: every value, after undoing its delta, must be a uint32.
template <size_t W, typename Add>
Result<void> ReadTuples(MsgpackReader& r, std::string_view key, std::array<bool, W> delta,
                        Add add) {
  TM_TRY(n, r.ReadArrayHeader());
  if (n % W != 0) {
    return Fail("body: '" + std::string(key) + "' has " + std::to_string(n) +
                " values, not a multiple of " + std::to_string(W));
  }
  std::array<int64_t, W> previous{};
  std::array<uint32_t, W> row{};
  for (uint32_t k = 0; k < n / W; ++k) {
    for (size_t f = 0; f < W; ++f) {
      TM_TRY(v, r.ReadInt());
      const __int128 wide = (delta[f] ? static_cast<__int128>(previous[f]) : 0) + v;
      if (wide < 0 || wide > UINT32_MAX)
        return Fail("body: '" + std::string(key) + "' index out of range");
      row[f] = static_cast<uint32_t>(wide);
      previous[f] = row[f];
    }
    add(row);
  }
  return {};
}

}  // namespace tidemark::snapshot::coding
