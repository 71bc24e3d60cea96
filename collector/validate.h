// Validation of one received message before anything of it is stored.
//
// Checks, cheapest first, so garbage costs little: envelope and format version, the size
// limits (message bytes and the declared decompressed size, both before decompressing), the
// header and the identity in it (names: UTF-8 without the separators '/' and '@'; dates: not
// ahead of the collector's clock), the declared object and type counts, then a full decode of
// the body bounded by the limits (a zstd frame that expands past what the envelope declares
// is a decompression bomb and fails here). Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

#include "snapshot/snapshot.h"
#include "snapshot/wire.h"

namespace tidemark::collector {

// Why a message was dropped; each is a label of tidemark_messages_dropped_total.
enum class DropReason : int {
  kEnvelope,      // Not a tidemark message, or its envelope is inconsistent.
  kVersion,       // A format version this build does not read.
  kTooLarge,      // Over limits.max_message_bytes or limits.max_body_bytes.
  kHeader,        // The header does not decode.
  kIdentity,      // Missing service, host, pid or start time; a name that is not one.
  kLimits,        // Over limits.max_objects or limits.max_types.
  kBody,          // The body does not decode (corrupt, truncated, a decompression bomb).
  kProtocol,      // Not one frame per message.
  kStore,         // Valid, but the store could not keep it (disk full, I/O error).
  kUnauthorized,  // CURVE: a client key not in curve.allowed_clients.
  kClock,         // Dated more than kMaxClockAheadNs after the collector's clock.
  kCount,
};

const char* DropReasonName(DropReason reason);

struct Rejection {
  DropReason reason;
  std::string detail;  // Names what was wrong, for the log.
};

struct Limits {
  uint64_t max_message_bytes = 0;
  uint64_t max_body_bytes = 0;
  uint64_t max_objects = 0;
  uint64_t max_types = 0;
  bool decode_graphs = true;  // false: graph bodies get snapshot::CheckFrame only.
  int64_t now_ns = 0;         // The collector's clock (0: timestamps not checked).
};

// How far ahead of the collector's clock a snapshot may be dated (an agent's clock running
// ahead): beyond it, it would empty its service's series for the present.
constexpr int64_t kMaxClockAheadNs = int64_t{300} * 1'000'000'000;

// The decoded snapshot, its graph columns released once checked (the store keeps the bytes).
// A graph checked by frame only comes back with its header and no type table.
std::expected<snapshot::Snapshot, Rejection> Validate(std::string_view message,
                                                      const Limits& limits);

}  // namespace tidemark::collector
