// Text checks for names that arrive from outside (service, host, label and type names): what
// every writer of JSON and Prometheus text downstream relies on.
//
// Thread-safety: reentrant.
#pragma once

#include <string>
#include <string_view>

namespace tidemark::snapshot {

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool IsUtf8(std::string_view text);

// "" when `text` may name an agent part (service or host): 1 to 255 bytes of UTF-8 without '/',
// '@' (the separators of "service/host/pid@start") or control characters; else what is wrong.
std::string WhyNotAName(std::string_view text);

}  // namespace tidemark::snapshot
