// libFuzzer harness: control messages (collector -> agent). Whatever decodes must encode and
// decode to the same control.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "snapshot/control.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto control = tidemark::snapshot::DecodeControl(bytes);
  if (!control) return 0;
  auto again = tidemark::snapshot::DecodeControl(tidemark::snapshot::EncodeControl(*control));
  if (!again || again->ack != control->ack || again->graph_requested != control->graph_requested ||
      again->values_requested != control->values_requested) {
    std::fprintf(stderr, "control round trip differs\n");
    std::abort();
  }
  return 0;
}
