// libFuzzer harness: what a collector (or whatever answers at its address) sends to the
// agent's ZMTP client (agent/zmtp.h). The first byte picks NULL or CURVE and how the rest is
// cut into reads; whatever arrives, the client answers, errors out or waits — never crashes, and
// never hands on a frame larger than its bound.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "agent/zmtp.h"

using tidemark::agent::CurveKeys;
using tidemark::agent::ZmtpClient;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t control = data[0];
  std::optional<CurveKeys> curve;
  if (control & 1) {
    CurveKeys keys;
    for (size_t i = 0; i < 32; ++i) {
      keys.server[i] = static_cast<uint8_t>(i + 1);
      keys.public_key[i] = static_cast<uint8_t>(2 * i + 1);
      keys.secret[i] = static_cast<uint8_t>(3 * i + 1);
    }
    curve = keys;
  }
  ZmtpClient client(curve);
  std::string out;
  client.Start(&out);
  const size_t piece = 1 + (control >> 1);  // 1-128 bytes per read.
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<std::string> frames;
  while (!rest.empty()) {
    const std::string_view read = rest.substr(0, piece);
    rest.remove_prefix(read.size());
    frames.clear();
    if (!client.Receive(read, &out, &frames)) break;
    for (const std::string& f : frames) {
      if (f.size() > ZmtpClient::kMaxFrame) {
        std::fprintf(stderr, "a frame over the bound was handed on\n");
        std::abort();
      }
    }
    if (client.ready()) client.Encode("snapshot", &out);
  }
  return 0;
}
