// libFuzzer harness: tidemarkd's configuration parser on arbitrary text. Errors are values;
// nothing may crash, assert or hang.
#include <cstdint>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)tidemark::config::Parse(text, "fuzz.toml");
  return 0;
}
