#include "agent/walker.h"

#include "agent/compat.h"
// compat.h brings Python.h first, as CPython requires.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "agent/address_tables.h"
#include "agent/process_memory.h"
#include "agent/sampler.h"
#include "snapshot/names.h"

namespace tidemark::agent {

void AppendUtf8(PyObject* str, size_t max_chars, std::string* out) {
  if (!tm_str_readable(str)) return;
  const Py_ssize_t length = PyUnicode_GET_LENGTH(str);
  const size_t n = std::min<size_t>(static_cast<size_t>(length), max_chars);
  const int kind = PyUnicode_KIND(str);
  const void* data = PyUnicode_DATA(str);
  if (kind == PyUnicode_1BYTE_KIND && PyUnicode_IS_ASCII(str)) {
    out->append(static_cast<const char*>(data), n);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    Py_UCS4 c = PyUnicode_READ(kind, data, i);
    if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (c >> 6)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (c >> 12)));
      out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (c >> 18)));
      out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
}

namespace {

using Clock = std::chrono::steady_clock;

enum class Sizer : uint8_t { kDefault, kInt, kStr, kList, kDict, kSet, kCMethod };
enum class Length : uint8_t { kNone, kStr, kVar, kList, kDict, kSet };

struct TypeInfo {
  uint32_t row = 0;
  bool excluded = false;
  bool exact_dict = false;
  bool has_sizer = false;      // Listed for a configured sizer after the walk.
  bool may_have_dict = false;  // Instances can have a __dict__ (folded into them).
  bool has_slots = false;      // A heap type with object members (__slots__).
  Sizer sizer = Sizer::kDefault;
  Length length = Length::kNone;
  // The pre-header depends on the type alone unless the type decides per object
  // (tp_is_gc: type objects). -1 until the first object of the type is sized.
  mutable int64_t preheader = -1;
  bool per_object_preheader = false;
  PyCFunction sizeof_method = nullptr;
};

// Objects made once per process, before any walk, so that walks never allocate them.
struct Interned {
  PyObject* sizeof_name = nullptr;
  PyObject* module_key = nullptr;
  PyObject* name_key = nullptr;
  PyObject* object_sizeof = nullptr;
  PyObject* dict_sizeof = nullptr;
  PyObject* list_sizeof = nullptr;
  PyObject* set_sizeof = nullptr;
  PyObject* str_sizeof = nullptr;
};

Interned& GetInterned() {
  static Interned interned = [] {
    Interned i;
    i.sizeof_name = PyUnicode_InternFromString("__sizeof__");
    i.module_key = PyUnicode_InternFromString("__module__");
    i.name_key = PyUnicode_InternFromString("__name__");
    i.object_sizeof = tm_type_lookup(&PyBaseObject_Type, i.sizeof_name);
    i.dict_sizeof = tm_type_lookup(&PyDict_Type, i.sizeof_name);
    i.list_sizeof = tm_type_lookup(&PyList_Type, i.sizeof_name);
    i.set_sizeof = tm_type_lookup(&PySet_Type, i.sizeof_name);
    i.str_sizeof = tm_type_lookup(&PyUnicode_Type, i.sizeof_name);
    return i;
  }();
  return interned;
}

// C __sizeof__ methods of these types (CPython's own, builtin or stdlib) run no Python code.
// A method descriptor is always C; whose C is what decides.
bool TrustedCType(const PyTypeObject* type) {
  const char* name = type->tp_name;
  if (std::strchr(name, '.') == nullptr) return true;  // Builtins: "dict", "frame", ...
  for (const char* prefix : {"collections.", "_collections.", "_io.", "array.", "itertools.",
                             "functools.", "_functools.", "decimal.", "datetime."}) {
    if (std::strncmp(name, prefix, std::strlen(prefix)) == 0) return true;
  }
  return false;
}

class Walker {
 public:
  Walker(const WalkOptions& options, snapshot::Snapshot* out, UnresolvedReferences* unresolved)
      : options_(options),
        out_(out),
        unresolved_(unresolved),
        graph_(options.kind == snapshot::Kind::kGraph),
        interned_(GetInterned()) {
    exclude_.insert(options.exclude_types.begin(), options.exclude_types.end());
    sized_.insert(options.sized_types.begin(), options.sized_types.end());
  }

