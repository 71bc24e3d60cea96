#include "agent/endpoints.h"

#include <algorithm>

namespace tidemark::agent {
namespace {

uint64_t Score(const std::string& instance, const std::string& endpoint) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64.
  auto mix = [&h](const std::string& text) {
    for (unsigned char c : text) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  mix(instance);
  mix("\n");
  mix(endpoint);
  h += 0x9e3779b97f4a7c15ull;  // splitmix64's finalizer: FNV's low bits alone spread poorly.
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

}  // namespace

std::vector<std::string> SplitEndpoints(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string one = list.substr(start, end - start);
    one.erase(0, one.find_first_not_of(" \t"));
    one.erase(one.find_last_not_of(" \t") + 1);
    if (!one.empty()) out.push_back(one);
    start = end + 1;
  }
  return out;
}

std::vector<std::string> RendezvousOrder(std::vector<std::string> endpoints,
                                         const std::string& instance) {
  std::stable_sort(endpoints.begin(), endpoints.end(),
                   [&](const std::string& a, const std::string& b) {
                     return Score(instance, a) > Score(instance, b);
                   });
  return endpoints;
}

}  // namespace tidemark::agent
