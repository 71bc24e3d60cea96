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

// What kind of failure, so that callers tell cases apart by code, never by message text.
enum class Code {
  kInvalid,   // Bad input: malformed, inconsistent, wrong type (the default).
  kLimit,     // Well-formed but over a configured bound (sizes, counts, expansion).
  kNotFound,  // What was named does not exist (a file, an agent, a snapshot).
  kCorrupt,   // Stored data that fails its checks (a checksum, a torn record).
  kIo,        // The operating system refused (open, read, write, sync).
};

struct Error {
  std::string message;  // Names what was wrong, e.g. "body: truncated at byte 1234".
  Code code = Code::kInvalid;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> Fail(std::string message) {
  return std::unexpected<Error>(Error{std::move(message), Code::kInvalid});
}

inline std::unexpected<Error> Fail(Code code, std::string message) {
  return std::unexpected<Error>(Error{std::move(message), code});
}

// `error` said in a wider context ("agents.log: " + its message), its code kept.
inline std::unexpected<Error> Fail(const std::string& context, const Error& error) {
  return std::unexpected<Error>(Error{context + error.message, error.code});
}

}  // namespace tidemark::snapshot