  WalkOutcome Run(WalkBuffers buffers) {
    start_ = Clock::now();
    start_cpu_ms_ = ThreadCpuMs();
    addresses_ = std::move(buffers.addresses);
    if (graph_) {
      out_->graph = std::move(buffers.graph);
      out_->graph.ref_begin.push_back(0);
      unresolved_->seen_ref_addresses = std::move(buffers.seen_ref_addresses);
    }

    PyObject* modules = PyImport_GetModuleDict();
    AddRoot(modules, snapshot::RootKind::kInterpreter);
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(modules, &pos, &key, &value)) AddRoot(value, snapshot::RootKind::kModule);
    tm_for_each_frame_object(
        [](PyObject* o, void* self) {
          static_cast<Walker*>(self)->AddRoot(o, snapshot::RootKind::kThreadFrame);
        },
        this);
    Drain();
    // Then whatever the collector tracks that the roots do not reach (held from C, or
    // garbage not yet collected), the permanent generation included.
    tm_for_each_gc_object(
        [](PyObject* o, void* self) {
          auto* w = static_cast<Walker*>(self);
          if (w->outcome_.abandoned) return;
          if (w->Discover(o) == Found::kNew) w->Drain();
        },
        this);
    ApplyCSizes();
    if (SamplingOn() && !outcome_.abandoned) AttributeSamples();
    Finish();
    NoteWalkedObjects(objects_, options_.rss_bytes);
    return outcome_;
  }

 private:
  enum class Found { kNew, kSeen, kExcluded };
  // Object indices are 32-bit, and the top two values mark references (kSeenBefore).
  static constexpr size_t kMaxObjects = kSeenBefore - 1;

  void AddRoot(PyObject* o, snapshot::RootKind kind) {
    if (Discover(o) == Found::kExcluded || !graph_) return;
    const uint64_t address = reinterpret_cast<uintptr_t>(o);
    if (root_seen_.insert(address).second) unresolved_->roots.emplace_back(address, kind);
  }

  Found Discover(PyObject* o) {
    // Reading the type touches the referent's memory: only done when something is excluded.
    if (!exclude_.empty() && Info(Py_TYPE(o)).excluded) return Found::kExcluded;
    const uint64_t address = reinterpret_cast<uintptr_t>(o);
    if (marks_->TestAndSet(address, GranuleMarks::kSeen)) return Found::kSeen;
    if (addresses_.size() >= kMaxObjects) {
      Abandon("more than " + std::to_string(kMaxObjects) + " objects");
      return Found::kExcluded;
    }
    addresses_.push_back(address);
    return Found::kNew;
  }

  void Drain() {
    while (cursor_ < addresses_.size() && !outcome_.abandoned) {
      // Objects are scattered in memory: fetch the header of one a few places ahead while
      // this one is processed.
      constexpr size_t kAhead = 8;
      if (cursor_ + kAhead < addresses_.size()) {
        __builtin_prefetch(reinterpret_cast<const void*>(addresses_[cursor_ + kAhead]));
      }
      Process(cursor_);
      ++cursor_;
      if ((cursor_ & 4095) == 0) CheckLimits();
    }
  }

  void CheckLimits() {
    if (options_.max_objects && addresses_.size() > options_.max_objects) {
      Abandon("object limit of " + std::to_string(options_.max_objects) + " reached");
    } else if (options_.max_pause_ms > 0 && ElapsedMs() > options_.max_pause_ms) {
      Abandon("pause limit of " + std::to_string(options_.max_pause_ms) + " ms reached");
    }
  }

  void Abandon(std::string reason) {
    outcome_.abandoned = true;
    outcome_.abandon_reason = std::move(reason);
  }

  double ElapsedMs() const {
    return std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
  }

  TypeInfo& Info(PyTypeObject* type) {
    // A direct-mapped cache in front of the map: a heap has few hot types.
    auto& cached = type_cache_[(reinterpret_cast<uintptr_t>(type) >> 4) & (kTypeCacheSize - 1)];
    if (cached.first == type) return *cached.second;
    auto [it, inserted] = types_.try_emplace(type);
    if (inserted) Describe(type, it->second);
    cached = {type, &it->second};
    return it->second;
  }

