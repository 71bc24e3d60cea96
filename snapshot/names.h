// What counts as a Python identifier in a snapshot: the agent records a namespace key as an
// attribute name only if it is one (values off), and analysis writes `.name` for one and
// `['key']` otherwise. One definition, so both sides agree.
//
// Pure. Thread-safety: reentrant.
#pragma once

#include <algorithm>
#include <string_view>

namespace tidemark::snapshot {

// ASCII rules, and any non-ASCII byte allowed (as PEP 3131 mostly does).
inline bool IsIdentifier(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           static_cast<unsigned char>(c) >= 0x80;
  });
}

}  // namespace tidemark::snapshot
