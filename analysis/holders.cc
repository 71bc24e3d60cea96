#include "analysis/holders.h"

#include <algorithm>
#include <numeric>

namespace tidemark::analysis {
namespace {

// Describes the holder and finds its path from a root.
void Name(const HeapGraph& g, PathFinder& finder, Holder& h) {
  if (h.object == kNone) {
    h.description = "<several roots: no single object holds them>";
    return;
  }
  h.description = Describe(g, h.object);
  auto paths = finder.Find({h.object}, PathOptions{.max_paths = 1});
  h.path = paths.empty() ? "<no path to a root within the search bounds>" : paths[0].text;
}

// The deepest object keeping at least half of type t's bytes alive, its own bytes excluded;
// object kNone when there is none.
Holder DominantHolder(const HeapGraph& g, const Dominators& d, uint32_t t, uint64_t total) {
  std::vector<uint64_t> bytes(g.size(), 0), count(g.size(), 0);
  const std::vector<uint32_t>& pre = d.preorder();
  for (auto it = pre.rbegin(); it != pre.rend(); ++it) {  // Children before their dominator.
    const uint32_t v = *it;
    if (g.type(v) == t) bytes[v] += g.bytes(v), count[v] += 1;
    if (const uint32_t up = d.idom(v); up != kNone) bytes[up] += bytes[v], count[up] += count[v];
  }
  std::vector<uint32_t> depth(g.size(), 0);
  Holder best;
  uint32_t best_depth = 0;
  for (uint32_t v : pre) {
    const uint32_t up = d.idom(v);
    depth[v] = up == kNone ? 1 : depth[up] + 1;
    const bool own = g.type(v) == t;
    const uint64_t held = bytes[v] - (own ? g.bytes(v) : 0);
    if (2 * held < total || depth[v] <= best_depth) continue;
    best_depth = depth[v];
    best.object = v;
    best.bytes = held;
    best.count = count[v] - (own ? 1 : 0);
  }
  return best;
}

}  // namespace

Holding::Holding(const HeapGraph& g, const Dominators& d, std::vector<bool> member)
    : g_(g), d_(d), member_(std::move(member)), holder_(g.size(), kNone) {
  // In one preorder pass: a parent's holder is known before its children's.
  for (uint32_t v : d.preorder()) {
    const uint32_t up = d.idom(v);
    holder_[v] = up == kNone ? kNone : (member_[up] ? holder_[up] : up);
  }
  for (uint32_t v = 0; v < g.size(); ++v) {
    const uint32_t up = member_[v] ? d.idom(v) : kNone;
    if (!member_[v] || (up != kNone && member_[up])) continue;
    auto& [count, bytes] = outer_[holder_[v]][g.type(v)];
    count += 1;
    bytes += d.retained(v);
  }
}

std::vector<Holder> Holding::Of(uint32_t type, size_t max, PathFinder& finder) const {
  std::unordered_map<uint32_t, Holder> by_holder;
  for (uint32_t v = 0; v < g_.size(); ++v) {
    if (!member_[v] || g_.type(v) != type) continue;
    const uint32_t up = d_.idom(v);
    if (up != kNone && member_[up] && g_.type(up) == type) continue;
    Holder& h = by_holder[holder_[v]];
    h.object = holder_[v];
    h.count += 1;
    h.bytes += d_.retained(v);
  }
  std::vector<Holder> out;
  for (auto& [object, h] : by_holder) out.push_back(std::move(h));
  std::sort(out.begin(), out.end(), [](const Holder& x, const Holder& y) {
    return x.bytes != y.bytes ? x.bytes > y.bytes : x.object < y.object;
  });
  if (out.size() > max) out.resize(max);
  for (Holder& h : out) {
    if (auto it = outer_.find(h.object); it != outer_.end()) {
      for (const auto& [t, figures] : it->second) {
        if (figures.second > h.outermost_bytes) {
          h.outermost_type = g_.type_names()[t];
          h.outermost_count = figures.first;
          h.outermost_bytes = figures.second;
        }
      }
    }
    Name(g_, finder, h);
  }
  return out;
}

std::vector<TypeHeld> LargestTypesHeld(const HeapGraph& g, const Dominators& d, size_t types,
                                       size_t holders) {
  std::vector<TypeHeld> all(g.type_names().size());
  for (uint32_t v = 0; v < g.size(); ++v) {
    all[g.type(v)].count += 1;
    all[g.type(v)].bytes += g.bytes(v);
  }
  std::vector<uint32_t> order(all.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
    return all[x].bytes != all[y].bytes ? all[x].bytes > all[y].bytes : x < y;
  });
  if (order.size() > types) order.resize(types);
  PathFinder finder(g);
  std::vector<TypeHeld> out;
  for (uint32_t t : order) {
    if (all[t].count == 0) break;
    TypeHeld held = all[t];
    held.type = g.type_names()[t];
    if (Holder h = DominantHolder(g, d, t, held.bytes); h.object != kNone) {
      Name(g, finder, h);
      held.holders.push_back(std::move(h));
    } else {
      std::vector<bool> member(g.size(), false);
      for (uint32_t v = 0; v < g.size(); ++v) member[v] = g.type(v) == t;
      held.holders = Holding(g, d, std::move(member)).Of(t, holders, finder);
    }
    out.push_back(std::move(held));
  }
  return out;
}

}  // namespace tidemark::analysis
