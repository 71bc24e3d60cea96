#include "collector/validate.h"

#include <cstring>

#include "snapshot/text.h"

namespace tidemark::collector {
namespace {

std::unexpected<Rejection> Reject(DropReason reason, std::string detail) {
  return std::unexpected(Rejection{reason, std::move(detail)});
}

}  // namespace

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kEnvelope:
      return "envelope";
    case DropReason::kVersion:
      return "version";
    case DropReason::kTooLarge:
      return "too_large";
    case DropReason::kHeader:
      return "header";
    case DropReason::kIdentity:
      return "identity";
    case DropReason::kLimits:
      return "limits";
    case DropReason::kBody:
      return "body";
    case DropReason::kProtocol:
      return "protocol";
    case DropReason::kStore:
      return "store";
    case DropReason::kUnauthorized:
      return "unauthorized";
    case DropReason::kClock:
      return "clock";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

std::expected<snapshot::Snapshot, Rejection> Validate(std::string_view message,
                                                      const Limits& limits) {
  snapshot::DecodeLimits decode_limits;
  decode_limits.max_message_bytes = limits.max_message_bytes;
  decode_limits.max_body_bytes = limits.max_body_bytes;
  decode_limits.max_objects = limits.max_objects;
  decode_limits.max_types = limits.max_types;

  // The reasons the envelope decoder folds into one error are told apart here, for metrics.
  if (message.size() > limits.max_message_bytes) {
    return Reject(DropReason::kTooLarge, "message of " + std::to_string(message.size()) +
                                             " bytes is over limits.max_message_bytes");
  }
  if (message.size() >= 6 && std::memcmp(message.data(), snapshot::kMagic, 4) == 0) {
    const uint16_t version = static_cast<uint16_t>(static_cast<unsigned char>(message[4]) |
                                                   static_cast<unsigned char>(message[5]) << 8);
    if (version < snapshot::kOldestReadableFormatVersion || version > snapshot::kFormatVersion) {
      return Reject(DropReason::kVersion,
                    "format version " + std::to_string(version) + " is not read by this collector");
    }
  }
  auto envelope = snapshot::DecodeEnvelope(message, decode_limits);
  if (!envelope) {
    const bool too_large = envelope.error().code == snapshot::Code::kLimit;
    return Reject(too_large ? DropReason::kTooLarge : DropReason::kEnvelope,
                  envelope.error().message);
  }
  auto header = snapshot::DecodeHeader(message, decode_limits);
  if (!header) return Reject(DropReason::kHeader, header.error().message);
  const snapshot::Identity& id = header->identity;
  if (id.service.empty() || id.host.empty() || id.pid <= 0 || id.start_time_ns <= 0) {
    return Reject(DropReason::kIdentity,
                  "identity needs service, host, pid and start time (got "
                  "service \"" +
                      id.service + "\", pid " + std::to_string(id.pid) + ")");
  }
  for (const auto& [part, value] :
       {std::pair<const char*, const std::string&>{"service", id.service}, {"host", id.host}}) {
    if (std::string why = snapshot::WhyNotAName(value); !why.empty()) {
      return Reject(DropReason::kIdentity, std::string("the ") + part + " name " + why);
    }
  }
  for (const auto& [key, value] : id.labels) {
    if (!snapshot::IsUtf8(key) || !snapshot::IsUtf8(value)) {
      return Reject(DropReason::kIdentity, "a label is not valid UTF-8");
    }
  }
  if (limits.now_ns > 0) {
    const int64_t latest = limits.now_ns + kMaxClockAheadNs;
    if (header->timestamp_ns > latest || id.start_time_ns > latest) {
      return Reject(DropReason::kClock,
                    "dated more than 5 minutes after the collector's clock (timestamp " +
                        std::to_string(header->timestamp_ns) + " ns, start " +
                        std::to_string(id.start_time_ns) + " ns, now " +
                        std::to_string(limits.now_ns) + " ns)");
    }
  }
  if (header->objects > limits.max_objects || header->types > limits.max_types) {
    return Reject(DropReason::kLimits, "declares " + std::to_string(header->objects) +
                                           " objects and " + std::to_string(header->types) +
                                           " types, over limits.max_objects/max_types");
  }
  if (header->kind == snapshot::Kind::kGraph && !limits.decode_graphs) {
    auto checked = snapshot::CheckFrame(message, decode_limits);
    if (!checked) return Reject(DropReason::kBody, checked.error().message);
    snapshot::Snapshot s;
    s.header = std::move(*checked);
    return s;
  }
  auto decoded = snapshot::Decode(message, decode_limits);
  if (!decoded) return Reject(DropReason::kBody, decoded.error().message);
  for (const snapshot::TypeStat& type : decoded->types) {
    if (!snapshot::IsUtf8(type.name)) {
      return Reject(DropReason::kBody, "a type name is not valid UTF-8");
    }
  }
  decoded->graph = {};
  return std::move(*decoded);
}

}  // namespace tidemark::collector
