#include "analysis/queries.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <unordered_map>

#include "snapshot/names.h"

namespace tidemark::analysis {
namespace {

std::string Hex(uint64_t address) {
  char out[24];
  std::snprintf(out, sizeof out, "0x%" PRIx64, address);
  return out;
}

std::string Quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "'";
}

// How a dict key reads inside brackets: 'text', 42, <key> (a str whose value was not
// captured), or <type>.
std::string KeyText(const HeapGraph& g, uint32_t key) {
  const std::string& type = g.type_name(key);
  if (auto v = g.value(key)) {
    if (type == "str") return Quoted(*v);
    return std::string(*v);
  }
  return type == "str" ? "<key>" : "<" + type + ">";
}

// A recorded attribute name: .name, or <attribute 'x-y'> for a name Python spells only with
// getattr.
std::string AttributeText(std::string_view name) {
  if (snapshot::IsIdentifier(name)) return "." + std::string(name);
  return "<attribute " + Quoted(name) + ">";
}

}  // namespace

std::vector<snapshot::TypeStat> TypeTable(const HeapGraph& g,
                                          const std::vector<uint32_t>& objects) {
  std::vector<snapshot::TypeStat> rows(g.type_names().size());
  auto add = [&](uint32_t i) {
    snapshot::TypeStat& r = rows[g.type(i)];
    r.count += 1;
    r.bytes += g.bytes(i);
    r.max_bytes = std::max(r.max_bytes, g.bytes(i));
  };
  if (objects.empty()) {
    for (uint32_t i = 0; i < g.size(); ++i) add(i);
  } else {
    for (uint32_t i : objects) add(i);
  }
  for (size_t t = 0; t < rows.size(); ++t) rows[t].name = g.type_names()[t];
  std::erase_if(rows, [](const snapshot::TypeStat& r) { return r.count == 0; });
  std::sort(rows.begin(), rows.end(), [](const snapshot::TypeStat& a, const snapshot::TypeStat& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.count > b.count;
  });
  return rows;
}

std::vector<uint32_t> Reachable(const HeapGraph& g, uint32_t from,
                                const std::vector<uint32_t>& excluding) {
  std::vector<bool> seen(g.size(), false);
  for (uint32_t x : excluding) seen[x] = true;
  std::vector<uint32_t> out;
  if (seen[from]) return out;
  std::vector<uint32_t> stack = {from};
  seen[from] = true;
  while (!stack.empty()) {
    const uint32_t v = stack.back();
    stack.pop_back();
    out.push_back(v);
    for (uint32_t w : g.refs(v)) {
      if (!seen[w]) {
        seen[w] = true;
        stack.push_back(w);
      }
    }
  }
  return out;
}

size_t PositionOf(const HeapGraph& g, uint32_t parent, uint32_t child) {
  const auto refs = g.refs(parent);
  auto it = std::find(refs.begin(), refs.end(), child);
  return it == refs.end() ? SIZE_MAX : static_cast<size_t>(it - refs.begin());
}

std::string EdgeName(const HeapGraph& g, uint32_t parent, size_t position) {
  const std::string& type = g.type_name(parent);
  const auto refs = g.refs(parent);
  if (position >= refs.size()) return "<ref>";
  const uint32_t dict_refs = g.absorbed_dict_refs(parent);
  const bool key_position = (position < dict_refs || type == "dict") && position % 2 == 0;
  if (!key_position) {
    if (auto attribute = g.attribute(parent, refs[position])) return AttributeText(*attribute);
  }
  if (position < dict_refs || type == "dict") {
    // Key, value pairs: an absorbed instance or module dict names attributes.
    if (position % 2 == 0) return "<key>";
    const uint32_t key = refs[position - 1];
    if (position < dict_refs) {
      if (auto name = g.attribute_key(key)) return AttributeText(*name);
      auto v = g.value(key);  // Format 1: the key's value, when captured.
      if (v && g.type_name(key) == "str" && snapshot::IsIdentifier(*v))
        return "." + std::string(*v);
    }
    return "[" + KeyText(g, key) + "]";
  }
  if (dict_refs > 0 && position == refs.size() - 1) {
    auto last = g.name(refs[position]);  // An instance's type, named like the instance's.
    if (last && *last == type) return "<type>";
  }
  if (type == "list" || type == "tuple") return "[" + std::to_string(position) + "]";
  if (type == "set" || type == "frozenset") return "<member>";
  return "<ref " + std::to_string(position) + ">";
}

