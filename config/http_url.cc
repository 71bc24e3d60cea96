#include "config/http_url.h"

#include <arpa/inet.h>

#include <cstring>

namespace tidemark::config {
namespace {

snapshot::Error Wrong(const std::string& text, const std::string& why) {
  return snapshot::Error{"\"" + text + "\" is not a usable URL: " + why, snapshot::Code::kInvalid};
}

bool IsPort(const std::string& port) {
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return false;
  const long n = std::stol(port);
  return n >= 1 && n <= 65535;
}

}  // namespace

bool IsLoopbackAddress(const std::string& host) {
  unsigned char v4[4], v6[16];
  if (inet_pton(AF_INET, host.c_str(), v4) == 1) return v4[0] == 127;
  static const unsigned char kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return inet_pton(AF_INET6, host.c_str(), v6) == 1 && std::memcmp(v6, kLoopback6, 16) == 0;
}

snapshot::Result<HttpUrl> ParseHttpUrl(const std::string& text) {
  HttpUrl url;
  std::string rest;
  if (text.rfind("https://", 0) == 0) {
    url.tls = true;
    rest = text.substr(8);
  } else if (text.rfind("http://", 0) == 0) {
    rest = text.substr(7);
  } else {
    return std::unexpected(Wrong(text, "expected http:// or https://"));
  }
  for (const char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return std::unexpected(Wrong(text, "it holds a space or a control character"));
  }
  const size_t slash = rest.find_first_of("/?");
  const std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) url.target = (rest[slash] == '?' ? "/" : "") + rest.substr(slash);
  url.port = url.tls ? "443" : "80";
  if (authority.find('@') != std::string::npos)
    return std::unexpected(Wrong(text, "user information (\"user@\") is not supported"));
  std::string port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {  // [::1]:8080
    const size_t close = authority.find(']');
    if (close == std::string::npos) return std::unexpected(Wrong(text, "no closing ']'"));
    url.host = authority.substr(1, close - 1);
    unsigned char v6[16];
    if (inet_pton(AF_INET6, url.host.c_str(), v6) != 1)
      return std::unexpected(Wrong(text, "\"" + url.host + "\" is not an IPv6 address"));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':')
        return std::unexpected(Wrong(text, "unexpected text after ']'"));
      port = authority.substr(close + 2);
      has_port = true;
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string::npos) {
    url.host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    has_port = true;
    if (url.host.find(':') != std::string::npos)
      return std::unexpected(Wrong(text, "an IPv6 address goes in brackets: http://[::1]:8080/"));
  } else {
    url.host = authority;
  }
  if (url.host.empty()) return std::unexpected(Wrong(text, "no host"));
  if (has_port) {
    if (!IsPort(port))
      return std::unexpected(Wrong(text, "port \"" + port + "\" is not a number from 1 to 65535"));
    url.port = port;
  }
  return url;
}

}  // namespace tidemark::config
