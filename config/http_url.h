// An http:// or https:// URL as hooks use it (hooks.url): scheme, host, port, target. One
// parser for the configuration's check and for the notifier that posts to it; and the one
// loopback test for addresses (http.listen's check, the collector's Host check).
//
// Thread-safety: reentrant.
#pragma once

#include <string>

#include "snapshot/result.h"

namespace tidemark::config {

struct HttpUrl {
  bool tls = false;          // https://
  std::string host;          // A name, an IPv4 address, or an IPv6 address without brackets.
  std::string port;          // Digits, 1-65535 ("80" or "443" when the URL has none).
  std::string target = "/";  // The path and query.
};

// The URL, or an error saying what is wrong with it (scheme, brackets, host, port, spaces).
snapshot::Result<HttpUrl> ParseHttpUrl(const std::string& text);

// Whether `host` (no port, no brackets) is a loopback address: 127.0.0.0/8 or ::1.
bool IsLoopbackAddress(const std::string& host);

}  // namespace tidemark::config
