#include "snapshot/wire.h"

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_createCCtx_advanced (exported by libzstd 1.4+).
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <memory>
#include <msgpack.hpp>
#include <utility>

#include "snapshot/msgpack_reader.h"
#include "snapshot/wire_coding.h"
#include "snapshot/wire_sites.h"

namespace tidemark::snapshot {

const char* KindName(Kind kind) { return kind == Kind::kGraph ? "graph" : "summary"; }

namespace {

using coding::PackKey;
using coding::PackStr;
using coding::PackTuples;
using coding::ReadTuples;

constexpr uint8_t kFlagZstd = 1;

void PutLE(std::string& out, uint64_t v, int width) {
  for (int i = 0; i < width; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetLE(std::string_view s, size_t at, int width) {
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

// Bodies are packed twice: once into a CountingSink for their exact size (the zstd frame
// states it, and the decoder insists), then straight into a ZstdSink, so the uncompressed
// body never exists in memory as a whole.
// Where small msgpack maps (headers) are packed: a std::string, so that every allocation
// goes through operator new (msgpack::sbuffer calls malloc itself; agent/child_memory.h says
// why that matters).
struct StringSink {
  void write(const char* p, size_t n) { data.append(p, n); }
  size_t size() const { return data.size(); }
  std::string data;
};

class CountingSink {
 public:
  void write(const char*, size_t n) { bytes_ += n; }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_ = 0;
};

class ZstdSink {
 public:
  // Compressed bytes are appended to what `out` already holds.
  ZstdSink(ZSTD_CCtx* cctx, std::string* out, const std::atomic<bool>* cancel)
      : cctx_(cctx), out_(out), written_(out->size()), cancel_(cancel) {
    buffer_.reserve(kChunk);
  }

  void write(const char* data, size_t n) {
    if (cancelled_) return;
    buffer_.append(data, n);
    if (buffer_.size() < kChunk) return;
    if (cancel_ != nullptr && cancel_->load(std::memory_order_relaxed)) {
      cancelled_ = true;
      buffer_.clear();
      return;
    }
    Compress(ZSTD_e_continue);
  }

  bool cancelled() const { return cancelled_; }

  // Returns a zstd error code (ZSTD_isError) or 0.
  size_t Finish() {
    Compress(ZSTD_e_end);
    return error_;
  }

 private:
  static constexpr size_t kChunk = 256 << 10;

  void Compress(ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{buffer_.data(), buffer_.size(), 0};
    while (error_ == 0) {
      if (out_->size() - written_ < kChunk)
        out_->resize(out_->size() + std::max(kChunk, out_->size() / 2));
      ZSTD_outBuffer out{out_->data(), out_->size(), written_};
      const size_t remaining = ZSTD_compressStream2(cctx_, &out, &in, mode);
      written_ = out.pos;
      if (ZSTD_isError(remaining)) {
        error_ = remaining;
        break;
      }
      if (mode == ZSTD_e_end ? remaining == 0 : in.pos == in.size) break;
    }
    buffer_.clear();
    if (mode == ZSTD_e_end) out_->resize(written_);
  }

  ZSTD_CCtx* cctx_;
  std::string* out_;
  size_t written_;
  const std::atomic<bool>* cancel_;
  bool cancelled_ = false;
  std::string buffer_;
  size_t error_ = 0;
};

// One key and its value; msgpack-cxx picks the value's form from its C++ type.
template <typename Packer, typename T>
void PackField(Packer& p, std::string_view key, const T& value) {
  PackKey(p, key);
  p.pack(value);
}

template <typename Packer>
void PackHeader(Packer& p, const Header& h) {
  const AgentFigures& a = h.agent;
  const MemoryFigures& m = h.memory;
  p.pack_map(m.limit > 0 ? 21 : 20);
  PackField(p, "service", h.identity.service);
  PackField(p, "host", h.identity.host);
  PackField(p, "pid", h.identity.pid);
  PackField(p, "start_ns", h.identity.start_time_ns);
  PackKey(p, "labels");
  p.pack_map(static_cast<uint32_t>(h.identity.labels.size()));
  for (const auto& [k, v] : h.identity.labels) {
    PackStr(p, k);
    PackStr(p, v);
  }
  PackField(p, "seq", h.seq);
  PackField(p, "ts_ns", h.timestamp_ns);
  PackField(p, "objects", h.objects);
  PackField(p, "bytes", h.bytes);
  PackField(p, "types", h.types);
  PackField(p, "rss", h.rss_bytes);
  PackField(p, "gc", h.gc_counts);
  PackField(p, "python", h.python_version);
  PackField(p, "values", h.has_values);
  PackField(p, "pause_ms", a.pause_ms);
  PackField(p, "encode_ms", a.encode_ms);
  PackField(p, "encoded_bytes", a.encoded_bytes);
  PackField(p, "dropped", a.dropped);
  PackField(p, "delivered", a.delivered);
  PackField(p, "abandoned", a.abandoned);
  if (m.limit == 0) return;
  PackKey(p, "memory");
  p.pack_map(4);
  PackField(p, "current", m.current);
  PackField(p, "limit", m.limit);
  PackField(p, "source", m.source);
  PackField(p, "crossed", m.crossed_pct);
}

template <typename Packer, typename Column>
void PackColumn(Packer& p, const Column& column) {
  p.pack_array(static_cast<uint32_t>(column.size()));
  for (auto v : column) p.pack(v);
}

template <typename Packer>
void PackSparseStrings(Packer& p, const std::vector<std::pair<uint32_t, std::string>>& items) {
  p.pack_array(static_cast<uint32_t>(items.size()));
  for (const auto& [index, text] : items) {
    p.pack_array(2);
    p.pack_uint32(index);
    PackStr(p, text);
  }
}

// How a graph's addresses are coded; chosen per snapshot (see PlanGraph).
enum class AddressBase : uint8_t {
  kPrevious = 0,    // Difference to the previous object's address.
  kDiscoverer = 1,  // Difference to the address of the first earlier object referring to it
                    // (objects allocated together sit together, whatever the walk order).
};

constexpr uint32_t kNoDiscoverer = UINT32_MAX;

// The first earlier object (in index order, references in order) that refers to each object.
// Encoder and decoder both derive it from the references as coded, so they agree.
std::vector<uint32_t> Discoverers(size_t objects, const std::vector<uint64_t>& ref_begin,
                                  const std::vector<uint32_t>& refs) {
  std::vector<uint32_t> discoverer(objects, kNoDiscoverer);
  for (size_t i = 0; i < objects; ++i) {
    for (uint64_t k = ref_begin[i]; k < ref_begin[i + 1]; ++k) {
      const uint32_t t = refs[k];
      if (t > i && discoverer[t] == kNoDiscoverer) discoverer[t] = static_cast<uint32_t>(i);
    }
  }
  return discoverer;
}

uint64_t AddressBaseOf(const std::vector<uint64_t>& address, AddressBase base,
                       const std::vector<uint32_t>& discoverer, size_t i) {
  if (base == AddressBase::kDiscoverer && discoverer[i] != kNoDiscoverer) {
    return address[discoverer[i]];
  }
  return i == 0 ? 0 : address[i - 1];
}

size_t MsgpackIntBytes(int64_t v) {
  if (v >= -32 && v <= 127) return 1;
  if (v >= -128 && v <= 255) return 2;
  if (v >= -32768 && v <= 65535) return 3;
  if (v >= INT32_MIN && v <= UINT32_MAX) return 5;
  return 9;
}

struct GraphPlan {
  int shift = 0;
  AddressBase base = AddressBase::kPrevious;
  std::vector<uint32_t> discoverer;  // Only for kDiscoverer.
};

// Picks the address coding whose msgpack form is smaller: a heap walked in allocation order
// codes best against the previous object, a churned one against the discoverer.
GraphPlan PlanGraph(const Graph& g) {
  GraphPlan plan;
  const size_t n = g.object_count();
  bool aligned = true;
  for (uint64_t a : g.address) aligned &= (a & 7) == 0;
  plan.shift = aligned ? 3 : 0;
  std::vector<uint32_t> discoverer = Discoverers(n, g.ref_begin, g.refs);
  size_t previous_bytes = 0, discoverer_bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t a = g.address[i] >> plan.shift;
    previous_bytes += MsgpackIntBytes(static_cast<int64_t>(
        a - (AddressBaseOf(g.address, AddressBase::kPrevious, discoverer, i) >> plan.shift)));
    discoverer_bytes += MsgpackIntBytes(static_cast<int64_t>(
        a - (AddressBaseOf(g.address, AddressBase::kDiscoverer, discoverer, i) >> plan.shift)));
  }
  if (discoverer_bytes < previous_bytes) {
    plan.base = AddressBase::kDiscoverer;
    plan.discoverer = std::move(discoverer);
  }
  return plan;
}

// Columns are coded so that msgpack's small-integer forms and zstd do most of the work.
// Addresses: see AddressBase (divided by 8 when every address is 8-aligned). References:
// the walk numbers objects in the order it first meets them, so a reference to an object
// not referred to before is nearly always the next such number: each reference is coded as
// its difference to `fresh`, the number after the highest referred to so far (0 for the
// common case).
template <typename Packer>
void PackGraph(Packer& p, const Graph& g, const GraphPlan& plan) {
  const size_t n = g.object_count();
  PackKey(p, "addr_shift");
  p.pack_int(plan.shift);
  PackKey(p, "addr_base");
  p.pack_int(static_cast<int>(plan.base));
  PackKey(p, "addr");
  p.pack_array(static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) {
    const uint64_t base = AddressBaseOf(g.address, plan.base, plan.discoverer, i);
    p.pack_int64(static_cast<int64_t>((g.address[i] >> plan.shift) - (base >> plan.shift)));
  }
  PackKey(p, "type");
  PackColumn(p, g.type);
  PackKey(p, "size");
  PackColumn(p, g.size);
  PackKey(p, "len");
  PackColumn(p, g.length);
  PackKey(p, "nrefs");
  p.pack_array(static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) p.pack_uint64(g.ref_begin[i + 1] - g.ref_begin[i]);
  PackKey(p, "refs");
  p.pack_array(static_cast<uint32_t>(g.refs.size()));
  int64_t fresh = 0;
  for (uint32_t t : g.refs) {
    p.pack_int64(static_cast<int64_t>(t) - fresh);
    if (t >= fresh) fresh = int64_t{t} + 1;
  }
  PackKey(p, "true_nrefs");
  p.pack_array(static_cast<uint32_t>(g.true_ref_counts.size()));
  for (const auto& [index, count] : g.true_ref_counts) {
    p.pack_array(2);
    p.pack_uint32(index);
    p.pack_uint64(count);
  }
  PackKey(p, "roots");
  p.pack_array(static_cast<uint32_t>(g.roots.size()));
  for (const auto& [index, kind] : g.roots) {
    p.pack_array(2);
    p.pack_uint32(index);
    p.pack_uint8(static_cast<uint8_t>(kind));
  }
  PackKey(p, "names");
  PackSparseStrings(p, g.names);
  PackKey(p, "values");
  PackSparseStrings(p, g.values);
  if (!g.ownership_recorded) return;  // Format 1's keys only: the reader infers ownership.
  PackKey(p, "owners");
  PackTuples<2>(p, g.owners.size(), {true, true}, [&](size_t k) {
    return std::array<uint32_t, 2>{g.owners[k].first, g.owners[k].second};
  });
  PackKey(p, "attr_names");
  p.pack_array(static_cast<uint32_t>(g.attribute_names.size()));
  for (const std::string& name : g.attribute_names) PackStr(p, name);
  PackKey(p, "attr_keys");
  PackTuples<2>(p, g.attribute_keys.size(), {true, false}, [&](size_t k) {
    return std::array<uint32_t, 2>{g.attribute_keys[k].first, g.attribute_keys[k].second};
  });
  PackKey(p, "attrs");
  PackTuples<3>(p, g.attributes.size(), {true, true, false}, [&](size_t k) {
    const Graph::Attribute& a = g.attributes[k];
    return std::array<uint32_t, 3>{a.owner, a.target, a.name};
  });
}

template <typename Packer>
void PackBody(Packer& p, const Snapshot& s, const GraphPlan& plan) {
  const bool graph = s.header.kind == Kind::kGraph;
  const uint32_t keys = graph ? (s.graph.ownership_recorded ? 17 : 13) : 1;
  p.pack_map(keys + (s.sites.recorded ? 1 : 0));
  PackKey(p, "types");
  p.pack_array(static_cast<uint32_t>(s.types.size()));
  for (const TypeStat& t : s.types) {
    p.pack_array(4);
    PackStr(p, t.name);
    p.pack_uint64(t.count);
    p.pack_uint64(t.bytes);
    p.pack_uint64(t.max_bytes);
  }
  if (graph) PackGraph(p, s.graph, plan);
  if (s.sites.recorded) PackSites(p, s);
}

Result<void> ReadLabels(MsgpackReader& r, Identity& id) {
  TM_TRY(n, r.ReadMapHeader());
  id.labels.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    TM_TRY(k, r.ReadStr());
    TM_TRY(v, r.ReadStr());
    id.labels.emplace_back(std::string(k), std::string(v));
  }
  return {};
}

// The header's "memory" map: {current, limit, source, crossed}; other keys skipped.
Result<void> ReadMemory(MsgpackReader& r, MemoryFigures& m) {
  TM_TRY(n, r.ReadMapHeader());
  for (uint32_t i = 0; i < n; ++i) {
    TM_TRY(key, r.ReadStr());
    if (key == "current" || key == "limit" || key == "crossed") {
      TM_TRY(value, r.ReadUint());
      if (key == "current") m.current = value;
      if (key == "limit") m.limit = value;
      if (key == "crossed") {
        if (value > 100)
          return Fail("header: memory.crossed " + std::to_string(value) +
                      " is not a percentage (0-100)");
        m.crossed_pct = static_cast<uint32_t>(value);
      }
    } else if (key == "source") {
      TM_TRY(source, r.ReadStr());
      m.source = std::string(source);
    } else if (auto skipped = r.Skip(); !skipped) {
      return skipped;
    }
  }
  if (m.limit == 0 && m.crossed_pct > 0) return Fail("header: memory.crossed without a limit");
  return {};
}

Result<Header> ReadHeader(std::string_view bytes, Kind kind) {
  MsgpackReader r(bytes, "header");
  Header h;
  h.kind = kind;
  // Reads one value into `field` with one of the reader's methods.
  auto into = [&r](auto& field, auto read) -> Result<void> {
    auto value = (r.*read)();
    if (!value) return std::unexpected(value.error());
    field = *value;
    return {};
  };
  auto gc_counts = [&]() -> Result<void> {
    TM_TRY(count, r.ReadArrayHeader());
    h.gc_counts.resize(count);
    for (int64_t& c : h.gc_counts) {
      if (auto ok = into(c, &MsgpackReader::ReadInt); !ok) return ok;
    }
    return {};
  };
  using R = MsgpackReader;
  const std::pair<std::string_view, std::function<Result<void>()>> fields[] = {
      {"service", [&] { return into(h.identity.service, &R::ReadStr); }},
      {"pid", [&] { return into(h.identity.pid, &R::ReadInt); }},
      {"start_ns", [&] { return into(h.identity.start_time_ns, &R::ReadInt); }},
      {"seq", [&] { return into(h.seq, &R::ReadUint); }},
      {"host", [&] { return into(h.identity.host, &R::ReadStr); }},
      {"labels", [&] { return ReadLabels(r, h.identity); }},
      {"ts_ns", [&] { return into(h.timestamp_ns, &R::ReadInt); }},
      {"objects", [&] { return into(h.objects, &R::ReadUint); }},
      {"bytes", [&] { return into(h.bytes, &R::ReadUint); }},
      {"types", [&] { return into(h.types, &R::ReadUint); }},
      {"rss", [&] { return into(h.rss_bytes, &R::ReadUint); }},
      {"gc", gc_counts},
      {"python", [&] { return into(h.python_version, &R::ReadStr); }},
      {"values", [&] { return into(h.has_values, &R::ReadBool); }},
      {"pause_ms", [&] { return into(h.agent.pause_ms, &R::ReadDouble); }},
      {"encode_ms", [&] { return into(h.agent.encode_ms, &R::ReadDouble); }},
      {"encoded_bytes", [&] { return into(h.agent.encoded_bytes, &R::ReadUint); }},
      {"dropped", [&] { return into(h.agent.dropped, &R::ReadUint); }},
      {"delivered", [&] { return into(h.agent.delivered, &R::ReadUint); }},
      {"abandoned", [&] { return into(h.agent.abandoned, &R::ReadBool); }},
      {"moved", [&] { return into(h.agent.moved, &R::ReadBool); }},
      {"memory", [&] { return ReadMemory(r, h.memory); }},
  };
  constexpr size_t kRequired = 4;  // The first four fields identify the snapshot.
  bool seen[std::size(fields)] = {};
  TM_TRY(n, r.ReadMapHeader());
  for (uint32_t i = 0; i < n; ++i) {
    TM_TRY(key, r.ReadStr());
    size_t field = 0;
    while (field < std::size(fields) && fields[field].first != key) ++field;
    // Keys added later within this version are optional: skipped.
    Result<void> ok = field < std::size(fields) ? fields[field].second() : r.Skip();
    if (!ok) return Fail(ok.error().message + " (key '" + std::string(key) + "')");
    if (field < std::size(fields)) seen[field] = true;
  }
  if (!r.AtEnd()) {
    return Fail("header: " + std::to_string(bytes.size() - r.position()) +
                " bytes after the header map");
  }
  for (size_t f = 0; f < kRequired; ++f) {
    if (!seen[f])
      return Fail("header: missing the required key '" + std::string(fields[f].first) + "'");
  }
  if (h.identity.service.empty()) return Fail("header: empty service name");
  return h;
}

Result<void> ReadTypes(MsgpackReader& r, Snapshot& s, const DecodeLimits& limits) {
  TM_TRY(n, r.ReadArrayHeader());
  if (n > limits.max_types) {
    return Fail(Code::kLimit, "body: " + std::to_string(n) + " types exceed the limit of " +
                                  std::to_string(limits.max_types));
  }
  s.types.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    TM_TRY(fields, r.ReadArrayHeader());
    if (fields != 4) {
      return Fail("body: type row " + std::to_string(i) + " is not [name, count, bytes, max]");
    }
    TM_TRY(name, r.ReadStr());
    TM_TRY(count, r.ReadUint());
    TM_TRY(bytes, r.ReadUint());
    TM_TRY(max_bytes, r.ReadUint());
    s.types.push_back(TypeStat{std::string(name), count, bytes, max_bytes});
  }
  return {};
}

// Reads a column of exactly `expected` entries (or sets `expected` when it is SIZE_MAX).
template <typename T, typename ReadFn>
Result<void> ReadColumn(MsgpackReader& r, const char* name, size_t& expected, std::vector<T>& out,
                        ReadFn read) {
  TM_TRY(n, r.ReadArrayHeader());
  if (expected != SIZE_MAX && n != expected) {
    return Fail(std::string("body: column '") + name + "' has " + std::to_string(n) +
                " entries, expected " + std::to_string(expected));
  }
  expected = n;
  out.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    auto v = read();
    if (!v) return Fail(v.error().message + " (column '" + name + "')");
    if (!std::in_range<T>(*v)) {
      return Fail(std::string("body: column '") + name + "' entry " + std::to_string(i) +
                  " is out of range");
    }
    out.push_back(static_cast<T>(*v));
  }
  return {};
}

Result<void> ReadSparseStrings(MsgpackReader& r, const char* name, size_t objects,
                               std::vector<std::pair<uint32_t, std::string>>& out) {
  TM_TRY(n, r.ReadArrayHeader());
  out.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    TM_TRY(fields, r.ReadArrayHeader());
    if (fields != 2) return Fail(std::string("body: '") + name + "' entry is not [index, text]");
    TM_TRY(index, r.ReadUint());
    if (index >= objects)
      return Fail(std::string("body: '") + name + "' names object " + std::to_string(index) +
                  " of " + std::to_string(objects));
    TM_TRY(text, r.ReadStr());
    out.emplace_back(static_cast<uint32_t>(index), std::string(text));
  }
  return {};
}

