// A journal: one small file of opaque records (alerts, reports), appended one at a time and
// rewritten whole when its owner compacts it.
//
// Same framing as every store file (store/log_format.h): the 16-byte file header with its
// own magic, then length + CRC-32C records. Append() writes and fdatasyncs one record.
// Rewrite() writes the records to <path>.tmp, syncs it, renames it over <path> and syncs the
// directory: a crash leaves the old or the new file, never a mix. Open() reads the intact
// records (a torn tail is dropped) and rewrites the file with them, so appends continue on a
// clean file.
//
// Thread-safety: not thread-safe; the owner serializes calls. ReadJournal works on a journal
// another process is writing.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/file_system.h"

namespace tidemark::store {

class Journal {
 public:
  static Result<std::unique_ptr<Journal>> Open(const std::string& path, std::string_view magic,
                                               int64_t now_ns, std::vector<std::string>* records,
                                               FileSystem& fs = FileSystem::Default());
  Result<void> Append(std::string_view record);
  Result<void> Rewrite(const std::vector<std::string>& records, int64_t now_ns);
  uint64_t size() const { return file_ ? file_->size() : 0; }
  const std::string& path() const { return path_; }

 private:
  Journal(std::string path, std::string magic, FileSystem& fs)
      : path_(std::move(path)), magic_(std::move(magic)), fs_(fs) {}
  std::string path_;
  std::string magic_;
  FileSystem& fs_;
  std::unique_ptr<WritableFile> file_;
};

// The intact records of a journal; no file is an empty journal.
Result<std::vector<std::string>> ReadJournal(const std::string& path, std::string_view magic,
                                             FileSystem& fs = FileSystem::Default());

}  // namespace tidemark::store
