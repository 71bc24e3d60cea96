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
#include <optional>
#include <string>

#include "cli/flags.h"
#include "snapshot/result.h"
#include "snapshot/snapshot.h"

namespace tidemark::cli {

// Where the store is: --store DIR, else $TIDEMARK_STORE, else ./tidemark-data if it is a store,
// else /var/lib/tidemark (tidemarkd's systemd state directory) if it is one.
struct StoreChoice {
  std::string dir;     // The store; ./tidemark-data when none was found.
  std::string source;  // "--store", "TIDEMARK_STORE", "the working directory", ...
};
StoreChoice ChooseStore(const std::optional<std::string>& option);
// A directory tidemarkd has written: agents, or the alert or report journal.
bool IsStore(const std::string& dir);
// Whether `arg` names a stored snapshot rather than a file.
bool IsStoredReference(const std::string& arg);

// The encoded message `arg` names: a file's bytes, or a stored snapshot's.
// (flags.store_dir through flags.fs).
snapshot::Result<std::string> ReadSnapshotArgument(const std::string& arg, const Flags& flags);

// ReadSnapshotArgument, decoded; false after a message on `err` naming what is wrong.
bool LoadSnapshotArgument(const std::string& arg, const Flags& flags, snapshot::Snapshot& out,
                          std::ostream& err);

// For a stored reference to a summary, where graph verbs should look instead: "the newest
// graph snapshot of AGENT is AGENT:SEQ, taken TIME", or that the agent has none. "" when `arg`
// is a file or names nothing.
std::string NewestGraphHint(const std::string& arg, const Flags& flags);

// `tidemark ls`: the store at flags.store_dir; --all, --json, --bytes.
int ListStore(const Flags& flags, std::ostream& out, std::ostream& err);
int VerifyStore(const std::string& store_dir, bool json, std::ostream& out, std::ostream& err);
int MakeCurveKeys(bool json, std::ostream& out, std::ostream& err);

}  // namespace tidemark::cli
