// Hand-built graph snapshots for the analysis tests: objects by name, with types, sizes,
// references, names, values and roots, turned into a snapshot::Snapshot.
#pragma once

#include <array>
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
  // Format 2: `dict` is `owner`'s namespace (recorded ownership from now on).
  GraphBuilder& Owns(const std::string& owner, const std::string& dict) {
    recorded_ = true;
    owners_.emplace_back(dict, owner);
    return *this;
  }
  // Format 2: owner.<name> is target.
  GraphBuilder& Attribute(const std::string& owner, const std::string& name,
                          const std::string& target) {
    recorded_ = true;
    attributes_.push_back({owner, name, target});
    return *this;
  }
  // Format 2: the str object `key` names an attribute (as a key of a namespace dict).
  GraphBuilder& AttributeKey(const std::string& key, const std::string& name) {
    recorded_ = true;
    attribute_keys_.emplace_back(key, name);
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
    g.ownership_recorded = recorded_;
    for (const auto& [dict, owner] : owners_)
      g.owners.emplace_back(static_cast<uint32_t>(index_.at(dict)),
                            static_cast<uint32_t>(index_.at(owner)));
    for (const auto& a : attributes_) {
      g.attributes.push_back({static_cast<uint32_t>(index_.at(a[0])),
                              static_cast<uint32_t>(index_.at(a[2])),
                              static_cast<uint32_t>(g.attribute_names.size())});
      g.attribute_names.push_back(a[1]);
    }
    for (const auto& [key, name] : attribute_keys_) {
      g.attribute_keys.emplace_back(static_cast<uint32_t>(index_.at(key)),
                                    static_cast<uint32_t>(g.attribute_names.size()));
      g.attribute_names.push_back(name);
    }
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
  bool recorded_ = false;
  std::vector<std::pair<std::string, std::string>> owners_;          // (dict, owner)
  std::vector<std::array<std::string, 3>> attributes_;               // (owner, name, target)
  std::vector<std::pair<std::string, std::string>> attribute_keys_;  // (key, name)
};

// app.cache['users'] = [7, Session(user='alice')] with values captured: the module's and the
// Session's __dict__ collapse into them; `second_session` appends one more Session to the list.
inline GraphBuilder AppHeap(bool second_session = false) {
  GraphBuilder b;
  b.Add("app", "module", 72, {"app_dict"}).Name("app", "app");
  b.Add("app_dict", "dict", 100, {"k_cache", "cache"});
  b.Add("k_cache", "str", 50).Value("k_cache", "cache");
  b.Add("cache", "dict", 200, {"k_users", "users"});
  b.Add("k_users", "str", 50).Value("k_users", "users");
  std::vector<std::string> users = {"seven", "session"};
  if (second_session) users.push_back("session2");
  b.Add("users", "list", 80, users);
  b.Add("seven", "int", 28).Value("seven", "7");
  b.Add("session", "app.Session", 48, {"session_dict", "Session_type"}, 0xabc000);
  b.Add("Session_type", "type", 900).Name("Session_type", "app.Session");
  b.Add("session_dict", "dict", 104, {"k_user", "user"});
  b.Add("k_user", "str", 50).Value("k_user", "user");
  b.Add("user", "str", 60).Value("user", "alice");
  if (second_session) b.Add("session2", "app.Session", 48, {"Session_type"}, 0xdef000);
  b.Root("app");
  return b;
}

}  // namespace tidemark::analysis::testing
