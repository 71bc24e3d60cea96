// libFuzzer harness: the snapshot decoders (envelope, header, frame check, full decode, goodbye)
// on arbitrary bytes. Whatever decodes must encode again and decode to the same snapshot.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "snapshot/wire.h"

namespace {

using tidemark::snapshot::Snapshot;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "round trip differs: %s\n", what);
    std::abort();
  }
}

void SameSnapshot(const Snapshot& a, const Snapshot& b) {
  const auto& ha = a.header;
  const auto& hb = b.header;
  Check(ha.kind == hb.kind && ha.seq == hb.seq && ha.timestamp_ns == hb.timestamp_ns, "header");
  Check(ha.identity.service == hb.identity.service && ha.identity.pid == hb.identity.pid &&
            ha.identity.labels == hb.identity.labels,
        "identity");
  Check(ha.objects == hb.objects && ha.bytes == hb.bytes && ha.rss_bytes == hb.rss_bytes, "totals");
  Check(a.types.size() == b.types.size(), "type count");
  for (size_t i = 0; i < a.types.size(); ++i) {
    Check(a.types[i].name == b.types[i].name && a.types[i].count == b.types[i].count &&
              a.types[i].bytes == b.types[i].bytes,
          "type row");
  }
  const auto& ga = a.graph;
  const auto& gb = b.graph;
  Check(ga.address == gb.address && ga.type == gb.type && ga.size == gb.size &&
            ga.length == gb.length && ga.ref_begin == gb.ref_begin && ga.refs == gb.refs,
        "graph columns");
  Check(ga.roots == gb.roots && ga.names == gb.names && ga.values == gb.values &&
            ga.true_ref_counts == gb.true_ref_counts,
        "graph extras");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  tidemark::snapshot::DecodeLimits limits;
  limits.max_body_bytes = 64 << 20;
  limits.max_objects = 1 << 20;
  (void)tidemark::snapshot::DecodeEnvelope(bytes, limits);
  (void)tidemark::snapshot::DecodeHeader(bytes, limits);
  (void)tidemark::snapshot::CheckFrame(bytes, limits);
  if (auto goodbye = tidemark::snapshot::DecodeGoodbye(bytes)) {
    auto again = tidemark::snapshot::DecodeGoodbye(tidemark::snapshot::EncodeGoodbye(*goodbye));
    Check(
        again && again->seq == goodbye->seq && again->identity.service == goodbye->identity.service,
        "goodbye");
  }
  auto decoded = tidemark::snapshot::Decode(bytes, limits);
  if (!decoded) return 0;
  auto encoded = tidemark::snapshot::Encode(*decoded);
  if (!encoded) return 0;  // The encoder refuses some shapes the decoder accepts (counted).
  auto again = tidemark::snapshot::Decode(*encoded, limits);
  Check(again.has_value(), "re-encoded snapshot does not decode");
  SameSnapshot(*decoded, *again);
  return 0;
}
