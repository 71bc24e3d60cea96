// A graph snapshot loaded for analysis: who is what, who refers to whom, who holds what.
//
// Objects are struct-of-arrays ordered by address, so an address is found by binary search
// (no hash to cluster on aligned addresses, no memory beyond the column itself). References
// are object indices in CSR arrays (refs of object i: refs[ref_begin[i] .. ref_begin[i+1])).
// Parents are a second CSR built on demand (BuildParents), de-duplicated and optionally
// capped per object with the true count kept. Steady state: 32 bytes per object (address 8,
// size 8, type 4, length 4, ref_begin 4, parent_begin 4) and 8 per reference (ref + parent).
//
// Load-time options strip what a question does not need: values, references beyond a cap,
// parents beyond a cap (meliae's max_parents). A result computed on a capped graph says so:
// refs_capped() / parents_capped().
//
// Namespaces are collapsed by default: an instance absorbs its __dict__, a module or a class
// its namespace dict — the dict's references become the owner's, its size is added, the dict
// is gone, and references to it from elsewhere point at its owner. Which dict is whose comes
// from the snapshot (format 2: the agent records it, with attribute names); for format 1 and
// meliae imports it is inferred as meliae does (an object whose references are exactly a dict
// and its type; a module: exactly a dict), which ownership_inferred() says.
//
// Thread-safety: const methods are safe from many threads once BuildParents() has run.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "snapshot/result.h"
#include "snapshot/snapshot.h"

namespace tidemark::analysis {

using snapshot::Fail;
using snapshot::Result;

inline constexpr uint32_t kNone = UINT32_MAX;

// Why an object is a root of the reference graph.
enum class RootReason : uint8_t {
  kModule = 1,        // The agent saw it in sys.modules.
  kThreadFrame = 2,   // Held by a thread's running frame.
  kInterpreter = 3,   // The interpreter's own (sys.modules itself).
  kUnreferenced = 4,  // Nothing in the snapshot refers to it: held from C, or by the walk's caller.
  kCycle = 5,         // One member of a cycle nothing outside the cycle refers to.
};
const char* RootReasonName(RootReason reason);

struct LoadOptions {
  bool collapse_instance_dicts = true;
  bool keep_values = true;
  int64_t max_refs = -1;      // Per object; -1: all.
  int64_t max_parents = 100;  // Per object, for BuildParents; -1: all; 0: none.
  // Called now and then during long steps: (what, done, total).
  std::function<void(std::string_view, uint64_t, uint64_t)> progress = {};
};

class HeapGraph {
 public:
  // Takes the snapshot's graph apart (it is left empty). Fails on graphs with more than
  // 2^32 - 2 objects or references, or a snapshot that is not a graph.
  static Result<HeapGraph> Load(snapshot::Snapshot&& snapshot, const LoadOptions& options = {});

  const snapshot::Header& header() const { return header_; }
  size_t size() const { return address_.size(); }
  uint64_t reference_count() const { return refs_.size(); }

  uint64_t address(uint32_t i) const { return address_[i]; }
  uint64_t bytes(uint32_t i) const { return size_[i]; }
  uint32_t length(uint32_t i) const { return length_[i]; }
  uint32_t type(uint32_t i) const { return type_[i]; }
  const std::string& type_name(uint32_t i) const { return type_names_[type_[i]]; }
  const std::vector<std::string>& type_names() const { return type_names_; }
  std::span<const uint32_t> refs(uint32_t i) const {
    return {refs_.data() + ref_begin_[i], refs_.data() + ref_begin_[i + 1]};
  }
  // References the object really had, when refs(i) was capped (by the agent or at load).
  uint64_t true_ref_count(uint32_t i) const;
  std::optional<std::string_view> name(uint32_t i) const;   // Modules, functions, classes.
  std::optional<std::string_view> value(uint32_t i) const;  // Short values, when captured.
  // How many leading refs(i) came from an absorbed __dict__ (key, value pairs), or 0.
  uint32_t absorbed_dict_refs(uint32_t i) const;
  // The attribute name under which `owner` refers to `target`, when the agent recorded one
  // (format 2): an attribute kept inline, a __slots__ member, a C field such as __closure__.
  std::optional<std::string_view> attribute(uint32_t owner, uint32_t target) const;
  // The attribute name a str object stands for as a key of a namespace dict (format 2).
  std::optional<std::string_view> attribute_key(uint32_t key) const;
  // Some namespace was folded by meliae's guess, not by what the agent recorded.
  bool ownership_inferred() const { return ownership_inferred_; }

  std::optional<uint32_t> Find(uint64_t address) const;

  // Roots: the agent's, then one per source component of what those do not reach (an object
  // nothing refers to, or one member of a cycle nothing outside refers to). Every object is
  // reachable from some root. Sorted by object index.
  const std::vector<std::pair<uint32_t, RootReason>>& roots() const { return roots_; }
  std::optional<RootReason> root_reason(uint32_t i) const;

  void BuildParents();  // REQUIRES: nothing; idempotent.
  bool has_parents() const { return !parent_begin_.empty(); }
  // REQUIRES: BuildParents() ran.
  std::span<const uint32_t> parents(uint32_t i) const {
    return {parents_.data() + parent_begin_[i], parents_.data() + parent_begin_[i + 1]};
  }
  uint64_t true_parent_count(uint32_t i) const;  // Distinct referrers, before the cap.

  bool refs_capped() const { return refs_capped_; }
  bool parents_capped() const { return parents_capped_; }
  bool values_dropped() const { return values_dropped_; }
  uint64_t total_bytes() const;

  // Bytes held in memory by this structure (for benchmarks).
  uint64_t memory_bytes() const;

 private:
  using Sparse = std::vector<std::pair<uint32_t, std::string>>;  // Sorted by index.
  static std::optional<std::string_view> Lookup(const Sparse& sparse, uint32_t i);
  void ComputeRoots(const std::vector<std::pair<uint32_t, RootReason>>& recorded);

  snapshot::Header header_;
  std::vector<std::string> type_names_;
  std::vector<uint64_t> address_;
  std::vector<uint64_t> size_;
  std::vector<uint32_t> type_;
  std::vector<uint32_t> length_;
  std::vector<uint32_t> ref_begin_;
  std::vector<uint32_t> refs_;
  std::vector<std::pair<uint32_t, uint64_t>> true_ref_counts_;  // Sorted by index.
  Sparse names_;
  Sparse values_;
  std::vector<std::pair<uint32_t, uint32_t>> absorbed_;  // (owner, dict refs); sorted.
  std::vector<std::string> attribute_names_;
  std::vector<snapshot::Graph::Attribute> attributes_;         // Sorted by (owner, target).
  std::vector<std::pair<uint32_t, uint32_t>> attribute_keys_;  // (key, name); sorted.
  bool ownership_inferred_ = false;
  std::vector<uint32_t> parent_begin_;
  std::vector<uint32_t> parents_;
  std::vector<std::pair<uint32_t, uint64_t>> true_parent_counts_;
  int64_t max_parents_ = 100;
  bool refs_capped_ = false;
  bool parents_capped_ = false;
  bool values_dropped_ = false;
  std::vector<std::pair<uint32_t, RootReason>> roots_;
};

}  // namespace tidemark::analysis