  void Describe(PyTypeObject* type, TypeInfo& info) {
    std::string name = TypeName(type);
    info.excluded = exclude_.count(name) > 0;
    info.has_sizer = sized_.count(name) > 0;
    auto [row, inserted] = row_of_.try_emplace(name, out_->types.size());
    if (inserted) out_->types.push_back(snapshot::TypeStat{name, 0, 0, 0});
    info.row = static_cast<uint32_t>(row->second);
    info.exact_dict = type == &PyDict_Type;
    info.per_object_preheader = type->tp_is_gc != nullptr;
    info.may_have_dict = type->tp_dictoffset != 0 && !PyType_IsSubtype(type, &PyType_Type);
#ifdef Py_TPFLAGS_MANAGED_DICT
    info.may_have_dict |= (type->tp_flags & Py_TPFLAGS_MANAGED_DICT) != 0;
#endif
    info.has_slots = tm_type_has_slots(type) != 0;
    if (type == &PyUnicode_Type)
      info.length = Length::kStr;
    else if (PyType_IsSubtype(type, &PyList_Type))
      info.length = Length::kList;
    else if (PyType_IsSubtype(type, &PyDict_Type))
      info.length = Length::kDict;
    else if (PyType_IsSubtype(type, &PySet_Type) || PyType_IsSubtype(type, &PyFrozenSet_Type))
      info.length = Length::kSet;
    else if (PyType_IsSubtype(type, &PyTuple_Type) || PyType_IsSubtype(type, &PyBytes_Type) ||
             type == &PyByteArray_Type)
      info.length = Length::kVar;

    if (type == &PyLong_Type || type == &PyBool_Type) {
      info.sizer = Sizer::kInt;
      return;
    }
    PyObject* method = tm_type_lookup(type, interned_.sizeof_name);
    if (method == nullptr || method == interned_.object_sizeof) return;  // kDefault
    if (method == interned_.str_sizeof)
      info.sizer = Sizer::kStr;
    else if (method == interned_.list_sizeof)
      info.sizer = Sizer::kList;
    else if (method == interned_.dict_sizeof)
      info.sizer = Sizer::kDict;
    else if (method == interned_.set_sizeof)
      info.sizer = Sizer::kSet;
    else if (Py_TYPE(method) == &PyMethodDescr_Type) {
      auto* descr = reinterpret_cast<PyMethodDescrObject*>(method);
      if ((descr->d_method->ml_flags & METH_NOARGS) && TrustedCType(descr->d_common.d_type)) {
        info.sizer = Sizer::kCMethod;
        info.sizeof_method = descr->d_method->ml_meth;
      }
    }
    // Anything else (a __sizeof__ written in Python, an unknown extension's): the default
    // layout size; configured sizers may refine it after the walk.
  }

