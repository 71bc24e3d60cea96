// Reading meliae dump files (meliae.scanner.dump_all_objects) into a tidemark graph snapshot.
//
// One JSON object per line with the keys address, type, size and refs, optionally name, len
// and value, in any order; plain or gzip; lines that are only "[" or "]" and a trailing ","
// are accepted. A reference to an address with no line of its own is dropped, as meliae's
// loader ignores it. Types are meliae's tp_name strings. The snapshot has no recorded roots:
// analysis derives them (objects nothing refers to, and unreferenced cycles).
//
// Thread-safety: reentrant.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "snapshot/result.h"
#include "snapshot/snapshot.h"

namespace tidemark::analysis {

struct MeliaeImportStats {
  uint64_t objects = 0;
  uint64_t references = 0;
  uint64_t dangling_references = 0;  // To addresses with no line: dropped.
  uint64_t duplicate_addresses = 0;  // Later lines for an address already read: skipped.
};

// `progress(lines_read)` is called every 100,000 lines.
snapshot::Result<snapshot::Snapshot> ReadMeliaeDump(
    const std::string& path, MeliaeImportStats* stats = nullptr,
    const std::function<void(uint64_t)>& progress = nullptr);

}  // namespace tidemark::analysis
