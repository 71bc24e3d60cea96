#include "cli/process_maps.h"

#include <fstream>
#include <sstream>

#include "cli/elf_symbols.h"

namespace tidemark::cli {

using snapshot::Code;
using snapshot::Fail;

std::vector<Mapping> ParseMaps(const std::string& text) {
  std::vector<Mapping> maps;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream in(line);
    std::string range, perms, offset, device, inode;
    if (!(in >> range >> perms >> offset >> device >> inode)) continue;
    const size_t dash = range.find('-');
    if (dash == std::string::npos) continue;
    Mapping m;
    try {
      m.start = std::stoull(range.substr(0, dash), nullptr, 16);
      m.end = std::stoull(range.substr(dash + 1), nullptr, 16);
      m.offset = std::stoull(offset, nullptr, 16);
    } catch (const std::exception&) {
      continue;
    }
    m.perms = perms;
    std::getline(in >> std::ws, m.path);
    maps.push_back(std::move(m));
  }
  return maps;
}

snapshot::Result<std::vector<Mapping>> ReadMaps(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::stringstream text;
  text << in.rdbuf();
  if (!in && text.str().empty()) {
    return Fail(Code::kIo, "cannot read /proc/" + std::to_string(pid) + "/maps");
  }
  return ParseMaps(text.str());
}

std::optional<Mapping> MappingAt(const std::vector<Mapping>& maps, uint64_t address) {
  for (const Mapping& m : maps) {
    if (address >= m.start && address < m.end) return m;
  }
  return std::nullopt;
}

std::optional<std::string> MappedFile(const std::vector<Mapping>& maps,
                                      const std::vector<std::string>& prefixes) {
  for (const Mapping& m : maps) {
    if (m.path.empty() || m.path[0] != '/') continue;
    const std::string name = m.path.substr(m.path.rfind('/') + 1);
    for (const std::string& prefix : prefixes) {
      if (name.rfind(prefix, 0) == 0) return m.path;
    }
  }
  return std::nullopt;
}

snapshot::Result<std::map<std::string, uint64_t>> FunctionAddresses(
    pid_t pid, const std::vector<Mapping>& maps, const std::string& path,
    const std::vector<std::string>& names) {
  if (path.find(" (deleted)") != std::string::npos) {
    return Fail(Code::kInvalid,
                path + " was replaced on disk since process " + std::to_string(pid) + " mapped it");
  }
  const Mapping* first = nullptr;
  for (const Mapping& m : maps) {
    if (m.path == path && m.offset == 0) {
      first = &m;
      break;
    }
  }
  if (first == nullptr) return Fail(Code::kNotFound, path + " is not mapped at offset 0");
  auto symbols = ReadElfSymbols("/proc/" + std::to_string(pid) + "/root" + path, names);
  if (!symbols) return std::unexpected(symbols.error());
  std::map<std::string, uint64_t> out;
  for (const auto& [name, value] : symbols->values) {
    out[name] = first->start - symbols->load_vaddr + value;
  }
  return out;
}

}  // namespace tidemark::cli