  std::string TypeName(PyTypeObject* type) {
    if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE)) return type->tp_name;
    auto* heap = reinterpret_cast<PyHeapTypeObject*>(type);
    std::string qualname;
    if (heap->ht_qualname && PyUnicode_Check(heap->ht_qualname)) {
      AppendUtf8(heap->ht_qualname, 200, &qualname);
    } else {
      qualname = type->tp_name;
    }
    PyObject* module =
        type->tp_dict ? PyDict_GetItem(type->tp_dict, interned_.module_key) : nullptr;
    if (module == nullptr || !PyUnicode_Check(module)) return qualname;
    std::string module_name;
    AppendUtf8(module, 200, &module_name);
    if (module_name == "builtins") return qualname;
    return module_name + "." + qualname;
  }

  size_t DefaultSize(PyObject* o, PyTypeObject* type) const {
    size_t size = static_cast<size_t>(type->tp_basicsize);
    if (type->tp_itemsize > 0) {
      const Py_ssize_t n = Py_SIZE(o);
      size += static_cast<size_t>(n < 0 ? -n : n) * static_cast<size_t>(type->tp_itemsize);
    }
    return size;
  }

  size_t SizeOf(PyObject* o, const TypeInfo& info) {
    PyTypeObject* type = Py_TYPE(o);
    size_t size;
    switch (info.sizer) {
      case Sizer::kInt:
        size = tm_int_sizeof(o);
        break;
      case Sizer::kStr:
        size = tm_str_sizeof(o);
        break;
      case Sizer::kList:
        size = static_cast<size_t>(type->tp_basicsize) +
               static_cast<size_t>(reinterpret_cast<PyListObject*>(o)->allocated) * sizeof(void*);
        break;
      case Sizer::kDict:
        size = tm_dict_sizeof(o);
        break;
      case Sizer::kSet: {
        auto* set = reinterpret_cast<PySetObject*>(o);
        size = static_cast<size_t>(type->tp_basicsize);
        if (set->table != set->smalltable)
          size += static_cast<size_t>(set->mask + 1) * sizeof(setentry);
        break;
      }
      case Sizer::kCMethod:  // Its layout size for now: see ApplyCSizes.
      default:
        size = DefaultSize(o, type);
        break;
    }
    return size + Preheader(o, info);
  }

  size_t Preheader(PyObject* o, const TypeInfo& info) {
    if (info.preheader >= 0) return static_cast<size_t>(info.preheader);
    const size_t preheader = tm_preheader_size(o);
    if (!info.per_object_preheader) info.preheader = static_cast<int64_t>(preheader);
    return preheader;
  }

  uint64_t LengthOf(PyObject* o, const TypeInfo& info) const {
    switch (info.length) {
      case Length::kStr:
        if (!tm_str_readable(o)) return 0;
        return static_cast<uint64_t>(PyUnicode_GET_LENGTH(o));
      case Length::kVar:
        return static_cast<uint64_t>(Py_SIZE(o));
      case Length::kList:
        return static_cast<uint64_t>(PyList_GET_SIZE(o));
      case Length::kDict:
        return static_cast<uint64_t>(reinterpret_cast<PyDictObject*>(o)->ma_used);
      case Length::kSet:
        return static_cast<uint64_t>(PySet_GET_SIZE(o));
      default:
        return 0;
    }
  }

  static int VisitReferent(PyObject* o, void* self) {
    if (o != nullptr) static_cast<Walker*>(self)->scratch_.push_back(o);
    return 0;
  }

  // `dict` is the instance's __dict__ (tm_instance_dict), read once by Process.
  void CollectReferents(PyObject* o, const TypeInfo& info, PyObject* dict) {
    scratch_.clear();
    PyTypeObject* type = Py_TYPE(o);
    if (info.exact_dict) {
      // dict's tp_traverse skips str keys; this shows keys and values in order.
      Py_ssize_t pos = 0;
      PyObject *key, *value;
      while (PyDict_Next(o, &pos, &key, &value)) {
        scratch_.push_back(key);
        scratch_.push_back(value);
      }
      return;
    }
    if (PyObject_IS_GC(o) && type->tp_traverse != nullptr) {
      type->tp_traverse(o, &Walker::VisitReferent, this);
    } else if (PyType_Check(o)) {
      // A static type: not GC, and its tp_traverse must never be called.
      auto* t = reinterpret_cast<PyTypeObject*>(o);
      for (PyObject* r :
           {t->tp_dict, t->tp_bases, t->tp_mro, reinterpret_cast<PyObject*>(t->tp_base)}) {
        if (r != nullptr) scratch_.push_back(r);
      }
    } else if (PyCode_Check(o)) {
      tm_code_referents(
          o, [](PyObject* r, void* self) { VisitReferent(r, self); }, this);
    }
    if (info.length == Length::kDict) {
      Py_ssize_t pos = 0;
      PyObject *key, *value;
      while (PyDict_Next(o, &pos, &key, &value)) scratch_.push_back(key);
    }
    if (dict != nullptr) {
      if (std::find(scratch_.begin(), scratch_.end(), dict) == scratch_.end()) {
        scratch_.push_back(dict);
      }
      if (tm_dict_uses_instance_values(o)) DropValuesHeldThroughDict(dict);
    }
  }

  // 3.13 keeps a materialized __dict__'s values inside the instance, and the instance's
  // traverse shows them besides the dict. As on every other version, the instance refers to
  // them through its dict: one occurrence per dict value is dropped from its references.
  void DropValuesHeldThroughDict(PyObject* dict) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(dict, &pos, &key, &value)) {
      auto it = std::find(scratch_.begin(), scratch_.end(), value);
      if (it != scratch_.end() && *it != dict) scratch_.erase(it);
    }
  }

  // An instance's __dict__ counts towards the instance in the type table, so figures do not
  // jump between versions that keep attributes in a dict and those that keep them inline.
  // Returns the bytes folded (0 if none).
  size_t FoldInstanceDict(PyObject* dict, const TypeInfo& info, size_t self_size) {
    if (dict == nullptr || !PyDict_CheckExact(dict)) return 0;
    const TypeInfo& dict_info = Info(&PyDict_Type);
    if (dict_info.excluded) return 0;
    const uint64_t address = reinterpret_cast<uintptr_t>(dict);
    if (marks_->TestAndSet(address, GranuleMarks::kFolded)) return 0;
    const size_t size = SizeOf(dict, dict_info);
    if (marks_->Test(address, GranuleMarks::kProcessed)) {
      auto& dict_row = out_->types[dict_info.row];  // Already counted as a dict: move it.
      dict_row.count -= 1;
      dict_row.bytes -= size;
    }
    auto& row = out_->types[info.row];
    row.bytes += size;
    row.max_bytes = std::max<uint64_t>(row.max_bytes, self_size + size);
    return size;
  }

  // Objects whose __sizeof__ is a trusted C method were sized by their layout during the
  // traversal: calling the method there is not safe, since some allocate (BytesIO's asks its
  // buffer for its size through a bound method, a GC object), and on 3.8-3.11 a GC
  // allocation can start a collection that frees objects the walk has queued. Once the
  // traversal is over no address is read again; each object is held while its method runs,
  // collection being paused (Walk), and its figures are corrected by the difference.
  void ApplyCSizes() {
    for (const CSized& item : c_sized_) Py_INCREF(static_cast<PyObject*>(item.object));
    snapshot::Graph& g = out_->graph;
    for (const CSized& item : c_sized_) {
      PyObject* o = static_cast<PyObject*>(item.object);
      PyObject* result = item.method(o, nullptr);
      const Py_ssize_t n = result ? PyLong_AsSsize_t(result) : -1;
      Py_XDECREF(result);
      if (n < 0) {
        PyErr_Clear();
        continue;  // Keeps the layout size.
      }
      const size_t size = static_cast<size_t>(n) + (item.size - DefaultSize(o, Py_TYPE(o)));
      auto& row = out_->types[item.row];
      row.bytes = row.bytes - item.size + size;
      row.max_bytes = std::max<uint64_t>(row.max_bytes, size + item.folded);
      total_bytes_ = total_bytes_ - item.size + size;
      if (graph_ && item.index < g.size.size()) g.size[item.index] = size;
    }
    for (const CSized& item : c_sized_) Py_DECREF(static_cast<PyObject*>(item.object));
    c_sized_.clear();
  }

  void Process(size_t i) {
    const uint64_t address = addresses_[i];
    PyObject* o = reinterpret_cast<PyObject*>(address);
    marks_->TestAndSet(address, GranuleMarks::kProcessed);
    const TypeInfo& info = Info(Py_TYPE(o));
    const size_t size = SizeOf(o, info) + (info.may_have_dict ? tm_instance_values_size(o) : 0);
    auto& row = out_->types[info.row];
    if (!(info.exact_dict && marks_->Test(address, GranuleMarks::kFolded))) {
      row.count += 1;
      row.bytes += size;
    }
    row.max_bytes = std::max<uint64_t>(row.max_bytes, size);
    if (info.has_sizer) outcome_.needs_sizer.push_back({i, o, info.row});
    ++objects_;
    total_bytes_ += size;

    PyObject* dict = info.may_have_dict ? tm_instance_dict(o) : nullptr;
    CollectReferents(o, info, dict);
    if (graph_ && info.exact_dict && marks_->Test(address, GranuleMarks::kOwned)) NameDictKeys();
    const size_t folded = FoldInstanceDict(dict, info, size);
    if (info.sizer == Sizer::kCMethod) {
      c_sized_.push_back({i, o, info.sizeof_method, info.row, size, folded});
    }
    outcome_.references += scratch_.size();
    if (!graph_) {
      for (PyObject* r : scratch_) Discover(r);
      return;
    }
    snapshot::Graph& g = out_->graph;
    g.type.push_back(info.row);
    g.size.push_back(size);
    g.length.push_back(static_cast<uint32_t>(std::min<uint64_t>(LengthOf(o, info), UINT32_MAX)));
    uint64_t kept = 0;
    const size_t first_new = addresses_.size();
    for (PyObject* r : scratch_) {
      const Found found = Discover(r);
      if (found == Found::kExcluded) continue;
      if (options_.max_refs >= 0 && kept >= static_cast<uint64_t>(options_.max_refs)) continue;
      if (found == Found::kNew) {
        g.refs.push_back(static_cast<uint32_t>(addresses_.size() - 1));
      } else {
        g.refs.push_back(kSeenBefore);
        unresolved_->seen_ref_addresses.push_back(reinterpret_cast<uintptr_t>(r));
      }
      ++kept;
    }
    if (kept != scratch_.size())
      g.true_ref_counts.emplace_back(static_cast<uint32_t>(i), scratch_.size());
    g.ref_begin.push_back(g.refs.size());
    RecordNameAndValue(o, static_cast<uint32_t>(i));
    RecordNamespace(o, static_cast<uint32_t>(i), info, dict, first_new);
  }

  // What the walk knows and analysis could only guess: which dict is this object's namespace
  // (an instance's __dict__, a module's, a class's), and the attribute names of its
  // references. A namespace dict's keys name its values, so each distinct key is recorded
  // once, when the dict is processed (NameDictKeys: its entries are read then anyway); inline
  // values of 3.11+, __slots__ and C fields are recorded per reference.
  // `first_new`: the number the first object this one discovered got (its dict, usually).
  void RecordNamespace(PyObject* o, uint32_t i, const TypeInfo& info, PyObject* dict,
                       size_t first_new) {
    PyObject* ns = dict;
    if (ns == nullptr && PyType_Check(o)) ns = reinterpret_cast<PyTypeObject*>(o)->tp_dict;
    if (ns != nullptr && PyDict_CheckExact(ns)) {
      const uint64_t address = reinterpret_cast<uintptr_t>(ns);
      // Numbered already when this object discovered it; by address (resolved later) if not.
      auto found = std::find(addresses_.begin() + first_new, addresses_.end(), address);
      if (found != addresses_.end()) {
        out_->graph.owners.emplace_back(static_cast<uint32_t>(found - addresses_.begin()), i);
      } else {
        unresolved_->owners.emplace_back(address, i);
      }
      // A dict met before its owner was processed without naming its keys: name them now.
      if (!marks_->TestAndSet(address, GranuleMarks::kOwned) &&
          marks_->Test(address, GranuleMarks::kProcessed)) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(ns, &pos, &key, &value)) NameId(this, key);
      }
    } else if (info.may_have_dict && dict == nullptr) {
      attribute_owner_ = i;
      tm_for_each_inline_attribute(
          o,
          [](PyObject* name, PyObject* value, void* self) {
            auto* w = static_cast<Walker*>(self);
            w->AddAttribute(w->attribute_owner_, NameId(w, name), value);
          },
          this);
    }
    if (info.has_slots) {
      attribute_owner_ = i;
      tm_for_each_slot(
          o,
          [](const char* name, PyObject* value, void* self) {
            auto* w = static_cast<Walker*>(self);
            w->AddAttribute(w->attribute_owner_, w->FieldNameId(name), value);
          },
          this);
    }
    RecordFields(o, i);
  }

  // The keys of a namespace dict (scratch_ holds its key, value pairs).
  void NameDictKeys() {
    for (size_t k = 0; k < scratch_.size(); k += 2) NameId(this, scratch_[k]);
  }

  // The C fields of functions, cells and bound methods that hold program data, under their
  // Python names, so a path through a closure or a callback reads the same on every version
  // (a function's code and globals are left unnamed: every function has them).
  void RecordFields(PyObject* o, uint32_t i) {
    if (PyFunction_Check(o)) {
      auto* f = reinterpret_cast<PyFunctionObject*>(o);
      AddFieldAttribute(i, "__closure__", f->func_closure);
      AddFieldAttribute(i, "__defaults__", f->func_defaults);
      AddFieldAttribute(i, "__kwdefaults__", f->func_kwdefaults);
    } else if (PyCell_Check(o)) {
      AddFieldAttribute(i, "cell_contents", PyCell_GET(o));
    } else if (PyMethod_Check(o)) {
      AddFieldAttribute(i, "__self__", PyMethod_GET_SELF(o));
      AddFieldAttribute(i, "__func__", PyMethod_GET_FUNCTION(o));
    }
  }

  void AddFieldAttribute(uint32_t owner, const char* name, PyObject* value) {
    if (value != nullptr) AddAttribute(owner, FieldNameId(name), value);
  }

  void AddAttribute(uint32_t owner, uint32_t name, PyObject* value) {
    if (name == kNoName) return;
    unresolved_->attributes.push_back({owner, reinterpret_cast<uintptr_t>(value), name});
  }

  // `name` is a C string that lives as long as the walk (a PyMemberDef's, a literal).
  uint32_t FieldNameId(const char* name) {
    auto [it, inserted] = field_name_ids_.try_emplace(name, 0);
    if (inserted) {
      auto& names = out_->graph.attribute_names;
      it->second = static_cast<uint32_t>(names.size());
      names.emplace_back(name);
    }
    return it->second;
  }

  // The attribute name a str key stands for: its index in Graph::attribute_names, or kNoName
  // for a key that is not an identifier (user data in a __dict__, say) unless values are
  // recorded. The first time a key object is met it is recorded as naming (attribute_keys).
  // Static, taking the walker, so that C callbacks can call it.
  static uint32_t NameId(Walker* w, PyObject* key) {
    auto& cached = w->name_cache_[(reinterpret_cast<uintptr_t>(key) >> 4) & (kNameCacheSize - 1)];
    if (cached.first != key) cached = {key, w->NameIdOf(key)};
    return cached.second;
  }

  __attribute__((noinline)) uint32_t NameIdOf(PyObject* key) {
    if (!PyUnicode_CheckExact(key)) return kNoName;
    auto [it, inserted] = name_ids_.try_emplace(key, kNoName);
    if (!inserted) return it->second;
    std::string text;
    AppendUtf8(key, 200, &text);
    if (!options_.values && !snapshot::IsIdentifier(text)) return kNoName;
    auto& names = out_->graph.attribute_names;
    it->second = static_cast<uint32_t>(names.size());
    names.push_back(std::move(text));
    unresolved_->attribute_keys.emplace_back(reinterpret_cast<uintptr_t>(key), it->second);
    return it->second;
  }

  void RecordNameAndValue(PyObject* o, uint32_t i) {
    snapshot::Graph& g = out_->graph;
    std::string text;
    if (PyModule_CheckExact(o)) {
      PyObject* dict = PyModule_GetDict(o);
      PyObject* name = dict ? PyDict_GetItem(dict, interned_.name_key) : nullptr;
      if (name && PyUnicode_Check(name)) AppendUtf8(name, 200, &text);
    } else if (PyFunction_Check(o)) {
      PyObject* name = reinterpret_cast<PyFunctionObject*>(o)->func_qualname;
      if (name && PyUnicode_Check(name)) AppendUtf8(name, 200, &text);
    } else if (PyType_Check(o)) {
      text = TypeName(reinterpret_cast<PyTypeObject*>(o));
    }
    if (!text.empty()) g.names.emplace_back(i, std::move(text));
    if (!options_.values) return;
    text.clear();
    PyTypeObject* type = Py_TYPE(o);
    if (type == &PyUnicode_Type) {
      AppendUtf8(o, options_.value_chars, &text);
    } else if (type == &PyBool_Type) {
      text = o == Py_True ? "True" : "False";
    } else if (type == &PyLong_Type) {
      int overflow = 0;
      const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
      if (overflow == 0 && !(v == -1 && PyErr_Occurred())) text = std::to_string(v);
      PyErr_Clear();
    } else if (type == &PyFloat_Type) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", PyFloat_AS_DOUBLE(o));
      text = buf;
    } else {
      return;
    }
    g.values.emplace_back(i, std::move(text));
  }

  // Which walked object each live sampled allocation is (its block starts where the object's
  // pre-header does), per type row and stack; graphs also list the objects themselves.
  void AttributeSamples() {
    struct Estimate {
      double bytes = 0, count = 0;
    };
    std::unordered_map<uint64_t, Estimate> by_row_and_stack;
    ForEachLiveSample([&](uint64_t address, uint64_t size, uint32_t stack) {
      uint32_t row = snapshot::Sites::kNoObject;
      for (const uint64_t preheader : {0, 16, 32}) {
        const uint64_t candidate = address + preheader;
        if (!marks_->TestAny(candidate, GranuleMarks::kSeen)) continue;
        auto* o = reinterpret_cast<PyObject*>(candidate);
        if (tm_preheader_size(o) != preheader) continue;
        row = Info(Py_TYPE(o)).row;
        if (graph_) unresolved_->object_sites.emplace_back(candidate, stack);
        break;
      }
      const double weight = SampleWeight(size);
      Estimate& e = by_row_and_stack[(uint64_t{row} << 32) | stack];
      e.bytes += weight * static_cast<double>(size);
      e.count += weight;
    });
    snapshot::Sites& sites = out_->sites;
    sites.recorded = true;
    for (const auto& [key, e] : by_row_and_stack) {
      sites.rows.push_back({static_cast<uint32_t>(key >> 32), static_cast<uint32_t>(key),
                            static_cast<uint64_t>(std::llround(e.bytes)),
                            static_cast<uint64_t>(std::llround(e.count))});
    }
  }

  void Finish() {
    outcome_.pause_ms = ElapsedMs();
    outcome_.cpu_ms = ThreadCpuMs() - start_cpu_ms_;
    snapshot::Header& h = out_->header;
    h.kind = options_.kind;
    h.objects = objects_;
    h.bytes = total_bytes_;
    h.types = out_->types.size();
    h.has_values = graph_ && options_.values;
    h.agent.pause_ms = outcome_.pause_ms;
    h.agent.abandoned = outcome_.abandoned;
    if (graph_) {
      addresses_.resize(cursor_);  // Discovered but never processed (abandoned): cut off.
      out_->graph.address = std::move(addresses_);
      unresolved_->marks = std::move(marks_);
    }
  }

  const WalkOptions& options_;
  snapshot::Snapshot* out_;
  UnresolvedReferences* unresolved_;
  const bool graph_;
  std::vector<uint64_t> addresses_;  // Discovery order; object i is addresses_[i].
  std::unique_ptr<GranuleMarks> marks_ = std::make_unique<GranuleMarks>();
  size_t cursor_ = 0;
  std::vector<PyObject*> scratch_;
  // An object sized by its layout during the traversal, to be sized by its C __sizeof__.
  struct CSized {
    size_t index;
    void* object;
    PyCFunction method;
    uint32_t row;
    size_t size;    // As counted: layout, pre-header and instance values.
    size_t folded;  // Its __dict__'s bytes, folded into its row.
  };
  std::vector<CSized> c_sized_;
  std::unordered_map<PyTypeObject*, TypeInfo> types_;
  static constexpr size_t kTypeCacheSize = 256;
  std::pair<PyTypeObject*, TypeInfo*> type_cache_[kTypeCacheSize] = {};
  std::unordered_map<std::string, size_t> row_of_;
  static constexpr uint32_t kNoName = UINT32_MAX;
  static constexpr size_t kNameCacheSize = 1024;
  std::pair<PyObject*, uint32_t> name_cache_[kNameCacheSize] = {};
  std::unordered_map<PyObject*, uint32_t> name_ids_;
  std::unordered_map<const char*, uint32_t> field_name_ids_;
  uint32_t attribute_owner_ = 0;
  std::unordered_set<std::string> exclude_;
  std::unordered_set<std::string> sized_;
  std::unordered_set<uint64_t> root_seen_;
  const Interned& interned_;
  WalkOutcome outcome_;
  uint64_t objects_ = 0;
  uint64_t total_bytes_ = 0;
  Clock::time_point start_;
  double start_cpu_ms_ = 0;
};

}  // namespace

void PrepareWalks() { GetInterned(); }

WalkOutcome Walk(const WalkOptions& options, WalkBuffers buffers, snapshot::Snapshot* out,
                 UnresolvedReferences* unresolved) {
  // No collection runs while the walk holds addresses it has not processed yet: a collection
  // would run finalizers on this thread and free queued objects.
  const int gc_was_enabled = tm_gc_pause();
  Walker walker(options, out, unresolved);
  WalkOutcome outcome = walker.Run(std::move(buffers));
  tm_gc_resume(gc_was_enabled);
  return outcome;
}

}  // namespace tidemark::agent
