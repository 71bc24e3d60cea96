#include "collector/http_host.h"

#include <algorithm>
#include <cctype>

#include "config/http_url.h"

namespace tidemark::collector {

std::string HostOf(std::string_view host_port) {
  std::string_view host = host_port;
  if (!host.empty() && host.front() == '[') {
    host =
        host.substr(1, host.find(']') == std::string_view::npos ? host.size() : host.find(']') - 1);
  } else if (const size_t colon = host.rfind(':');
             colon != std::string_view::npos && host.find(':') == colon) {
    host = host.substr(0, colon);
  }
  std::string out(host);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!out.empty() && out.back() == '.') out.pop_back();  // "localhost." is localhost.
  return out;
}

HostCheck::HostCheck(const std::string& listen, const std::vector<std::string>& allowed) {
  names_.push_back("localhost");
  if (!listen.empty()) names_.push_back(HostOf(listen));
  for (const std::string& name : allowed) names_.push_back(HostOf(name));
}

bool HostCheck::Allows(std::string_view host) const {
  if (host.empty()) return true;
  const std::string name = HostOf(host);
  return config::IsLoopbackAddress(name) ||
         std::find(names_.begin(), names_.end(), name) != names_.end();
}

}  // namespace tidemark::collector
