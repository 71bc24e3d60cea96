// What /proc/PID/maps says of a process's address space, and where a function of one of its
// mapped files lies in it (the file read through /proc/PID/root, so a process in another mount
// namespace is read as it sees its files).
//
// Thread-safety: plain functions and values.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "snapshot/result.h"

namespace tidemark::cli {

struct Mapping {
  uint64_t start = 0, end = 0, offset = 0;
  std::string perms;  // "r-xp"
  std::string path;   // "" for anonymous memory, "[stack]", or a file as the process sees it.
};

// The mappings of process `pid`, in address order.
snapshot::Result<std::vector<Mapping>> ReadMaps(pid_t pid);

// Parses the text of a maps file (exposed for tests).
std::vector<Mapping> ParseMaps(const std::string& text);

// The mapping that holds `address`, if any.
std::optional<Mapping> MappingAt(const std::vector<Mapping>& maps, uint64_t address);

// The path of the first mapped file whose name (after its last '/') starts with one of
// `prefixes` ("libc.so.6"), or nullopt.
std::optional<std::string> MappedFile(const std::vector<Mapping>& maps,
                                      const std::vector<std::string>& prefixes);

// The addresses in process `pid` of those of `names` that mapped file `path` defines.
snapshot::Result<std::map<std::string, uint64_t>> FunctionAddresses(
    pid_t pid, const std::vector<Mapping>& maps, const std::string& path,
    const std::vector<std::string>& names);

}  // namespace tidemark::cli