// Format 2's namespace keys name objects and attribute names that exist; attributes come only
// with an ownership relation (the three keys are written together).
Result<void> CheckOwnership(const Graph& g, size_t objects) {
  if (!g.ownership_recorded &&
      !(g.attributes.empty() && g.attribute_names.empty() && g.attribute_keys.empty())) {
    return Fail("body: 'attrs', 'attr_keys' or 'attr_names' without 'owners'");
  }
  for (const auto& [key, name] : g.attribute_keys) {
    if (key >= objects || name >= g.attribute_names.size()) {
      return Fail("body: attr_keys names a missing " +
                  std::string(key >= objects ? "object" : "attribute name"));
    }
  }
  for (const auto& [dict, owner] : g.owners) {
    if (dict >= objects || owner >= objects || dict == owner) {
      return Fail("body: owners pairs object " + std::to_string(dict) + " with " +
                  std::to_string(owner) + " of " + std::to_string(objects));
    }
  }
  for (const Graph::Attribute& a : g.attributes) {
    if (a.owner >= objects || a.target >= objects || a.name >= g.attribute_names.size()) {
      return Fail("body: attrs entry [" + std::to_string(a.owner) + ", " +
                  std::to_string(a.target) + ", " + std::to_string(a.name) + "] names a missing " +
                  (a.name >= g.attribute_names.size() ? "attribute name" : "object"));
    }
  }
  return {};
}

