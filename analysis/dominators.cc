#include "analysis/dominators.h"

#include <algorithm>
#include <numeric>

namespace tidemark::analysis {

Dominators Dominators::Compute(const HeapGraph& g) {
  const uint32_t n = static_cast<uint32_t>(g.size());
  const uint32_t root = n;  // The virtual root, as a vertex.
  auto successors = [&](uint32_t v, auto&& visit) {
    if (v == root) {
      for (const auto& [r, reason] : g.roots()) visit(r);
    } else {
      for (uint32_t w : g.refs(v)) visit(w);
    }
  };

  // Depth-first numbering from the virtual root (number 0), iteratively.
  std::vector<uint32_t> number(n + 1, kNone);  // Vertex -> DFS number.
  std::vector<uint32_t> vertex;                // DFS number -> vertex.
  std::vector<uint32_t> parent;                // DFS number -> DFS number of tree parent.
  vertex.reserve(n + 1);
  parent.reserve(n + 1);
  {
    std::vector<std::pair<uint32_t, uint32_t>> stack;  // (vertex, index of the next successor)
    number[root] = 0;
    vertex.push_back(root);
    parent.push_back(0);
    stack.emplace_back(root, 0);
    const auto& roots = g.roots();
    while (!stack.empty()) {
      const uint32_t v = stack.back().first;
      const uint32_t next = stack.back().second;
      const size_t degree = v == root ? roots.size() : g.refs(v).size();
      if (next == degree) {
        stack.pop_back();
        continue;
      }
      ++stack.back().second;
      const uint32_t w = v == root ? roots[next].first : g.refs(v)[next];
      if (number[w] != kNone) continue;
      number[w] = static_cast<uint32_t>(vertex.size());
      vertex.push_back(w);
      parent.push_back(number[v]);
      stack.emplace_back(w, 0);
    }
  }
  const uint32_t count = static_cast<uint32_t>(vertex.size());

  // Predecessors in DFS numbers, complete (CSR).
  std::vector<uint32_t> pred_begin(count + 1, 0);
  for (uint32_t i = 0; i < count; ++i) {
    successors(vertex[i], [&](uint32_t w) {
      if (number[w] != kNone) ++pred_begin[number[w] + 1];
    });
  }
  std::partial_sum(pred_begin.begin(), pred_begin.end(), pred_begin.begin());
  std::vector<uint32_t> preds(pred_begin[count]);
  {
    std::vector<uint32_t> cursor(pred_begin.begin(), pred_begin.end() - 1);
    for (uint32_t i = 0; i < count; ++i) {
      successors(vertex[i], [&](uint32_t w) {
        if (number[w] != kNone) preds[cursor[number[w]]++] = i;
      });
    }
  }

  // Semi-dominators, with path-compressed evaluation (ancestor links reuse `ancestor`).
  std::vector<uint32_t> semi(count), label(count), ancestor(parent), idom(parent);
  std::iota(semi.begin(), semi.end(), 0);
  std::iota(label.begin(), label.end(), 0);
  std::vector<uint32_t> path;
  auto eval = [&](uint32_t v, uint32_t last_linked) -> uint32_t {
    if (ancestor[v] < last_linked) return label[v];
    uint32_t u = v;
    do {
      path.push_back(u);
      u = ancestor[u];
    } while (ancestor[u] >= last_linked);
    uint32_t top = u;
    uint32_t top_label = label[top];
    while (!path.empty()) {
      const uint32_t x = path.back();
      path.pop_back();
      ancestor[x] = ancestor[top];
      if (semi[top_label] < semi[label[x]]) {
        label[x] = top_label;
      } else {
        top_label = label[x];
      }
      top = x;
    }
    return label[v];
  };
  for (uint32_t i = count - 1; i >= 1; --i) {
    semi[i] = parent[i];
    for (uint32_t k = pred_begin[i]; k < pred_begin[i + 1]; ++k) {
      const uint32_t s = semi[eval(preds[k], i + 1)];
      if (s < semi[i]) semi[i] = s;
    }
  }
  std::vector<uint32_t>().swap(preds);
  std::vector<uint32_t>().swap(pred_begin);
  std::vector<uint32_t>().swap(ancestor);
  std::vector<uint32_t>().swap(label);
  for (uint32_t i = 1; i < count; ++i) {
    uint32_t candidate = idom[i];
    while (candidate > semi[i]) candidate = idom[candidate];
    idom[i] = candidate;
  }

  Dominators d;
  d.idom_.assign(n, kNone);
  d.retained_.assign(n, 0);
  for (uint32_t i = 1; i < count; ++i) {
    d.idom_[vertex[i]] = idom[i] == 0 ? kNone : vertex[idom[i]];
    d.retained_[vertex[i]] = g.bytes(vertex[i]);
  }
  // A dominator's DFS number is below its subtree's: accumulate in reverse DFS order.
  for (uint32_t i = count - 1; i >= 1; --i) {
    if (idom[i] != 0) d.retained_[vertex[idom[i]]] += d.retained_[vertex[i]];
  }

  // Preorder of the dominator tree: children lists by counting sort on idom.
  std::vector<uint32_t> child_begin(count + 1, 0);
  for (uint32_t i = 1; i < count; ++i) ++child_begin[idom[i] + 1];
  std::partial_sum(child_begin.begin(), child_begin.end(), child_begin.begin());
  std::vector<uint32_t> children(count > 0 ? count - 1 : 0);
  {
    std::vector<uint32_t> cursor(child_begin.begin(), child_begin.end() - 1);
    for (uint32_t i = 1; i < count; ++i) children[cursor[idom[i]]++] = i;
  }
  // Walk it once: preorder, and per type the retained bytes of instances not under another
  // instance of the same type (a count of open instances per type on the current path).
  d.by_type_.assign(g.type_names().size(), 0);
  std::vector<uint32_t> open(g.type_names().size(), 0);
  d.preorder_.reserve(count - 1);
  std::vector<std::pair<uint32_t, uint32_t>> stack = {{0, child_begin[0]}};
  while (!stack.empty()) {
    auto& [v, next] = stack.back();
    if (next == child_begin[v + 1]) {
      if (v != 0) --open[g.type(vertex[v])];
      stack.pop_back();
      continue;
    }
    const uint32_t c = children[next++];
    const uint32_t object = vertex[c];
    d.preorder_.push_back(object);
    const uint32_t t = g.type(object);
    if (open[t]++ == 0) d.by_type_[t] += d.retained_[object];
    stack.emplace_back(c, child_begin[c]);
  }
  return d;
}

std::vector<uint32_t> Dominators::Top(size_t count) const {
  std::vector<uint32_t> order(retained_.size());
  std::iota(order.begin(), order.end(), 0);
  count = std::min(count, order.size());
  std::partial_sort(order.begin(), order.begin() + count, order.end(),
                    [&](uint32_t a, uint32_t b) { return retained_[a] > retained_[b]; });
  order.resize(count);
  return order;
}

}  // namespace tidemark::analysis
