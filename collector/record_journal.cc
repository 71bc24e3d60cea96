#include "collector/record_journal.h"

#include <algorithm>

#include "diff/json.h"

namespace tidemark::collector {

snapshot::Result<std::unique_ptr<RecordJournal>> RecordJournal::Open(const std::string& path,
                                                                     std::string_view magic,
                                                                     int64_t now_ns) {
  std::vector<std::string> records;
  auto journal = store::Journal::Open(path, magic, now_ns, &records);
  if (!journal) return std::unexpected(journal.error());
  return std::unique_ptr<RecordJournal>(new RecordJournal(std::move(*journal), std::move(records)));
}

std::vector<std::string> RecordJournal::records() const {
  std::lock_guard lock(mutex_);
  return records_;
}

snapshot::Result<void> RecordJournal::Append(const std::string& record, size_t bound,
                                             const Compact& compact, int64_t now_ns) {
  std::lock_guard lock(mutex_);
  if (!record.empty()) {
    if (auto r = journal_->Append(record); !r) return r;
    records_.push_back(record);
  }
  if (records_.size() <= 2 * bound + 16) return {};
  std::vector<std::string> kept = compact(records_);
  if (auto r = journal_->Rewrite(kept, now_ns); !r) return r;
  records_ = std::move(kept);
  return {};
}

std::vector<std::string> KeepAlerts(const std::vector<std::string>& records, size_t history) {
  diff::AlertLog log = diff::ReplayAlertRecords(records);
  std::vector<std::string> kept;
  const size_t skip = log.history.size() > history ? log.history.size() - history : 0;
  for (size_t i = skip; i < log.history.size(); ++i) {
    kept.push_back(diff::AlertRecord("resolved", log.history[i]));
  }
  for (const diff::Alert& a : log.active) kept.push_back(diff::AlertRecord("firing", a));
  return kept;
}

std::vector<std::string> KeepNewest(const std::vector<std::string>& records, size_t count) {
  return {records.end() - static_cast<ptrdiff_t>(std::min(count, records.size())), records.end()};
}

}  // namespace tidemark::collector