// What the columns' coding needs once every key is read. The columns themselves are decoded
// into the graph as they are read, without a copy in their coded form: the address column
// holds its deltas until the end (two's complement), references are made absolute at once
// (their bases depend only on earlier references), reference counts become offsets at once.
struct CodedGraph {
  size_t objects = SIZE_MAX;
  int shift = 0;
  AddressBase base = AddressBase::kPrevious;
  uint32_t max_ref = 0;  // The largest reference target, checked against the object count.
};

// nrefs into ref_begin: offsets, ref_begin[i + 1] - ref_begin[i] being object i's count.
Result<void> ReadRefCounts(MsgpackReader& r, size_t& objects, std::vector<uint64_t>& ref_begin) {
  TM_TRY(n, r.ReadArrayHeader());
  if (objects != SIZE_MAX && n != objects) {
    return Fail("body: column 'nrefs' has " + std::to_string(n) + " entries, expected " +
                std::to_string(objects));
  }
  objects = n;
  ref_begin.reserve(size_t{n} + 1);
  ref_begin.push_back(0);
  uint64_t total = 0;
  for (uint32_t i = 0; i < n; ++i) {
    auto v = r.ReadUint();
    if (!v) return Fail(v.error().message + " (column 'nrefs')");
    if (__builtin_add_overflow(total, *v, &total))
      return Fail("body: reference counts overflow (column 'nrefs')");
    ref_begin.push_back(total);
  }
  return {};
}

