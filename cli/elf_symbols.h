// The addresses of named functions in a shared object or executable mapped into another
// process, read from the ELF file itself (its .dynsym, and .symtab where present), for the
// injector (cli/injector.h) to call dlopen in a target or to arm a breakpoint at one of the
// interpreter's functions.
//
// The file may belong to the target's owner, so it is hostile input: every offset, size and
// index is checked against the bytes read (at most 512 MiB), and a malformed file is an error,
// never a crash. Thread-safety: plain functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "snapshot/result.h"

namespace tidemark::cli {

struct ElfSymbols {
  // The lowest p_vaddr of a PT_LOAD segment, page-aligned down: mapped at the address of the
  // file's first mapping, so that a symbol's address is that mapping's start - load_vaddr +
  // its value.
  uint64_t load_vaddr = 0;
  std::map<std::string, uint64_t> values;  // Name -> st_value of the functions asked for.
};

// The symbols of `names` that the 64-bit little-endian ELF image `bytes` defines (undefined
// and zero-valued ones are left out). Errors: not such an ELF image, or a table out of bounds.
snapshot::Result<ElfSymbols> ReadElfSymbols(const std::vector<uint8_t>& bytes,
                                            const std::vector<std::string>& names);

// The same, from a file (through a path such as /proc/PID/root/usr/lib/...).
snapshot::Result<ElfSymbols> ReadElfSymbols(const std::string& path,
                                            const std::vector<std::string>& names);

}  // namespace tidemark::cli
