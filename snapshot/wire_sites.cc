#include "snapshot/wire_sites.h"

#include <string>

namespace tidemark::snapshot {
namespace {

Result<void> ReadFlatUints(MsgpackReader& r, std::string_view key, size_t width,
                           std::vector<uint64_t>* out) {
  TM_TRY(n, r.ReadArrayHeader());
  if (n % width != 0) {
    return Fail("body: sites '" + std::string(key) + "' has " + std::to_string(n) +
                " values, not a multiple of " + std::to_string(width));
  }
  out->reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    TM_TRY(v, r.ReadUint());
    out->push_back(v);
  }
  return {};
}

Result<uint32_t> Index(uint64_t v, std::string_view key) {
  if (v > UINT32_MAX) return Fail("body: sites '" + std::string(key) + "' index out of range");
  return static_cast<uint32_t>(v);
}

Result<void> ReadSitesField(MsgpackReader& r, std::string_view key, Snapshot* s) {
  Sites& sites = s->sites;
  for (auto [name, field] : {std::pair<const char*, uint64_t*>{"mean", &sites.mean_bytes},
                             {"live", &sites.live_samples},
                             {"dropped", &sites.dropped_samples},
                             {"dropped_stacks", &sites.dropped_stacks},
                             {"restarts", &sites.restarts}}) {
    if (key != name) continue;
    TM_TRY(v, r.ReadUint());
    *field = v;
    return {};
  }
  std::vector<uint64_t> flat;
  if (key == "strings") {
    TM_TRY(n, r.ReadArrayHeader());
    for (uint32_t i = 0; i < n; ++i) {
      TM_TRY(text, r.ReadStr());
      sites.strings.emplace_back(text);
    }
  } else if (key == "frames") {
    if (auto ok = ReadFlatUints(r, key, 3, &flat); !ok) return ok;
    for (size_t i = 0; i < flat.size(); i += 3) {
      TM_TRY(file, Index(flat[i], key));
      TM_TRY(function, Index(flat[i + 1], key));
      TM_TRY(line, Index(flat[i + 2], key));
      sites.frames.push_back({file, function, line});
    }
  } else if (key == "stacks") {
    TM_TRY(n, r.ReadArrayHeader());
    for (uint32_t i = 0; i < n; ++i) {
      TM_TRY(depth, r.ReadArrayHeader());
      std::vector<uint32_t>& stack = sites.stacks.emplace_back();
      for (uint32_t k = 0; k < depth; ++k) {
        TM_TRY(v, r.ReadUint());
        TM_TRY(frame, Index(v, key));
        stack.push_back(frame);
      }
    }
  } else if (key == "rows") {
    if (auto ok = ReadFlatUints(r, key, 4, &flat); !ok) return ok;
    for (size_t i = 0; i < flat.size(); i += 4) {
      TM_TRY(type, Index(flat[i], key));
      TM_TRY(stack, Index(flat[i + 1], key));
      sites.rows.push_back(
          {type == 0 ? Sites::kNoObject : type - 1, stack, flat[i + 2], flat[i + 3]});
    }
  } else if (key == "objects" && s->header.kind == Kind::kGraph) {
    auto& objects = s->graph.object_sites;
    return coding::ReadTuples<2>(
        r, "sites objects", {true, false},
        [&](const std::array<uint32_t, 2>& v) { objects.emplace_back(v[0], v[1]); });
  } else {
    return r.Skip();
  }
  return {};
}

}  // namespace

Result<void> ReadSites(MsgpackReader& r, Snapshot* s) {
  s->sites.recorded = true;
  TM_TRY(n, r.ReadMapHeader());
  for (uint32_t i = 0; i < n; ++i) {
    TM_TRY(key, r.ReadStr());
    if (auto ok = ReadSitesField(r, key, s); !ok) return ok;
  }
  return {};
}

Result<void> CheckSites(const Snapshot& s, size_t objects) {
  const Sites& sites = s.sites;
  for (const Sites::Frame& f : sites.frames) {
    if (f.file >= sites.strings.size() || f.function >= sites.strings.size())
      return Fail("body: a sites frame names a missing string");
  }
  for (const auto& stack : sites.stacks) {
    for (uint32_t frame : stack) {
      if (frame >= sites.frames.size()) return Fail("body: a sites stack names a missing frame");
    }
  }
  for (const Sites::Row& row : sites.rows) {
    if (row.stack >= sites.stacks.size()) return Fail("body: a sites row names a missing stack");
    if (row.type != Sites::kNoObject && row.type >= s.types.size())
      return Fail("body: a sites row names type " + std::to_string(row.type) + " of " +
                  std::to_string(s.types.size()));
  }
  for (const auto& [object, stack] : s.graph.object_sites) {
    if (object >= objects || stack >= sites.stacks.size())
      return Fail("body: sites objects names a missing " +
                  std::string(object >= objects ? "object" : "stack"));
  }
  return {};
}

}  // namespace tidemark::snapshot
