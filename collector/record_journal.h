// The alert and report journals of the pipeline: a store::Journal of JSON records, its records
// held in memory, kept within a bound. Once it holds more than twice the bound (+16), it is
// rewritten with only what a compaction function keeps.
//
// Thread-safety: thread-safe (one mutex per journal).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "snapshot/result.h"
#include "store/journal.h"

namespace tidemark::collector {

class RecordJournal {
 public:
  // From the records a journal holds, those it must keep.
  using Compact = std::function<std::vector<std::string>(const std::vector<std::string>&)>;

  // Opens or creates the journal at `path` (see store::Journal::Open).
  static snapshot::Result<std::unique_ptr<RecordJournal>> Open(const std::string& path,
                                                               std::string_view magic,
                                                               int64_t now_ns);
  // Its records, oldest first.
  std::vector<std::string> records() const;
  // Appends `record` ("" appends nothing), then compacts with `compact` if it holds more than
  // 2 * bound + 16 records.
  snapshot::Result<void> Append(const std::string& record, size_t bound, const Compact& compact,
                                int64_t now_ns);
  const std::string& path() const { return journal_->path(); }

 private:
  RecordJournal(std::unique_ptr<store::Journal> journal, std::vector<std::string> records)
      : journal_(std::move(journal)), records_(std::move(records)) {}
  mutable std::mutex mutex_;
  std::unique_ptr<store::Journal> journal_;
  std::vector<std::string> records_;
};

// Compaction of alerts.jnl: the alerts still active, and the newest `history` resolved ones.
std::vector<std::string> KeepAlerts(const std::vector<std::string>& records, size_t history);
// Compaction of reports.jnl: the newest `count` records.
std::vector<std::string> KeepNewest(const std::vector<std::string>& records, size_t count);

}  // namespace tidemark::collector