// refs, each coded as its difference to `fresh` (see PackGraph), made absolute as read.
Result<void> ReadRefs(MsgpackReader& r, std::vector<uint32_t>& refs, CodedGraph& coded) {
  TM_TRY(n, r.ReadArrayHeader());
  refs.reserve(n);
  int64_t fresh = 0;
  for (uint32_t k = 0; k < n; ++k) {
    auto delta = r.ReadInt();
    if (!delta) return Fail(delta.error().message + " (column 'refs')");
    // fresh is below 2^32 and |delta| below 2^63: the sum cannot overflow 128 bits.
    const __int128 wide = static_cast<__int128>(fresh) + *delta;
    if (wide < 0 || wide > UINT32_MAX) {
      return Fail("body: reference " + std::to_string(k) + " refers to object " +
                  (wide < 0 ? std::string("below 0") : std::string("beyond 2^32")));
    }
    const auto target = static_cast<uint32_t>(wide);
    refs.push_back(target);
    if (target >= fresh) fresh = int64_t{target} + 1;
    coded.max_ref = std::max(coded.max_ref, target);
  }
  return {};
}

Result<void> ReadGraph(MsgpackReader& r, std::string_view key, Snapshot& s, CodedGraph& coded,
                       const DecodeLimits& limits) {
  size_t& objects = coded.objects;
  Graph& g = s.graph;
  auto read_u = [&] { return r.ReadUint(); };
  if (key == "addr_shift") {
    TM_TRY(v, r.ReadUint());
    if (v != 0 && v != 3) return Fail("body: addr_shift must be 0 or 3");
    coded.shift = static_cast<int>(v);
    return {};
  }
  if (key == "addr_base") {
    TM_TRY(v, r.ReadUint());
    if (v > 1) return Fail("body: addr_base must be 0 or 1");
    coded.base = static_cast<AddressBase>(v);
    return {};
  }
  if (key == "addr" || key == "type" || key == "size" || key == "len" || key == "nrefs") {
    // Peek at the count first so that the object limit is checked before reserving.
    MsgpackReader peek = r;
    TM_TRY(count, peek.ReadArrayHeader());
    if (count > limits.max_objects) {
      return Fail(Code::kLimit, "body: " + std::to_string(count) + " objects exceed the limit of " +
                                    std::to_string(limits.max_objects));
    }
  }
  if (key == "addr") {
    return ReadColumn(r, "addr", objects, g.address, [&]() -> Result<uint64_t> {
      TM_TRY(delta, r.ReadInt());
      return static_cast<uint64_t>(delta);  // Until every column is read (ResolveAddresses).
    });
  }
  if (key == "type") return ReadColumn(r, "type", objects, g.type, read_u);
  if (key == "size") return ReadColumn(r, "size", objects, g.size, read_u);
  if (key == "len") return ReadColumn(r, "len", objects, g.length, read_u);
  if (key == "nrefs") return ReadRefCounts(r, objects, g.ref_begin);
  if (key == "refs") return ReadRefs(r, g.refs, coded);
  if (key == "true_nrefs" || key == "roots") {
    TM_TRY(n, r.ReadArrayHeader());
    for (uint32_t i = 0; i < n; ++i) {
      TM_TRY(fields, r.ReadArrayHeader());
      if (fields != 2) return Fail("body: '" + std::string(key) + "' entry is not a pair");
      TM_TRY(index, r.ReadUint());
      TM_TRY(value, r.ReadUint());
      if (index > UINT32_MAX) return Fail("body: '" + std::string(key) + "' index out of range");
      if (key == "roots") {
        if (value < 1 || value > 3) return Fail("body: unknown root kind " + std::to_string(value));
        g.roots.emplace_back(static_cast<uint32_t>(index), static_cast<RootKind>(value));
      } else {
        g.true_ref_counts.emplace_back(static_cast<uint32_t>(index), value);
      }
    }
    return {};
  }
  if (key == "owners") {
    g.ownership_recorded = true;
    return ReadTuples<2>(r, key, {true, true}, [&](const std::array<uint32_t, 2>& v) {
      g.owners.emplace_back(v[0], v[1]);
    });
  }
  if (key == "attr_keys") {
    return ReadTuples<2>(r, key, {true, false}, [&](const std::array<uint32_t, 2>& v) {
      g.attribute_keys.emplace_back(v[0], v[1]);
    });
  }
  if (key == "attrs") {
    return ReadTuples<3>(r, key, {true, true, false}, [&](const std::array<uint32_t, 3>& v) {
      g.attributes.push_back({v[0], v[1], v[2]});
    });
  }
  if (key == "attr_names") {
    TM_TRY(n, r.ReadArrayHeader());
    for (uint32_t i = 0; i < n; ++i) {
      TM_TRY(name, r.ReadStr());
      g.attribute_names.emplace_back(name);
    }
    return {};
  }
  // names and values are read after the columns: their indices are checked then.
  return r.Skip();
}

