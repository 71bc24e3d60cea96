// Hand-built graph snapshots for the analysis tests: objects by name, with types, sizes,
// references, names, values and roots, turned into a snapshot::Snapshot.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "snapshot/snapshot.h"

namespace tidemark::analysis::testing {

class GraphBuilder {
 public:
  // Adds an object; addresses are 0x1000 apart, in insertion order unless given.
  GraphBuilder& Add(const std::string& id, const std::string& type, uint64_t size,
                    std::vector<std::string> refs = {}, uint64_t address = 0) {
    Object o{type, size, std::move(refs), address ? address : 0x10000 + 0x1000 * objects_.size()};
    index_[id] = objects_.size();
    objects_.push_back(std::move(o));
    return *this;
  }
  GraphBuilder& Name(const std::string& id, const std::string& name) {
    names_.emplace_back(id, name);
    return *this;
  }
  GraphBuilder& Value(const std::string& id, const std::string& value) {
    values_.emplace_back(id, value);
    return *this;
  }
  GraphBuilder& Root(const std::string& id, snapshot::RootKind kind = snapshot::RootKind::kModule) {
    roots_.emplace_back(id, kind);
    return *this;
  }
  uint64_t AddressOf(const std::string& id) const { return objects_[index_.at(id)].address; }

  snapshot::Snapshot Build() const {
    snapshot::Snapshot s;
    s.header.kind = snapshot::Kind::kGraph;
    s.header.identity = {"test", "host", 1, 1, {}};
    s.header.has_values = !values_.empty();
    std::map<std::string, uint32_t> types;
    snapshot::Graph& g = s.graph;
    g.ref_begin.push_back(0);
    for (const Object& o : objects_) {
      auto [it, added] = types.emplace(o.type, static_cast<uint32_t>(s.types.size()));
      if (added) s.types.push_back({o.type, 0, 0, 0});
      s.types[it->second].count += 1;
      s.types[it->second].bytes += o.size;
      g.address.push_back(o.address);
      g.type.push_back(it->second);
      g.size.push_back(o.size);
      g.length.push_back(0);
      for (const std::string& r : o.refs) g.refs.push_back(static_cast<uint32_t>(index_.at(r)));
      g.ref_begin.push_back(g.refs.size());
    }
    for (const auto& [id, name] : names_) g.names.emplace_back(index_.at(id), name);
    for (const auto& [id, value] : values_) g.values.emplace_back(index_.at(id), value);
    for (const auto& [id, kind] : roots_) g.roots.emplace_back(index_.at(id), kind);
    s.header.objects = objects_.size();
    s.header.types = s.types.size();
    return s;
  }

 private:
  struct Object {
    std::string type;
    uint64_t size;
    std::vector<std::string> refs;
    uint64_t address;
  };
  std::vector<Object> objects_;
  std::map<std::string, size_t> index_;
  std::vector<std::pair<std::string, std::string>> names_;
  std::vector<std::pair<std::string, std::string>> values_;
  std::vector<std::pair<std::string, snapshot::RootKind>> roots_;
};

}  // namespace tidemark::analysis::testing
