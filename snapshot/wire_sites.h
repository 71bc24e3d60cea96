// The body key "sites" (format 2, optional): where the live heap was allocated, from the
// agent's allocation sampler. docs/wire-format.md draws it; in short, a map of
//
//   mean, live, dropped, dropped_stacks, restarts   uints: the sampler's figures
//   strings   [str]                                 file names and function names, each once
//   frames    [file, function, line]*               flat; file and function index strings
//   stacks    [[frame, ...], ...]                   innermost frame first
//   rows      [type + 1, stack, bytes, count]*      flat; type 0: memory of no Python object
//   objects   [object, stack]*                      flat, both delta-coded; graphs only
//
// Internal to snapshot/. Thread-safety: functions are reentrant.
#pragma once

#include <cstddef>

#include "snapshot/msgpack_reader.h"
#include "snapshot/result.h"
#include "snapshot/snapshot.h"
#include "snapshot/wire_coding.h"

namespace tidemark::snapshot {

template <typename Packer>
void PackSites(Packer& p, const Snapshot& s) {
  using coding::PackKey;
  using coding::PackStr;
  const Sites& sites = s.sites;
  const bool graph = s.header.kind == Kind::kGraph;
  PackKey(p, "sites");
  p.pack_map(graph ? 10 : 9);
  PackKey(p, "mean");
  p.pack_uint64(sites.mean_bytes);
  PackKey(p, "live");
  p.pack_uint64(sites.live_samples);
  PackKey(p, "dropped");
  p.pack_uint64(sites.dropped_samples);
  PackKey(p, "dropped_stacks");
  p.pack_uint64(sites.dropped_stacks);
  PackKey(p, "restarts");
  p.pack_uint64(sites.restarts);
  PackKey(p, "strings");
  p.pack_array(static_cast<uint32_t>(sites.strings.size()));
  for (const std::string& text : sites.strings) PackStr(p, text);
  PackKey(p, "frames");
  p.pack_array(static_cast<uint32_t>(sites.frames.size() * 3));
  for (const Sites::Frame& f : sites.frames) {
    p.pack_uint32(f.file);
    p.pack_uint32(f.function);
    p.pack_uint32(f.line);
  }
  PackKey(p, "stacks");
  p.pack_array(static_cast<uint32_t>(sites.stacks.size()));
  for (const auto& stack : sites.stacks) {
    p.pack_array(static_cast<uint32_t>(stack.size()));
    for (uint32_t frame : stack) p.pack_uint32(frame);
  }
  PackKey(p, "rows");
  p.pack_array(static_cast<uint32_t>(sites.rows.size() * 4));
  for (const Sites::Row& row : sites.rows) {
    p.pack_uint64(row.type == Sites::kNoObject ? 0 : uint64_t{row.type} + 1);
    p.pack_uint32(row.stack);
    p.pack_uint64(row.bytes);
    p.pack_uint64(row.count);
  }
  if (!graph) return;
  PackKey(p, "objects");
  const auto& objects = s.graph.object_sites;
  coding::PackTuples<2>(p, objects.size(), {true, false}, [&](size_t k) {
    return std::array<uint32_t, 2>{objects[k].first, objects[k].second};
  });
}

// Reads the value of the body key "sites" into s->sites (and, for graphs, the object column
// into s->graph.object_sites). Indices are checked by CheckSites once the body is read.
Result<void> ReadSites(MsgpackReader& r, Snapshot* s);

// Every index in the sites names something that exists: strings, frames, stacks, types,
// objects (`objects`: the graph's object count).
Result<void> CheckSites(const Snapshot& s, size_t objects);

}  // namespace tidemark::snapshot