// The address column, read as deltas, made absolute in place: an object's base (the previous
// object, or its discoverer, always an earlier object) is resolved before it. Bases are shifted
// values, so the shift is applied once the column is complete.
void ResolveAddresses(const CodedGraph& coded, Graph& g) {
  const size_t objects = g.address.size();
  std::vector<uint32_t> discoverer;
  if (coded.base == AddressBase::kDiscoverer)
    discoverer = Discoverers(objects, g.ref_begin, g.refs);
  for (size_t i = 0; i < objects; ++i) {
    uint64_t base;
    if (coded.base == AddressBase::kDiscoverer && discoverer[i] != kNoDiscoverer) {
      base = g.address[discoverer[i]];
    } else {
      base = i == 0 ? 0 : g.address[i - 1];
    }
    g.address[i] += base;
  }
  for (uint64_t& a : g.address) a <<= coded.shift;
}

Result<void> ReadBody(std::string_view bytes, Snapshot& s, const DecodeLimits& limits) {
  MsgpackReader r(bytes, "body");
  TM_TRY(n, r.ReadMapHeader());
  const bool graph = s.header.kind == Kind::kGraph;
  CodedGraph coded;
  std::string_view names_at, values_at;
  bool have_types = false;
  for (uint32_t i = 0; i < n; ++i) {
    TM_TRY(key, r.ReadStr());
    if (key == "types") {
      auto ok = ReadTypes(r, s, limits);
      if (!ok) return ok;
      have_types = true;
    } else if (key == "sites") {
      if (auto ok = ReadSites(r, &s); !ok) return ok;
    } else if (graph && (key == "names" || key == "values")) {
      const size_t start = r.position();
      auto ok = r.Skip();
      if (!ok) return ok;
      (key == "names" ? names_at : values_at) = bytes.substr(start, r.position() - start);
    } else if (graph) {
      auto ok = ReadGraph(r, key, s, coded, limits);
      if (!ok) return ok;
    } else {
      auto ok = r.Skip();
      if (!ok) return ok;
    }
  }
  if (!r.AtEnd()) return Fail("body: bytes after the body map");
  if (!have_types) return Fail("body: missing 'types'");
  if (s.header.types != s.types.size()) {
    return Fail("body: header says " + std::to_string(s.header.types) + " types, body has " +
                std::to_string(s.types.size()));
  }
  if (!graph) return CheckSites(s, 0);

  Graph& g = s.graph;
  const size_t objects = coded.objects;
  if (objects == SIZE_MAX || g.address.size() != objects || g.type.size() != objects ||
      g.size.size() != objects || g.length.size() != objects || g.ref_begin.size() != objects + 1) {
    return Fail("body: graph is missing one of the columns addr, type, size, len, nrefs");
  }
  for (size_t i = 0; i < objects; ++i) {
    if (g.type[i] >= s.types.size()) {
      return Fail("body: object " + std::to_string(i) + " has type index " +
                  std::to_string(g.type[i]) + " of " + std::to_string(s.types.size()));
    }
  }
  if (g.ref_begin[objects] != g.refs.size()) {
    return Fail("body: reference counts add up to " + std::to_string(g.ref_begin[objects]) +
                ", refs has " + std::to_string(g.refs.size()));
  }
  if (!g.refs.empty() && coded.max_ref >= objects) {
    const auto k = static_cast<uint64_t>(
        std::find_if(g.refs.begin(), g.refs.end(), [&](uint32_t t) { return t >= objects; }) -
        g.refs.begin());
    const auto owner =
        std::upper_bound(g.ref_begin.begin(), g.ref_begin.end(), k) - g.ref_begin.begin() - 1;
    return Fail("body: object " + std::to_string(owner) + " refers to object " +
                std::to_string(g.refs[k]) + " of " + std::to_string(objects));
  }
  ResolveAddresses(coded, g);
  for (const auto& [index, count] : g.true_ref_counts) {
    if (index >= objects) return Fail("body: true_nrefs names a missing object");
    (void)count;
  }
  for (const auto& [index, kind] : g.roots) {
    if (index >= objects) return Fail("body: roots names a missing object");
  }
  if (auto ok = CheckOwnership(g, objects); !ok) return ok;
  if (auto ok = CheckSites(s, objects); !ok) return ok;
  if (!names_at.empty()) {
    MsgpackReader nr(names_at, "body names");
    if (auto ok = ReadSparseStrings(nr, "names", objects, g.names); !ok) return ok;
  }
  if (!values_at.empty()) {
    MsgpackReader vr(values_at, "body values");
    if (auto ok = ReadSparseStrings(vr, "values", objects, g.values); !ok) return ok;
  }
  return {};
}