std::string Describe(const HeapGraph& g, uint32_t i) {
  const std::string& type = g.type_name(i);
  if (auto name = g.name(i)) return type + " " + std::string(*name);
  if (auto value = g.value(i)) {
    std::string text(*value);
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    return type + " " + (type == "str" ? Quoted(text) : text);
  }
  return type + "@" + Hex(g.address(i));
}

std::string FormatPath(const HeapGraph& g, const std::vector<uint32_t>& objects) {
  if (objects.empty()) return "";
  std::string named;
  bool all_named = true;
  if (auto name = g.name(objects[0]); name && g.type_name(objects[0]) == "module") {
    named = std::string(*name);
  } else {
    named = "<" + Describe(g, objects[0]) + ">";
  }
  std::string arrows = Describe(g, objects[0]);
  for (size_t k = 1; k < objects.size(); ++k) {
    const std::string edge = EdgeName(g, objects[k - 1], PositionOf(g, objects[k - 1], objects[k]));
    all_named &= edge[0] != '<';
    named += edge[0] == '<' ? " " + edge + " " : edge;
    arrows += " -> " + Describe(g, objects[k]);
  }
  return all_named ? named : named + "    (" + arrows + ")";
}

PathFinder::PathFinder(const HeapGraph& g) : g_(g), stamp_(g.size(), 0), next_(g.size(), kNone) {}

std::vector<Path> PathFinder::Find(const std::vector<uint32_t>& targets,
                                   const PathOptions& options) {
  std::vector<Path> paths;
  if (++generation_ == 0) {  // Wrapped: start the stamps over.
    std::fill(stamp_.begin(), stamp_.end(), 0);
    generation_ = 1;
  }
  std::deque<std::pair<uint32_t, uint32_t>> queue;  // (object, depth)
  for (uint32_t t : targets) {
    if (stamp_[t] == generation_) continue;
    stamp_[t] = generation_;
    next_[t] = kNone;
    queue.emplace_back(t, 0);
  }
  size_t visits = 0;
  while (!queue.empty() && paths.size() < options.max_paths && visits < options.max_visits) {
    const auto [v, depth] = queue.front();
    queue.pop_front();
    ++visits;
    if (auto reason = g_.root_reason(v)) {
      Path p;
      p.root = *reason;
      for (uint32_t x = v; x != kNone; x = next_[x]) p.objects.push_back(x);
      p.text = FormatPath(g_, p.objects);
      paths.push_back(std::move(p));
      continue;  // A root ends its chain; other chains may reach other roots.
    }
    if (depth >= options.max_depth) continue;
    for (uint32_t parent : g_.parents(v)) {
      if (stamp_[parent] == generation_) continue;
      stamp_[parent] = generation_;
      next_[parent] = v;
      queue.emplace_back(parent, depth + 1);
    }
  }
  return paths;
}

std::vector<uint32_t> InstancesOf(const HeapGraph& g, std::string_view type) {
  std::vector<uint32_t> out;
  const auto& names = g.type_names();
  auto it = std::find(names.begin(), names.end(), type);
  if (it == names.end()) return out;
  const uint32_t t = static_cast<uint32_t>(it - names.begin());
  for (uint32_t i = 0; i < g.size(); ++i) {
    if (g.type(i) == t) out.push_back(i);
  }
  return out;
}

}  // namespace tidemark::analysis
