// Result<T>: the outcome of an operation that can fail on bad input, as a value.
//
// Module boundaries return Result<T> (std::expected) instead of throwing; exceptions from
// libraries are caught once where they are called and turned into an Error.
// Thread-safety: plain values, no shared state.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace tidemark::snapshot {

struct Error {
  std::string message;  // Names what was wrong, e.g. "body: truncated at byte 1234".
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> Fail(std::string message) {
  return std::unexpected<Error>(Error{std::move(message)});
}

}  // namespace tidemark::snapshot
