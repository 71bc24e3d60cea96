#include "analysis/exports.h"

#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <unordered_map>

#include "analysis/queries.h"

namespace tidemark::analysis {
namespace {

// The dominator tree folded by type: a node per distinct path of types from the root.
struct TypeTree {
  struct Node {
    uint32_t parent = kNone;
    uint32_t type = kNone;  // kNone for the root.
    uint32_t depth = 0;
    uint64_t self_bytes = 0;
    uint64_t self_objects = 0;
    uint64_t entries = 0;      // Objects that entered this node from another type.
    uint64_t entry_bytes = 0;  // What those retain.
    uint64_t entry_objects = 0;
  };
  std::vector<Node> nodes = {Node{}};
};

TypeTree FoldByType(const HeapGraph& g, const Dominators& d) {
  TypeTree tree;
  std::vector<uint32_t> node_of(g.size(), 0);
  std::unordered_map<uint64_t, uint32_t> child;  // (parent node << 32 | type) -> node.
  std::vector<uint64_t> subtree_objects(g.size(), 1);
  for (auto it = d.preorder().rbegin(); it != d.preorder().rend(); ++it) {
    if (d.idom(*it) != kNone) subtree_objects[d.idom(*it)] += subtree_objects[*it];
  }
  for (uint32_t v : d.preorder()) {
    const uint32_t up = d.idom(v);
    const uint32_t up_node = up == kNone ? 0 : node_of[up];
    uint32_t node = up_node;
    const bool same_type = up != kNone && g.type(up) == g.type(v);
    if (!same_type && tree.nodes[up_node].depth < kMaxFrames) {
      const uint64_t key = (uint64_t{up_node} << 32) | g.type(v);
      auto [found, added] = child.emplace(key, static_cast<uint32_t>(tree.nodes.size()));
      if (added) {
        TypeTree::Node n;
        n.parent = up_node;
        n.type = g.type(v);
        n.depth = tree.nodes[up_node].depth + 1;
        tree.nodes.push_back(n);
      }
      node = found->second;
      tree.nodes[node].entries += 1;
      tree.nodes[node].entry_bytes += d.retained(v);
      tree.nodes[node].entry_objects += subtree_objects[v];
    }
    node_of[v] = node;
    tree.nodes[node].self_bytes += g.bytes(v);
    tree.nodes[node].self_objects += 1;
  }
  return tree;
}

}  // namespace

void WriteFoldedStacks(const HeapGraph& g, const Dominators& d, std::ostream& out) {
  const TypeTree tree = FoldByType(g, d);
  std::vector<std::string> stack;
  for (uint32_t k = 1; k < tree.nodes.size(); ++k) {
    const auto& n = tree.nodes[k];
    if (n.self_bytes == 0) continue;
    stack.clear();
    for (uint32_t x = k; x != 0; x = tree.nodes[x].parent) {
      stack.push_back(g.type_names()[tree.nodes[x].type]);
    }
    for (auto it = stack.rbegin(); it != stack.rend(); ++it) {
      for (char c : *it) out << (c == ';' || c == ' ' ? '_' : c);  // Separators of the format.
      out << (it + 1 == stack.rend() ? ' ' : ';');
    }
    out << n.self_bytes << '\n';
  }
}

void WriteCallgrind(const HeapGraph& g, const Dominators& d, std::ostream& out) {
  const TypeTree tree = FoldByType(g, d);
  const uint32_t types = static_cast<uint32_t>(g.type_names().size());
  const uint32_t roots_fn = types;  // "<roots>", the virtual root.
  struct Call {
    uint64_t calls = 0, bytes = 0, objects = 0;
  };
  std::vector<uint64_t> self_bytes(types + 1, 0), self_objects(types + 1, 0);
  std::vector<std::map<uint32_t, Call>> calls(types + 1);
  uint64_t total_bytes = 0, total_objects = 0;
  for (uint32_t k = 1; k < tree.nodes.size(); ++k) {
    const auto& n = tree.nodes[k];
    self_bytes[n.type] += n.self_bytes;
    self_objects[n.type] += n.self_objects;
    total_bytes += n.self_bytes;
    total_objects += n.self_objects;
    const uint32_t caller = n.parent == 0 ? roots_fn : tree.nodes[n.parent].type;
    Call& c = calls[caller][n.type];
    c.calls += n.entries;
    c.bytes += n.entry_bytes;
    c.objects += n.entry_objects;
  }
  out << "# callgrind format\nversion: 1\ncreator: tidemark\npositions: line\n"
      << "events: Bytes Objects\n";
  out << "summary: " << total_bytes << ' ' << total_objects << "\n\n";
  out << "fl=(1) python-heap\n";
  auto name = [&](uint32_t f) {
    std::string n = f == roots_fn ? "<roots>" : g.type_names()[f];
    for (char& c : n) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    return n;
  };
  // Names are compressed: "(id) name" the first time, "(id)" after.
  std::vector<bool> named(types + 1, false);
  auto fn_ref = [&](uint32_t f) {
    std::string text = "(" + std::to_string(f + 1) + ")";
    if (!named[f]) {
      named[f] = true;
      text += " " + name(f);
    }
    return text;
  };
  for (uint32_t f = 0; f <= types; ++f) {
    if (self_objects[f] == 0 && calls[f].empty()) continue;
    out << "fn=" << fn_ref(f) << '\n';
    out << "0 " << self_bytes[f] << ' ' << self_objects[f] << '\n';
    for (const auto& [callee, c] : calls[f]) {
      out << "cfn=" << fn_ref(callee) << '\n';
      out << "calls=" << c.calls << " 0\n";
      out << "0 " << c.bytes << ' ' << c.objects << '\n';
    }
    out << '\n';
  }
  out << "totals: " << total_bytes << ' ' << total_objects << '\n';
}

void WriteHeapSnapshot(const HeapGraph& g, std::ostream& out) {
  // Node types and edge types as Chrome's V8 snapshots declare them.
  enum NodeType {
    kHidden = 0,
    kArray = 1,
    kString = 2,
    kObject = 3,
    kCode = 4,
    kClosure = 5,
    kNumber = 7,
    kNative = 8,
    kSynthetic = 9
  };
  enum EdgeType { kElement = 1, kProperty = 2, kInternal = 3 };
  constexpr int kNodeFields = 7;
  std::unordered_map<std::string, uint32_t> string_ids;
  std::vector<std::string> strings;
  auto intern = [&](const std::string& s) {
    auto [it, added] = string_ids.emplace(s, static_cast<uint32_t>(strings.size()));
    if (added) strings.push_back(s);
    return it->second;
  };
  auto node_type = [&](uint32_t i) {
    const std::string& t = g.type_name(i);
    if (t == "str") return kString;
    if (t == "int" || t == "float" || t == "bool" || t == "complex") return kNumber;
    if (t == "code") return kCode;
    if (t == "function" || t == "method" || t == "builtin_function_or_method") return kClosure;
    if (t == "list" || t == "tuple" || t == "dict" || t == "set" || t == "frozenset") return kArray;
    return kObject;
  };
  const auto& roots = g.roots();
  const uint64_t node_count = g.size() + 1;
  const uint64_t edge_count = g.reference_count() + roots.size();

  out << R"({"snapshot":{"meta":{"node_fields":["type","name","id","self_size","edge_count","trace_node_id","detachedness"],)"
      << R"("node_types":[["hidden","array","string","object","code","closure","regexp","number","native","synthetic","concatenated string","sliced string","symbol","bigint","object shape"],"string","number","number","number","number","number"],)"
      << R"("edge_fields":["type","name_or_index","to_node"],)"
      << R"("edge_types":[["context","element","property","internal","hidden","shortcut","weak"],"string_or_number","node"],)"
      << R"("trace_function_info_fields":["function_id","name","script_name","script_id","line","column"],)"
      << R"("trace_node_fields":["id","function_info_index","count","size","children"],)"
      << R"("sample_fields":["timestamp_us","last_assigned_id"],)"
      << R"("location_fields":["object_index","script_id","line","column"]},)"
      << "\"node_count\":" << node_count << ",\"edge_count\":" << edge_count
      << ",\"trace_function_count\":0},\n\"nodes\":[";
  // Node 0: the synthetic root. Ids: 1 for it, then 2 * index + 3 (odd, as V8's objects).
  out << kSynthetic << ',' << intern("(Python roots)") << ",1,0," << roots.size() << ",0,0";
  for (uint32_t i = 0; i < g.size(); ++i) {
    const NodeType type = node_type(i);
    std::string name = g.type_name(i);
    if (type == kString) {
      if (auto v = g.value(i)) name = std::string(*v);
    } else if (auto n = g.name(i)) {
      name += " " + std::string(*n);
    }
    out << ",\n"
        << type << ',' << intern(name) << ',' << (2 * uint64_t{i} + 3) << ',' << g.bytes(i) << ','
        << g.refs(i).size() << ",0,0";
  }
  out << "],\n\"edges\":[";
  bool first = true;
  for (size_t k = 0; k < roots.size(); ++k) {
    out << (first ? "" : ",\n") << kElement << ',' << k << ','
        << (uint64_t{roots[k].first} + 1) * kNodeFields;
    first = false;
  }
  for (uint32_t i = 0; i < g.size(); ++i) {
    const auto refs = g.refs(i);
    const std::string& type = g.type_name(i);
    const bool indexed = type == "list" || type == "tuple";
    for (size_t p = 0; p < refs.size(); ++p) {
      out << (first ? "" : ",\n");
      first = false;
      const uint64_t to = (uint64_t{refs[p]} + 1) * kNodeFields;
      if (indexed) {
        out << kElement << ',' << p << ',' << to;
        continue;
      }
      std::string edge = EdgeName(g, i, p);
      const bool property = edge[0] == '.' || edge[0] == '[';
      if (edge[0] == '.') edge = edge.substr(1);
      out << (property ? kProperty : kInternal) << ',' << intern(edge) << ',' << to;
    }
  }
  out << "],\n\"trace_function_infos\":[],\"trace_tree\":[],\"samples\":[],\"locations\":[],"
         "\n\"strings\":[";
  for (size_t k = 0; k < strings.size(); ++k) {
    out << (k ? ",\n" : "")
        << nlohmann::json(strings[k])
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  out << "]}\n";
}

}  // namespace tidemark::analysis
