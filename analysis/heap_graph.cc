#include "analysis/heap_graph.h"

#include <malloc.h>

#include <algorithm>
#include <numeric>
#include <span>
#include <tuple>

namespace tidemark::analysis {
namespace {

template <typename T>
void Release(std::vector<T>& v) {
  std::vector<T>().swap(v);
}

// Gives freed pages back to the system. Needed after Release: once glibc has freed a large
// mmapped block (the decoder's body buffer) it raises its mmap threshold, so columns of tens
// of MB come from the heap, and freeing them lowers nothing until the heap is trimmed.
void ReturnFreedMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

template <typename Pairs>
auto FindSorted(const Pairs& pairs, uint32_t i) {
  auto it = std::lower_bound(pairs.begin(), pairs.end(), i,
                             [](const auto& p, uint32_t key) { return p.first < key; });
  return it != pairs.end() && it->first == i ? it : pairs.end();
}

// Format 2: the agent's (dict, owner) pairs, kept as a matching in which no folded dict owns
// another and no owner is folded (what the agent writes; a hostile snapshot cannot make a
// chain). Marks the dicts in `removed`; returns (owner, dict) sorted by owner.
std::vector<std::pair<uint32_t, uint32_t>> RecordedNamespaces(const snapshot::Graph& g,
                                                              std::vector<bool>& removed) {
  std::vector<bool> owns(removed.size(), false);
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (const auto& [dict, owner] : g.owners) {
    if (dict == owner || removed[dict] || removed[owner] || owns[dict] || owns[owner]) continue;
    removed[dict] = true;
    owns[owner] = true;
    out.emplace_back(owner, dict);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Format 1 and meliae imports: meliae's collapse_instance_dicts. An object whose references
// are exactly a dict and its type (a module: exactly a dict) owns that dict. Wrong where an
// instance keeps its attributes inline (3.11+) and has a single dict attribute.
std::vector<std::pair<uint32_t, uint32_t>> InferredNamespaces(
    const snapshot::Graph& g, const std::vector<std::string>& type_names,
    std::vector<bool>& removed) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  auto type_id = [&](std::string_view name) -> uint32_t {
    auto it = std::find(type_names.begin(), type_names.end(), name);
    return it == type_names.end() ? kNone : static_cast<uint32_t>(it - type_names.begin());
  };
  const uint32_t dict_type = type_id("dict");
  const uint32_t module_type = type_id("module");
  const uint32_t type_type = type_id("type");
  if (dict_type == kNone) return out;
  auto is_type_of = [&](uint32_t t, uint32_t owner) {
    if (g.type[t] == type_type) return true;
    auto named = FindSorted(g.names, t);  // A metaclass instance: named like the owner's type.
    return named != g.names.end() && named->second == type_names[g.type[owner]];
  };
  const uint32_t n = static_cast<uint32_t>(g.object_count());
  for (uint32_t i = 0; i < n; ++i) {
    const std::span<const uint32_t> r(g.refs.data() + g.ref_begin[i],
                                      g.refs.data() + g.ref_begin[i + 1]);
    uint32_t dict = kNone;
    if (g.type[i] == module_type && r.size() == 1 && g.type[r[0]] == dict_type) {
      dict = r[0];
    } else if (g.type[i] != dict_type && r.size() == 2 && r[0] != r[1]) {
      if (g.type[r[0]] == dict_type && is_type_of(r[1], i)) dict = r[0];
      if (g.type[r[1]] == dict_type && is_type_of(r[0], i)) dict = r[1];
    }
    if (dict == kNone || dict == i || removed[dict]) continue;
    removed[dict] = true;
    out.emplace_back(i, dict);
  }
  return out;
}

}  // namespace

const char* RootReasonName(RootReason reason) {
  switch (reason) {
    case RootReason::kModule:
      return "module";
    case RootReason::kThreadFrame:
      return "thread frame";
    case RootReason::kInterpreter:
      return "interpreter";
    case RootReason::kUnreferenced:
      return "unreferenced (held from C)";
    case RootReason::kCycle:
      return "unreferenced cycle";
  }
  return "root";
}

Result<HeapGraph> HeapGraph::Load(snapshot::Snapshot&& s, const LoadOptions& options) {
  if (s.header.kind != snapshot::Kind::kGraph) {
    return Fail(
        "a summary snapshot has no objects to analyse: take a graph snapshot "
        "(tidemark.dump(path, kind=\"graph\") or TIDEMARK_GRAPH_EVERY)");
  }
  snapshot::Graph& g = s.graph;
  const size_t n = g.object_count();
  if (n >= kNone || g.refs.size() >= kNone) {
    return Fail("graph of " + std::to_string(n) + " objects and " + std::to_string(g.refs.size()) +
                " references is over this tool's limit of 2^32 - 2 of each");
  }
  auto progress = [&](std::string_view what, uint64_t done, uint64_t total) {
    if (options.progress) options.progress(what, done, total);
  };
  HeapGraph h;
  h.header_ = s.header;
  h.max_parents_ = options.max_parents;
  for (auto& t : s.types) h.type_names_.push_back(std::move(t.name));
  std::sort(g.names.begin(), g.names.end());
  std::sort(g.values.begin(), g.values.end());
  std::sort(g.true_ref_counts.begin(), g.true_ref_counts.end());

  // Namespaces folded into their owners: as recorded by the agent, or as meliae guesses them.
  std::vector<bool> removed(n, false);
  std::vector<std::pair<uint32_t, uint32_t>> owner_dict;  // (owner, dict), by owner.
  if (options.collapse_instance_dicts) {
    owner_dict = g.ownership_recorded ? RecordedNamespaces(g, removed)
                                      : InferredNamespaces(g, h.type_names_, removed);
    h.ownership_inferred_ = !g.ownership_recorded && !owner_dict.empty();
  }

  // Order by address.
  std::vector<uint32_t> order;
  order.reserve(n - owner_dict.size());
  for (uint32_t i = 0; i < n; ++i) {
    if (!removed[i]) order.push_back(i);
  }
  if (!std::is_sorted(order.begin(), order.end(),
                      [&](uint32_t a, uint32_t b) { return g.address[a] < g.address[b]; })) {
    std::sort(order.begin(), order.end(),
              [&](uint32_t a, uint32_t b) { return g.address[a] < g.address[b]; });
  }
  progress("ordering objects", n, n);
  const size_t m = order.size();
  // Column by column, each old one freed as soon as its new one is made: the old and the new
  // structure never coexist whole, which is what keeps the load's peak down (the index from
  // old to new numbers is made after, once the columns are smaller).
  auto gather = [&](auto& to, auto& from) {
    to.resize(m);
    for (size_t k = 0; k < m; ++k) to[k] = from[order[k]];
    Release(from);
  };
  for (const auto& [owner, dict] : owner_dict) g.size[owner] += g.size[dict];
  gather(h.address_, g.address);
  ReturnFreedMemory();
  gather(h.type_, g.type);
  gather(h.length_, g.length);
  gather(h.size_, g.size);
  ReturnFreedMemory();
  std::vector<uint32_t> index_of(n, kNone);
  for (uint32_t k = 0; k < m; ++k) index_of[order[k]] = k;
  // A reference to an absorbed dict is a reference to its owner now: it keeps the key, value
  // pairing of the dicts that refer to it (a module's __builtins__ is the builtins' dict).
  for (const auto& [owner, dict] : owner_dict) index_of[dict] = index_of[owner];
  // The old offsets in 32 bits (there are fewer than 2^32 references, checked above): the
  // mapping below keeps less of the old graph alive beside the new.
  std::vector<uint32_t> old_begin(g.ref_begin.begin(), g.ref_begin.end());
  Release(g.ref_begin);
  ReturnFreedMemory();
  auto old_refs = [&](uint32_t i) {
    return std::span<const uint32_t>(g.refs.data() + old_begin[i],
                                     g.refs.data() + old_begin[i + 1]);
  };

  // References, mapped to the new order; an absorbed dict's come first in its owner's.
  h.ref_begin_.resize(m + 1);
  h.refs_.reserve(g.refs.size());
  h.refs_capped_ = !g.true_ref_counts.empty();
  const uint64_t cap = options.max_refs < 0 ? UINT64_MAX : static_cast<uint64_t>(options.max_refs);
  std::vector<uint32_t> scratch;
  for (size_t k = 0; k < m; ++k) {
    const uint32_t old = order[k];
    h.ref_begin_[k] = static_cast<uint32_t>(h.refs_.size());
    scratch.clear();
    uint32_t from_dict = 0;
    auto owned = FindSorted(owner_dict, old);
    if (owned != owner_dict.end()) {
      for (uint32_t r : old_refs(owned->second)) {
        if (index_of[r] != kNone) scratch.push_back(index_of[r]);
      }
      from_dict = static_cast<uint32_t>(scratch.size());
    }
    for (uint32_t r : old_refs(old)) {
      if (owned != owner_dict.end() && r == owned->second) continue;
      if (index_of[r] != kNone) scratch.push_back(index_of[r]);
    }
    uint64_t true_count = scratch.size();
    if (auto agent = FindSorted(g.true_ref_counts, old); agent != g.true_ref_counts.end()) {
      true_count = std::max<uint64_t>(true_count, agent->second);
    }
    if (scratch.size() > cap) {
      scratch.resize(cap);
      h.refs_capped_ = true;
    }
    if (true_count != scratch.size())
      h.true_ref_counts_.emplace_back(static_cast<uint32_t>(k), true_count);
    if (from_dict > 0) {
      h.absorbed_.emplace_back(
          static_cast<uint32_t>(k),
          std::min<uint32_t>(from_dict, static_cast<uint32_t>(scratch.size())));
    }
    h.refs_.insert(h.refs_.end(), scratch.begin(), scratch.end());
    if ((k & 0xFFFFF) == 0) progress("mapping references", k, m);
  }
  h.ref_begin_[m] = static_cast<uint32_t>(h.refs_.size());
  // Reserved for the old count, which folding only lowers: shrinking would copy every
  // reference once more at the load's peak, for a few unused entries.
  if (h.refs_.capacity() - h.refs_.size() > h.refs_.size() / 8) h.refs_.shrink_to_fit();
  Release(g.refs);
  Release(old_begin);
  ReturnFreedMemory();
  std::sort(h.absorbed_.begin(), h.absorbed_.end());
  std::sort(h.true_ref_counts_.begin(), h.true_ref_counts_.end());

  auto remap = [&](Sparse& from, Sparse& to) {
    for (auto& [i, text] : from) {
      if (!removed[i]) to.emplace_back(index_of[i], std::move(text));
    }
    std::sort(to.begin(), to.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    Release(from);
  };
  remap(g.names, h.names_);
  h.attribute_names_ = std::move(g.attribute_names);
  for (const auto& [key, name] : g.attribute_keys) {
    if (!removed[key]) h.attribute_keys_.emplace_back(index_of[key], name);
  }
  std::sort(h.attribute_keys_.begin(), h.attribute_keys_.end());
  Release(g.attribute_keys);
  for (const auto& a : g.attributes) {
    const uint32_t owner = index_of[a.owner], target = index_of[a.target];
    if (owner != kNone && target != kNone) h.attributes_.push_back({owner, target, a.name});
  }
  Release(g.attributes);
  std::sort(h.attributes_.begin(), h.attributes_.end(), [](const auto& x, const auto& y) {
    return std::tie(x.owner, x.target, x.name) < std::tie(y.owner, y.target, y.name);
  });
  if (options.keep_values) {
    remap(g.values, h.values_);
  } else {
    h.values_dropped_ = !g.values.empty();
    Release(g.values);
  }

  std::vector<std::pair<uint32_t, RootReason>> recorded;
  for (const auto& [i, kind] : g.roots) {
    // An absorbed dict recorded as a root maps to its owner, which stands for it.
    if (index_of[i] != kNone) recorded.emplace_back(index_of[i], static_cast<RootReason>(kind));
  }
  Release(index_of);
  h.ComputeRoots(recorded);
  progress("roots", m, m);
  ReturnFreedMemory();  // What the rest of the load freed: not kept for a long-lived process.
  return h;
}

void HeapGraph::ComputeRoots(const std::vector<std::pair<uint32_t, RootReason>>& recorded) {
  const uint32_t n = static_cast<uint32_t>(size());
  std::vector<bool> reached(n, false);
  std::vector<uint32_t> stack;
  auto mark_from = [&](uint32_t start) {
    if (reached[start]) return;
    reached[start] = true;
    stack.push_back(start);
    while (!stack.empty()) {
      const uint32_t v = stack.back();
      stack.pop_back();
      for (uint32_t w : refs(v)) {
        if (!reached[w]) {
          reached[w] = true;
          stack.push_back(w);
        }
      }
    }
  };
  roots_ = recorded;
  for (const auto& [i, reason] : recorded) mark_from(i);

  // What the recorded roots do not reach: by Kosaraju's first pass, the unreached object that
  // finishes last lies in a source component; taking it as a root and marking what it reaches
  // leaves a graph whose last finisher again lies in a source component.
  std::vector<bool> referenced(n, false);
  for (uint32_t v = 0; v < n; ++v) {
    for (uint32_t w : refs(v)) {
      if (w != v) referenced[w] = true;
    }
  }
  std::vector<uint32_t> finished;
  std::vector<bool> visited(n, false);
  std::vector<std::pair<uint32_t, uint32_t>> frames;  // (object, next reference position).
  for (uint32_t s = 0; s < n; ++s) {
    if (reached[s] || visited[s]) continue;
    visited[s] = true;
    frames.emplace_back(s, 0);
    while (!frames.empty()) {
      auto& [v, next] = frames.back();
      const auto r = refs(v);
      if (next < r.size()) {
        const uint32_t w = r[next++];
        if (!reached[w] && !visited[w]) {
          visited[w] = true;
          frames.emplace_back(w, 0);
        }
      } else {
        finished.push_back(v);
        frames.pop_back();
      }
    }
  }
  for (auto it = finished.rbegin(); it != finished.rend(); ++it) {
    if (reached[*it]) continue;
    roots_.emplace_back(*it, referenced[*it] ? RootReason::kCycle : RootReason::kUnreferenced);
    mark_from(*it);
  }
  std::sort(roots_.begin(), roots_.end());
  roots_.erase(std::unique(roots_.begin(), roots_.end(),
                           [](const auto& a, const auto& b) { return a.first == b.first; }),
               roots_.end());
}

std::optional<RootReason> HeapGraph::root_reason(uint32_t i) const {
  auto it = FindSorted(roots_, i);
  if (it == roots_.end()) return std::nullopt;
  return it->second;
}

uint64_t HeapGraph::true_ref_count(uint32_t i) const {
  auto it = FindSorted(true_ref_counts_, i);
  return it == true_ref_counts_.end() ? refs(i).size() : it->second;
}

std::optional<std::string_view> HeapGraph::Lookup(const Sparse& sparse, uint32_t i) {
  auto it = FindSorted(sparse, i);
  if (it == sparse.end()) return std::nullopt;
  return std::string_view(it->second);
}

std::optional<std::string_view> HeapGraph::attribute(uint32_t owner, uint32_t target) const {
  auto it = std::lower_bound(
      attributes_.begin(), attributes_.end(), std::pair(owner, target),
      [](const auto& a, const auto& key) { return std::pair(a.owner, a.target) < key; });
  if (it == attributes_.end() || it->owner != owner || it->target != target) return std::nullopt;
  return std::string_view(attribute_names_[it->name]);
}

std::optional<std::string_view> HeapGraph::attribute_key(uint32_t key) const {
  auto it = FindSorted(attribute_keys_, key);
  if (it == attribute_keys_.end()) return std::nullopt;
  return std::string_view(attribute_names_[it->second]);
}

std::optional<std::string_view> HeapGraph::name(uint32_t i) const { return Lookup(names_, i); }
std::optional<std::string_view> HeapGraph::value(uint32_t i) const { return Lookup(values_, i); }

uint32_t HeapGraph::absorbed_dict_refs(uint32_t i) const {
  auto it = FindSorted(absorbed_, i);
  return it == absorbed_.end() ? 0 : it->second;
}

std::optional<uint32_t> HeapGraph::Find(uint64_t address) const {
  auto it = std::lower_bound(address_.begin(), address_.end(), address);
  if (it == address_.end() || *it != address) return std::nullopt;
  return static_cast<uint32_t>(it - address_.begin());
}

void HeapGraph::BuildParents() {
  if (has_parents()) return;
  const uint32_t n = static_cast<uint32_t>(size());
  const uint64_t cap = max_parents_ < 0 ? UINT64_MAX : static_cast<uint64_t>(max_parents_);
  // Distinct referrers per object: a parent's references are contiguous, so remembering the
  // last parent counted for each child removes its duplicates.
  std::vector<uint32_t> last(n, kNone);
  std::vector<uint32_t> count(n, 0);
  for (uint32_t p = 0; p < n; ++p) {
    for (uint32_t c : refs(p)) {
      if (last[c] != p) {
        last[c] = p;
        ++count[c];
      }
    }
  }
  parent_begin_.resize(n + 1);
  uint64_t total = 0;
  for (uint32_t c = 0; c < n; ++c) {
    parent_begin_[c] = static_cast<uint32_t>(total);
    const uint64_t kept = std::min<uint64_t>(count[c], cap);
    if (kept != count[c]) {
      true_parent_counts_.emplace_back(c, count[c]);
      parents_capped_ = true;
    }
    total += kept;
  }
  parent_begin_[n] = static_cast<uint32_t>(total);
  parents_.resize(total);
  std::fill(last.begin(), last.end(), kNone);
  std::vector<uint32_t>& filled = count;  // Reused as the per-child cursor.
  std::fill(filled.begin(), filled.end(), 0);
  for (uint32_t p = 0; p < n; ++p) {
    for (uint32_t c : refs(p)) {
      if (last[c] == p) continue;
      last[c] = p;
      if (filled[c] < parent_begin_[c + 1] - parent_begin_[c]) {
        parents_[parent_begin_[c] + filled[c]++] = p;
      }
    }
  }
}

uint64_t HeapGraph::true_parent_count(uint32_t i) const {
  auto it = FindSorted(true_parent_counts_, i);
  return it == true_parent_counts_.end() ? parents(i).size() : it->second;
}

uint64_t HeapGraph::total_bytes() const {
  return std::accumulate(size_.begin(), size_.end(), uint64_t{0});
}

uint64_t HeapGraph::memory_bytes() const {
  auto bytes = [](const auto& v) { return v.capacity() * sizeof(v[0]); };
  uint64_t total = bytes(address_) + bytes(size_) + bytes(type_) + bytes(length_) +
                   bytes(ref_begin_) + bytes(refs_) + bytes(parent_begin_) + bytes(parents_) +
                   bytes(true_ref_counts_) + bytes(true_parent_counts_) + bytes(absorbed_) +
                   bytes(roots_) + bytes(attributes_) + bytes(attribute_keys_);
  for (const Sparse* s : {&names_, &values_}) {
    total += bytes(*s);
    for (const auto& [i, text] : *s) total += text.capacity() > 15 ? text.capacity() : 0;
  }
  return total;
}

}  // namespace tidemark::analysis
