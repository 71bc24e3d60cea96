#include "analysis/graph_diff.h"

#include <algorithm>
#include <unordered_map>

namespace tidemark::analysis {

GraphDiffResult DiffGraphs(const HeapGraph& a, const HeapGraph& b, const Dominators& d,
                           const GraphDiffOptions& options) {
  GraphDiffResult result;
  result.seconds = (b.header().timestamp_ns - a.header().timestamp_ns) / 1e9;
  result.approximate = a.refs_capped() || b.refs_capped() || b.parents_capped();
  // b's type index -> a's, by name.
  std::unordered_map<std::string_view, uint32_t> a_types;
  for (uint32_t t = 0; t < a.type_names().size(); ++t) a_types.emplace(a.type_names()[t], t);
  std::vector<uint32_t> same_type(b.type_names().size(), kNone);
  for (uint32_t t = 0; t < b.type_names().size(); ++t) {
    if (auto it = a_types.find(b.type_names()[t]); it != a_types.end()) same_type[t] = it->second;
  }
  // Both are sorted by address: one merge pass finds what is new in b and gone from a.
  std::vector<bool> is_new(b.size(), false);
  uint32_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (j == b.size() || (i < a.size() && a.address(i) < b.address(j))) {
      ++result.gone_objects, result.gone_bytes += a.bytes(i), ++i;
    } else if (i == a.size() || b.address(j) < a.address(i)) {
      is_new[j] = true, ++j;
    } else {
      if (same_type[b.type(j)] != a.type(i)) {
        is_new[j] = true;
        ++result.gone_objects, result.gone_bytes += a.bytes(i);
      }
      ++i, ++j;
    }
  }
  std::vector<NewGroup> groups(b.type_names().size());
  for (uint32_t v = 0; v < b.size(); ++v) {
    if (!is_new[v]) continue;
    ++result.new_objects;
    result.new_bytes += b.bytes(v);
    groups[b.type(v)].count += 1;
    groups[b.type(v)].bytes += b.bytes(v);
  }
  std::vector<uint32_t> order;
  for (uint32_t t = 0; t < groups.size(); ++t) {
    groups[t].type = b.type_names()[t];
    if (groups[t].count > 0) order.push_back(t);
  }
  std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
    return groups[x].bytes != groups[y].bytes ? groups[x].bytes > groups[y].bytes
                                              : groups[x].count > groups[y].count;
  });
  if (order.size() > options.all_groups_listed) order.resize(options.all_groups_listed);

  const Holding holding(b, d, std::move(is_new));
  PathFinder finder(b);
  for (size_t k = 0; k < order.size(); ++k) {
    NewGroup group = std::move(groups[order[k]]);
    if (k < options.groups) group.holders = holding.Of(order[k], options.holders, finder);
    result.groups.push_back(std::move(group));
  }
  return result;
}

}  // namespace tidemark::analysis