// What encoding relies on (it indexes by these): equal columns, offsets that cover refs in
// order, references inside the graph. Type indices and the rest are the decoder's to check.
Result<void> CheckGraphShape(const Graph& g) {
  const size_t n = g.object_count();
  if (n == 0 && g.ref_begin.empty() && g.refs.empty()) return {};  // An empty graph.
  if (g.type.size() != n || g.size.size() != n || g.length.size() != n ||
      g.ref_begin.size() != n + 1) {
    return Fail("graph: columns of different lengths");
  }
  if (g.ref_begin[0] != 0 || g.ref_begin[n] != g.refs.size()) {
    return Fail("graph: reference offsets do not cover the references");
  }
  for (size_t i = 0; i < n; ++i) {
    if (g.ref_begin[i] > g.ref_begin[i + 1]) return Fail("graph: reference offsets go back");
  }
  for (size_t k = 0; k < g.refs.size(); ++k) {
    if (g.refs[k] >= n) {
      return Fail("graph: a reference to object " + std::to_string(g.refs[k]) + " of " +
                  std::to_string(n));
    }
  }
  return {};
}

}  // namespace

Result<std::string> Encode(const Snapshot& snapshot, const EncodeOptions& options) {
  try {
    StringSink header_buf;
    msgpack::packer<StringSink> header_packer(header_buf);
    Header header = snapshot.header;
    header.types = snapshot.types.size();
    PackHeader(header_packer, header);
    if (header_buf.size() > UINT32_MAX) return Fail("snapshot header too large");

    if (snapshot.header.kind == Kind::kGraph) {
      if (auto ok = CheckGraphShape(snapshot.graph); !ok) return std::unexpected(ok.error());
    }
    const GraphPlan plan =
        snapshot.header.kind == Kind::kGraph ? PlanGraph(snapshot.graph) : GraphPlan{};
    CountingSink counter;
    msgpack::packer<CountingSink> counting_packer(counter);
    PackBody(counting_packer, snapshot, plan);
    const size_t raw_body = counter.bytes();

    std::string out(kEnvelopeSize + header_buf.size(), '\0');
    const Allocator& a = options.allocator;
    std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> cctx(
        a.allocate ? ZSTD_createCCtx_advanced({a.allocate, a.free, a.opaque}) : ZSTD_createCCtx(),
        &ZSTD_freeCCtx);
    if (!cctx) return Fail("zstd: cannot create a compression context");
    ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, options.zstd_level);
    ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setPledgedSrcSize(cctx.get(), raw_body);  // Written into the frame header.
    ZstdSink sink(cctx.get(), &out, options.cancel);
    {
      msgpack::packer<ZstdSink> body_packer(sink);
      PackBody(body_packer, snapshot, plan);
    }
    if (sink.cancelled()) return Fail("encode: cancelled");
    if (const size_t error = sink.Finish(); ZSTD_isError(error)) {
      return Fail(std::string("zstd: ") + ZSTD_getErrorName(error));
    }
    const size_t compressed = out.size() - kEnvelopeSize - header_buf.size();
    if (compressed > UINT32_MAX) return Fail("snapshot too large for one message (4 GiB)");

    std::string envelope(kMagic, 4);
    PutLE(envelope, kFormatVersion, 2);
    envelope.push_back(static_cast<char>(snapshot.header.kind));
    envelope.push_back(static_cast<char>(kFlagZstd));
    PutLE(envelope, header_buf.size(), 4);
    PutLE(envelope, compressed, 4);
    PutLE(envelope, raw_body, 8);
    std::memcpy(out.data(), envelope.data(), kEnvelopeSize);
    std::memcpy(out.data() + kEnvelopeSize, header_buf.data.data(), header_buf.size());
    return out;
  } catch (const std::exception& e) {
    return Fail(std::string("encode: ") + e.what());
  }
}

