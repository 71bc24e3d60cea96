// The snapshot wire format: a versioned envelope around a zstd-compressed msgpack body.
//
// Every snapshot -- sent by the agent, stored by the collector, written by tidemark.dump() --
// is one message in this format. The envelope and the msgpack header inside it can be read
// without decompressing anything, so a receiver validates identity and sizes first.
//
//   offset  size  field
//   ------  ----  -----------------------------------------------------------------------
//        0     4  magic "TDMK"
//        4     2  format version, little-endian (kFormatVersion)
//        6     1  kind: 1 summary, 2 graph
//        7     1  flags: bit 0 = body is zstd-compressed; other bits must be 0
//        8     4  H: header length, little-endian
//       12     4  B: body length as stored (compressed), little-endian
//       16     8  R: body length after decompression, little-endian
//       24     H  header: msgpack map (identity, seq, totals, agent figures)
//     24+H     B  body: zstd frame (with content checksum) of a msgpack map
//                 (type table; for graphs the object columns)
//   Nothing may follow: the message is exactly 24 + H + B bytes.
//
// docs/wire-format.md lists every key of the header and body maps.
//
// Decoding never trusts a declared length: every count is checked against the bytes that
// remain and against DecodeLimits before anything is allocated, so a hostile message costs
// at most its own size (or the limits) in memory. Thread-safety: functions are reentrant.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "snapshot/result.h"
#include "snapshot/snapshot.h"

namespace tidemark::snapshot {

inline constexpr char kMagic[4] = {'T', 'D', 'M', 'K'};
inline constexpr uint16_t kFormatVersion = 2;
// Decoders accept kOldestReadableFormatVersion..kFormatVersion: a collector upgraded before its
// agents keeps reading them. Raise it only when the previous version stops being written.
inline constexpr uint16_t kOldestReadableFormatVersion = 1;
inline constexpr size_t kEnvelopeSize = 24;

// Where the compressor's working memory comes from (zstd's ZSTD_customMem): a snapshot child
// allocates only from memory it mapped itself (agent/child_memory.h). Unset: malloc.
struct Allocator {
  void* (*allocate)(void* opaque, size_t bytes) = nullptr;
  void (*free)(void* opaque, void* block) = nullptr;
  void* opaque = nullptr;
};

struct EncodeOptions {
  int zstd_level = 1;  // 1..3: the agent spares its host's CPU.
  // When set and it becomes true, Encode gives up (between two 256 KiB chunks) with an error
  // saying so: a stopping agent never waits for a large encode.
  const std::atomic<bool>* cancel = nullptr;
  Allocator allocator = {};
};

struct DecodeLimits {
  size_t max_message_bytes = size_t{1} << 30;  // Whole message as received.
  size_t max_body_bytes = size_t{4} << 30;     // Body after decompression.
  size_t max_objects = 200'000'000;
  size_t max_types = 1'000'000;
  // A body over kAlwaysExpandableBytes may declare at most this many times its compressed
  // size (real snapshots compress 3-30x): decompression work per message stays proportional
  // to the bytes received.
  size_t max_expansion = 1000;
};
inline constexpr size_t kAlwaysExpandableBytes = size_t{16} << 20;

// The fixed-size envelope, parsed. REQUIRES: nothing; validates everything.
struct Envelope {
  uint16_t version = 0;
  Kind kind = Kind::kSummary;
  uint32_t header_bytes = 0;
  uint32_t body_bytes = 0;
  uint64_t raw_body_bytes = 0;
};

Result<std::string> Encode(const Snapshot& snapshot, const EncodeOptions& options = {});

// The same message with another header (identity, seq, figures), its compressed body copied
// as is: replaying one real snapshot as many agents costs no recompression.
// REQUIRES: header.kind and header.types match the message's.
Result<std::string> ReplaceHeader(std::string_view message, const Header& header);

// Reads the envelope and header only: no decompression, cost independent of body size.
Result<Envelope> DecodeEnvelope(std::string_view message, const DecodeLimits& limits = {});
Result<Header> DecodeHeader(std::string_view message, const DecodeLimits& limits = {});

// Every check of DecodeHeader, plus: the body is one zstd frame that declares the envelope's
// decompressed size, expands to exactly that and passes its content checksum. Streams the
// frame through a fixed 1 MiB buffer: memory and time do not depend on the object count
// beyond decompression itself. Proves the body is intact as the encoder wrote it, not that
// the encoder wrote valid msgpack (Decode proves that).
Result<Header> CheckFrame(std::string_view message, const DecodeLimits& limits = {});

// Full decode, with every check of DecodeHeader plus the body's. The body is decompressed as a
// stream into a buffer that grows with what the frame really produces (never sized from the
// declared size alone), so a frame declaring more than it holds costs what it holds.
Result<Snapshot> Decode(std::string_view message, const DecodeLimits& limits = {});

// A goodbye: the agent instance is ending (stop(), interpreter exit) and its collector should
// expect nothing more from it. Sent on the same connection as its snapshots:
//
//   offset  size  field
//        0     4  magic "TDMB"
//        4     2  format version, little-endian (kFormatVersion)
//        6     2  reserved, 0
//        8     H  header: msgpack map with the snapshot header's identity keys (service,
//                 host, pid, start_ns, labels), its seq (one past the last snapshot's, so
//                 sequence numbers never repeat) and ts_ns, and "moved": true when the
//                 instance lives on and moves to another of its collectors (a shard's agent
//                 going home; seq is then its last snapshot's, as its numbering goes on); H <=
//                 kMaxGoodbyeBytes - 8
inline constexpr char kGoodbyeMagic[4] = {'T', 'D', 'M', 'B'};
inline constexpr size_t kMaxGoodbyeBytes = 64 * 1024;

struct Goodbye {
  Identity identity;
  uint64_t seq = 0;
  int64_t timestamp_ns = 0;
  bool moved = false;  // To another collector: not ended, so its alerts are not resolved here.
};

std::string EncodeGoodbye(const Goodbye& goodbye);
bool IsGoodbye(std::string_view message);  // Its magic only.
Result<Goodbye> DecodeGoodbye(std::string_view message);

}  // namespace tidemark::snapshot
