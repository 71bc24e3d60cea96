// Which Host a request to a collector without a token may name: localhost, a loopback
// address, the listen address, or a name of http.allowed_hosts. A web page of another site
// whose name an attacker points at 127.0.0.1 (DNS rebinding) sends its own name, and is
// refused, so an operator's browser cannot be made to read the API or the store for it.
//
// Thread-safety: immutable after construction.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tidemark::collector {

class HostCheck {
 public:
  HostCheck(const std::string& listen, const std::vector<std::string>& allowed);

  // `host`: the Host header's value, with or without a port ("" if absent: allowed, no
  // browser sends a request without one).
  bool Allows(std::string_view host) const;

 private:
  std::vector<std::string> names_;  // Lower case, without brackets or port.
};

// The host part of "HOST", "HOST:PORT", "[V6]" or "[V6]:PORT", in lower case.
std::string HostOf(std::string_view host_port);

}  // namespace tidemark::collector