Result<std::string> ReplaceHeader(std::string_view message, const Header& header) {
  TM_TRY(e, DecodeEnvelope(message));
  if (header.kind != e.kind) return Fail("ReplaceHeader: kind differs from the message's");
  StringSink header_buf;
  msgpack::packer<StringSink> packer(header_buf);
  try {
    PackHeader(packer, header);
  } catch (const std::exception& ex) {
    return Fail(std::string("encode: ") + ex.what());
  }
  std::string out(message.substr(0, kEnvelopeSize));
  out.resize(8);
  PutLE(out, header_buf.size(), 4);
  out.append(message.substr(12, 12));  // B and R are unchanged.
  out.append(header_buf.data);
  out.append(message.substr(kEnvelopeSize + e.header_bytes));
  return out;
}

Result<Envelope> DecodeEnvelope(std::string_view message, const DecodeLimits& limits) {
  if (message.size() > limits.max_message_bytes) {
    return Fail(Code::kLimit, "message of " + std::to_string(message.size()) +
                                  " bytes exceeds the limit of " +
                                  std::to_string(limits.max_message_bytes));
  }
  if (message.size() < kEnvelopeSize) {
    return Fail("truncated envelope: " + std::to_string(message.size()) + " of " +
                std::to_string(kEnvelopeSize) + " bytes");
  }
  if (std::memcmp(message.data(), kMagic, 4) != 0)
    return Fail("not a tidemark snapshot (bad magic)");
  Envelope e;
  e.version = static_cast<uint16_t>(GetLE(message, 4, 2));
  if (e.version < kOldestReadableFormatVersion || e.version > kFormatVersion) {
    return Fail("unsupported format version " + std::to_string(e.version) + " (this build reads " +
                std::to_string(kOldestReadableFormatVersion) + " to " +
                std::to_string(kFormatVersion) + ")");
  }
  const uint8_t kind = static_cast<uint8_t>(message[6]);
  if (kind != 1 && kind != 2) return Fail("unknown snapshot kind " + std::to_string(kind));
  e.kind = static_cast<Kind>(kind);
  const uint8_t flags = static_cast<uint8_t>(message[7]);
  if (flags != kFlagZstd) return Fail("unsupported envelope flags " + std::to_string(flags));
  e.header_bytes = static_cast<uint32_t>(GetLE(message, 8, 4));
  e.body_bytes = static_cast<uint32_t>(GetLE(message, 12, 4));
  e.raw_body_bytes = GetLE(message, 16, 8);
  const uint64_t declared = uint64_t{kEnvelopeSize} + e.header_bytes + e.body_bytes;
  if (declared > message.size()) {
    return Fail("truncated message: envelope declares " + std::to_string(declared) +
                " bytes, got " + std::to_string(message.size()));
  }
  if (declared < message.size()) {
    return Fail(std::to_string(message.size() - declared) + " unexpected bytes after the body");
  }
  if (e.raw_body_bytes > limits.max_body_bytes) {
    return Fail(Code::kLimit, "declared body of " + std::to_string(e.raw_body_bytes) +
                                  " bytes exceeds the limit of " +
                                  std::to_string(limits.max_body_bytes));
  }
  if (e.raw_body_bytes > kAlwaysExpandableBytes &&
      e.raw_body_bytes / std::max<uint64_t>(e.body_bytes, 1) > limits.max_expansion) {
    return Fail(Code::kLimit,
                "declared body of " + std::to_string(e.raw_body_bytes) + " bytes from " +
                    std::to_string(e.body_bytes) + " compressed exceeds the limit of " +
                    std::to_string(limits.max_expansion) + " times the compressed size");
  }
  return e;
}

Result<Header> DecodeHeader(std::string_view message, const DecodeLimits& limits) {
  TM_TRY(e, DecodeEnvelope(message, limits));
  return ReadHeader(message.substr(kEnvelopeSize, e.header_bytes), e.kind);
}

Result<Header> CheckFrame(std::string_view message, const DecodeLimits& limits) {
  TM_TRY(e, DecodeEnvelope(message, limits));
  TM_TRY(header, ReadHeader(message.substr(kEnvelopeSize, e.header_bytes), e.kind));
  const std::string_view frame = message.substr(kEnvelopeSize + e.header_bytes, e.body_bytes);
  const unsigned long long content = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (content == ZSTD_CONTENTSIZE_ERROR) return Fail("body: not a zstd frame");
  if (content == ZSTD_CONTENTSIZE_UNKNOWN || content != e.raw_body_bytes) {
    return Fail("body: zstd frame size does not match the envelope");
  }
  // Frame header descriptor (RFC 8878, 3.1.1.1.1): bit 2 is Content_Checksum_Flag.
  if (frame.size() < 5 || !(static_cast<uint8_t>(frame[4]) & 0x04)) {
    return Fail("body: zstd frame has no content checksum");
  }
  thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx(ZSTD_createDCtx(),
                                                                         &ZSTD_freeDCtx);
  thread_local std::string scratch(size_t{1} << 20, '\0');
  if (!dctx) return Fail("zstd: cannot create a decompression context");
  ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_only);
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  uint64_t produced = 0;
  size_t left = 1;
  while (left != 0) {
    ZSTD_outBuffer out{scratch.data(), scratch.size(), 0};
    left = ZSTD_decompressStream(dctx.get(), &out, &in);
    if (ZSTD_isError(left)) return Fail(std::string("body: zstd: ") + ZSTD_getErrorName(left));
    produced += out.pos;
    if (produced > e.raw_body_bytes)
      return Fail("body: expands past the size the envelope declares");
    if (left != 0 && in.pos == in.size && out.pos == 0)
      return Fail("body: zstd frame is truncated");
  }
  if (in.pos != in.size) return Fail("body: bytes after the zstd frame");
  if (produced != e.raw_body_bytes)
    return Fail("body: decompressed size does not match the envelope");
  return header;
}

