// Naming stored snapshots on the command line, and the commands that read a store.
//
// A snapshot argument is a file path, or a reference into the store (--store DIR, else
// $TIDEMARK_STORE, else ./tidemark-data):
//   AGENT:SEQ    e.g. 3:17, api:last, api/4121:first
//   AGENT@TIME   the newest snapshot taken at or before TIME: 2026-11-26T03:00:00Z, or -1h
//                (that long ago; s, m, h, d)
// AGENT is an agent id as `tidemark ls` prints it, a service (its most recently started
// instance), or SERVICE/PID. Thread-safety: reentrant.
#pragma once

#include <iosfwd>
#include <string>

#include "snapshot/result.h"
#include "snapshot/snapshot.h"

namespace tidemark::cli {

std::string DefaultStoreDir();

// The encoded message `arg` names: a file's bytes, or a stored snapshot's.
snapshot::Result<std::string> ReadSnapshotArgument(const std::string& arg,
                                                   const std::string& store_dir, int64_t now_ns);

int ListStore(const std::string& store_dir, bool all, bool json, std::ostream& out,
              std::ostream& err);
int VerifyStore(const std::string& store_dir, bool json, std::ostream& out, std::ostream& err);
int MakeCurveKeys(bool json, std::ostream& out, std::ostream& err);

}  // namespace tidemark::cli
