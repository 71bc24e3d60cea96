#include "store/journal.h"

#include "store/log_format.h"

namespace tidemark::store {

Result<std::vector<std::string>> ReadJournal(const std::string& path, std::string_view magic,
                                             FileSystem& fs) {
  std::vector<std::string> records;
  auto size = fs.Size(path);
  if (!size) {
    // Never written: no record. Anything else (a collector that cannot be reached or refuses
    // the request) is an error, never an empty journal.
    if (size.error().code == snapshot::Code::kNotFound) return records;
    return std::unexpected(size.error());
  }
  auto bytes = fs.Read(path);
  if (!bytes) return std::unexpected(bytes.error());
  if (auto header = ReadFileHeader(*bytes, magic); !header) {
    return Fail(path + ": " + header.error().message);
  }
  ScanRecords(std::string_view(*bytes).substr(kFileHeaderSize), kFileHeaderSize,
              [&](uint64_t, std::string_view payload) { records.emplace_back(payload); });
  return records;
}

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& path, std::string_view magic,
                                               int64_t now_ns, std::vector<std::string>* records,
                                               FileSystem& fs) {
  auto read = ReadJournal(path, magic, fs);
  if (!read) return std::unexpected(read.error());
  std::unique_ptr<Journal> journal(new Journal(path, std::string(magic), fs));
  if (auto r = journal->Rewrite(*read, now_ns); !r) return std::unexpected(r.error());
  if (records) *records = std::move(*read);
  return journal;
}

Result<void> Journal::Append(std::string_view record) {
  if (!file_) return Fail(path_ + ": not open");
  const uint64_t before = file_->size();
  auto r = file_->Append(RecordHeader(record), record);
  if (r) r = file_->Sync();
  if (!r) (void)file_->Truncate(before);  // Whole records only.
  return r;
}

Result<void> Journal::Rewrite(const std::vector<std::string>& records, int64_t now_ns) {
  const std::string tmp = path_ + ".tmp";
  (void)fs_.RemoveIfUnused(tmp);  // Left by a crash mid-rewrite.
  auto file = fs_.Create(tmp);
  if (!file) return std::unexpected(file.error());
  std::string all = FileHeader(magic_, now_ns);
  for (const std::string& record : records) all += RecordHeader(record) + record;
  auto r = (*file)->Append(all);
  if (r) r = (*file)->Sync();
  if (r) r = fs_.Rename(tmp, path_);
  if (r) r = fs_.SyncDir(path_.substr(0, path_.rfind('/')));
  if (!r) {
    (void)fs_.RemoveIfUnused(tmp);
    return r;
  }
  file_ = std::move(*file);
  return {};
}

}  // namespace tidemark::store