namespace {

// Decompresses one frame into `body`, exactly `size` bytes. The buffer grows with what the
// frame produces (at most doubling), so a frame that declares more than it holds fails having
// cost what it held, not what it declared.
Result<bool> Decompress(std::string_view frame, uint64_t size, std::string* body) {
  thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx(ZSTD_createDCtx(),
                                                                         &ZSTD_freeDCtx);
  if (!dctx) return Fail("zstd: cannot create a decompression context");
  ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_only);
  constexpr uint64_t kFirst = uint64_t{1} << 20;
  body->resize(static_cast<size_t>(std::min(size, kFirst)));
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  size_t produced = 0;
  size_t left = 1;
  while (left != 0) {
    if (produced == body->size()) {
      if (produced >= size) return Fail("body: expands past the size the envelope declares");
      body->resize(static_cast<size_t>(std::min<uint64_t>(size, uint64_t{produced} * 2)));
    }
    ZSTD_outBuffer out{body->data(), body->size(), produced};
    left = ZSTD_decompressStream(dctx.get(), &out, &in);
    if (ZSTD_isError(left)) return Fail(std::string("body: zstd: ") + ZSTD_getErrorName(left));
    const bool progress = out.pos != produced;
    produced = out.pos;
    if (left != 0 && in.pos == in.size && !progress && produced < body->size())
      return Fail("body: zstd frame is truncated");
  }
  if (in.pos != in.size) return Fail("body: bytes after the zstd frame");
  if (produced != size) return Fail("body: decompressed size does not match the envelope");
  return true;
}

}  // namespace

Result<Snapshot> Decode(std::string_view message, const DecodeLimits& limits) {
  TM_TRY(e, DecodeEnvelope(message, limits));
  Snapshot s;
  TM_TRY(header, ReadHeader(message.substr(kEnvelopeSize, e.header_bytes), e.kind));
  s.header = std::move(header);
  const std::string_view frame = message.substr(kEnvelopeSize + e.header_bytes, e.body_bytes);
  // The frame must state its content size, and it must match the envelope's: then the buffer
  // below is bounded by limits.max_body_bytes, never by what a stream would expand to.
  const unsigned long long content = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (content == ZSTD_CONTENTSIZE_ERROR) return Fail("body: not a zstd frame");
  if (content == ZSTD_CONTENTSIZE_UNKNOWN || content != e.raw_body_bytes) {
    return Fail("body: zstd frame size does not match the envelope");
  }
  std::string body;
  try {
    TM_TRY(ok, Decompress(frame, e.raw_body_bytes, &body));
    (void)ok;
    if (auto read = ReadBody(body, s, limits); !read) return std::unexpected(read.error());
  } catch (const std::bad_alloc&) {
    return Fail("body: out of memory while decoding");
  }
  return s;
}

std::string EncodeGoodbye(const Goodbye& goodbye) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  const Identity& id = goodbye.identity;
  p.pack_map(goodbye.moved ? 8 : 7);
  PackField(p, "service", id.service);
  PackField(p, "host", id.host);
  PackField(p, "pid", id.pid);
  PackField(p, "start_ns", id.start_time_ns);
  PackKey(p, "labels");
  p.pack_map(static_cast<uint32_t>(id.labels.size()));
  for (const auto& [k, v] : id.labels) {
    PackStr(p, k);
    PackStr(p, v);
  }
  PackField(p, "seq", goodbye.seq);
  PackField(p, "ts_ns", goodbye.timestamp_ns);
  if (goodbye.moved) {
    PackKey(p, "moved");
    p.pack(true);
  }
  std::string out(kGoodbyeMagic, 4);
  PutLE(out, kFormatVersion, 2);
  PutLE(out, 0, 2);
  out.append(buf.data(), buf.size());
  return out;
}

bool IsGoodbye(std::string_view message) {
  return message.size() >= 4 && message.substr(0, 4) == std::string_view(kGoodbyeMagic, 4);
}

Result<Goodbye> DecodeGoodbye(std::string_view message) {
  if (!IsGoodbye(message)) return Fail("goodbye: bad magic");
  if (message.size() > kMaxGoodbyeBytes) {
    return Fail("goodbye: " + std::to_string(message.size()) + " bytes, over the limit of " +
                std::to_string(kMaxGoodbyeBytes));
  }
  if (message.size() < 8)
    return Fail("goodbye: truncated (" + std::to_string(message.size()) + " bytes)");
  const uint16_t version = static_cast<uint16_t>(static_cast<uint8_t>(message[4]) |
                                                 (static_cast<uint8_t>(message[5]) << 8));
  if (version < kOldestReadableFormatVersion || version > kFormatVersion) {
    return Fail("goodbye: unsupported format version " + std::to_string(version));
  }
  if (message[6] != 0 || message[7] != 0) return Fail("goodbye: reserved bytes are not 0");
  TM_TRY(header, ReadHeader(message.substr(8), Kind::kSummary));
  Goodbye g;
  g.identity = std::move(header.identity);
  g.seq = header.seq;
  g.timestamp_ns = header.timestamp_ns;
  g.moved = header.agent.moved;
  return g;
}

}  // namespace tidemark::snapshot
