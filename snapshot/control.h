// Control messages: what a collector sends back to an agent on the same ZeroMQ connection.
//
// One frame, a msgpack map. Keys (each optional, unknown keys ignored):
//   "ack"   uint  the snapshot with this sequence number is durable in the collector.
//   "graph" bool  take a graph snapshot at the next opportunity (rate-limited by the agent).
//   "values" bool with "graph": that graph carries short values (names dict keys in paths).
//
// Thread-safety: reentrant functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "snapshot/result.h"

namespace tidemark::snapshot {

struct Control {
  std::optional<uint64_t> ack;
  bool graph_requested = false;
  bool values_requested = false;
};

std::string EncodeControl(const Control& control);
Result<Control> DecodeControl(std::string_view frame);

}  // namespace tidemark::snapshot
