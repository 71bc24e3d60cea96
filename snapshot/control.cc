#include "snapshot/control.h"

#include <msgpack.hpp>

#include "snapshot/msgpack_reader.h"

namespace tidemark::snapshot {

std::string EncodeControl(const Control& control) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  p.pack_map((control.ack ? 1 : 0) + (control.graph_requested ? 1 : 0) +
             (control.values_requested ? 1 : 0));
  if (control.ack) {
    p.pack(std::string("ack"));
    p.pack_uint64(*control.ack);
  }
  if (control.graph_requested) {
    p.pack(std::string("graph"));
    p.pack_true();
  }
  if (control.values_requested) {
    p.pack(std::string("values"));
    p.pack_true();
  }
  return std::string(buf.data(), buf.size());
}

Result<Control> DecodeControl(std::string_view frame) {
  if (frame.size() > 4096)
    return Fail("control: frame of " + std::to_string(frame.size()) + " bytes");
  MsgpackReader r(frame, "control");
  auto n = r.ReadMapHeader();
  if (!n) return std::unexpected(n.error());
  Control c;
  for (uint32_t i = 0; i < *n; ++i) {
    auto key = r.ReadStr();
    if (!key) return std::unexpected(key.error());
    if (*key == "ack") {
      auto seq = r.ReadUint();
      if (!seq) return std::unexpected(seq.error());
      c.ack = *seq;
    } else if (*key == "graph") {
      auto b = r.ReadBool();
      if (!b) return std::unexpected(b.error());
      c.graph_requested = *b;
    } else if (*key == "values") {
      auto b = r.ReadBool();
      if (!b) return std::unexpected(b.error());
      c.values_requested = *b;
    } else if (auto skipped = r.Skip(4); !skipped) {
      return std::unexpected(skipped.error());
    }
  }
  if (!r.AtEnd()) return Fail("control: bytes after the map");
  return c;
}

}  // namespace tidemark::snapshot
