// libFuzzer harness: the store's readers and its recovery on arbitrary file contents. The
// input becomes the records of a summary segment (after a valid file header); its first bytes
// also decide whether agents.log and the index are present and damaged. Then:
//   - the resynchronizing scanner visits only intact records, in order, within the file;
//   - recovery (Store::Open) keeps every record whose frame is intact and whose header reads:
//     each is listed afterwards, and every listed entry reads back.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "snapshot/wire.h"
#include "store/log_format.h"
#include "store/record_scan.h"
#include "store/store.h"

namespace {

namespace fs = std::filesystem;
using namespace tidemark;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "store property broken: %s\n", what);
    std::abort();
  }
}

void Write(const fs::path& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  // The scanner alone, on the bytes as they are.
  uint64_t last = store::kFileHeaderSize;
  const auto outcome = store::ScanBytes(
      body, store::kFileHeaderSize, {}, [&](uint64_t offset, std::string_view payload) {
        Check(offset >= last, "records out of order");
        Check(offset + store::kRecordHeaderSize + payload.size() <=
                  store::kFileHeaderSize + body.size(),
              "record past the end");
        last = offset + store::kRecordHeaderSize + payload.size();
      });
  Check(outcome.end <= store::kFileHeaderSize + body.size(), "end past the data");

  static const fs::path dir = "/dev/shm/tidemark-fuzz-store-" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir / "summary");
  const std::string segment = store::FileHeader("TDMS", 1) + body;
  Write(dir / "summary" / "0000000000000001.seg", segment);
  // Records whose frame is intact and whose message header reads: recovery must keep them.
  std::set<uint64_t> readable;
  store::ScanOptions segment_records;  // As recovery scans a segment.
  segment_records.plausible = [](std::string_view head) {
    return head.size() >= 13 && head[0] == 'S' && head.substr(9, 4) == "TDMK";
  };
  store::ScanBytes(body, store::kFileHeaderSize, segment_records,
                   [&](uint64_t offset, std::string_view payload) {
                     if (payload.size() < 9 || payload[0] != 'S') return;
                     auto header = snapshot::DecodeHeader(payload.substr(9));
                     auto envelope = snapshot::DecodeEnvelope(payload.substr(9));
                     if (header && envelope && header->kind == snapshot::Kind::kSummary) {
                       readable.insert(offset);
                     }
                   });
  {
    store::StoreOptions options;
    options.sync = false;
    auto opened = store::Store::Open(dir, options, 2);
    if (!opened) return 0;  // An error value naming the problem is fine.
  }
  auto catalog = store::ReadCatalog(dir);
  Check(catalog.has_value(), "a recovered store does not read");
  std::set<uint64_t> listed;
  for (const store::IndexEntry& e : catalog->entries) {
    listed.insert(e.offset);
    Check(store::ReadMessage(dir, e).has_value(), "a listed snapshot does not read back");
  }
  for (uint64_t offset : readable) Check(listed.count(offset) == 1, "an intact record was lost");
  return 0;
}
