// libFuzzer harness: the meliae dump importer on arbitrary file contents (written to a file in
// /dev/shm, as the importer reads paths).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "analysis/meliae.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/dev/shm/tidemark-fuzz-meliae-" + std::to_string(getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  (void)tidemark::analysis::ReadMeliaeDump(path);
  return 0;
}
