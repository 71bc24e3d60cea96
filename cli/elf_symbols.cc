#include "cli/elf_symbols.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace tidemark::cli {
namespace {

using snapshot::Code;
using snapshot::Fail;

constexpr uint64_t kMaxFile = uint64_t{512} << 20;

// A bounds-checked view of the image.
class Image {
 public:
  explicit Image(const std::vector<uint8_t>& bytes) : bytes_(bytes) {}

  template <typename T>
  bool Read(uint64_t offset, T* out) const {
    if (offset > bytes_.size() || bytes_.size() - offset < sizeof(T)) return false;
    std::memcpy(out, bytes_.data() + offset, sizeof(T));
    return true;
  }
  bool Contains(uint64_t offset, uint64_t size) const {
    return offset <= bytes_.size() && bytes_.size() - offset >= size;
  }
  // The NUL-terminated string at `offset` of a string table [table, table + size).
  bool String(uint64_t table, uint64_t size, uint64_t offset, std::string* out) const {
    if (!Contains(table, size) || offset >= size) return false;
    const char* begin = reinterpret_cast<const char*>(bytes_.data() + table + offset);
    const void* end = std::memchr(begin, '\0', size - offset);
    if (end == nullptr) return false;
    out->assign(begin, static_cast<const char*>(end));
    return true;
  }

 private:
  const std::vector<uint8_t>& bytes_;
};

// Looks up `wanted` in one symbol table section and its string table.
snapshot::Result<void> ScanTable(const Image& image, const Elf64_Ehdr& header,
                                 const Elf64_Shdr& table, const std::set<std::string>& wanted,
                                 ElfSymbols* out) {
  Elf64_Shdr strings;
  if (table.sh_link >= header.e_shnum ||
      !image.Read(header.e_shoff + uint64_t{table.sh_link} * header.e_shentsize, &strings)) {
    return Fail(Code::kCorrupt, "ELF: a symbol table's string table is out of bounds");
  }
  if (table.sh_entsize != sizeof(Elf64_Sym) || !image.Contains(table.sh_offset, table.sh_size)) {
    return Fail(Code::kCorrupt, "ELF: a symbol table is out of bounds");
  }
  const uint64_t count = table.sh_size / sizeof(Elf64_Sym);
  for (uint64_t i = 1; i < count; ++i) {
    Elf64_Sym symbol;
    image.Read(table.sh_offset + i * sizeof(Elf64_Sym), &symbol);
    if (symbol.st_shndx == SHN_UNDEF || symbol.st_value == 0) continue;
    const int type = ELF64_ST_TYPE(symbol.st_info);
    if (type != STT_FUNC && type != STT_GNU_IFUNC) continue;
    std::string name;
    if (!image.String(strings.sh_offset, strings.sh_size, symbol.st_name, &name)) continue;
    if (wanted.count(name) && !out->values.count(name)) out->values[name] = symbol.st_value;
  }
  return {};
}

}  // namespace

snapshot::Result<ElfSymbols> ReadElfSymbols(const std::vector<uint8_t>& bytes,
                                            const std::vector<std::string>& names) {
  const Image image(bytes);
  Elf64_Ehdr header;
  if (!image.Read(0, &header) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
      header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB) {
    return Fail(Code::kInvalid, "not a 64-bit little-endian ELF file");
  }
  if (header.e_phentsize != sizeof(Elf64_Phdr) || header.e_shentsize != sizeof(Elf64_Shdr)) {
    return Fail(Code::kCorrupt, "ELF: unexpected header sizes");
  }
  ElfSymbols out;
  bool loaded = false;
  for (uint64_t i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr segment;
    if (!image.Read(header.e_phoff + i * sizeof(Elf64_Phdr), &segment)) {
      return Fail(Code::kCorrupt, "ELF: program headers out of bounds");
    }
    if (segment.p_type != PT_LOAD) continue;
    const uint64_t page = segment.p_vaddr & ~uint64_t{0xfff};
    out.load_vaddr = loaded ? std::min(out.load_vaddr, page) : page;
    loaded = true;
  }
  if (!loaded) return Fail(Code::kCorrupt, "ELF: no loadable segment");
  const std::set<std::string> wanted(names.begin(), names.end());
  // .dynsym first (what the dynamic linker sees), then .symtab for what only it names.
  for (const uint32_t kind : {uint32_t{SHT_DYNSYM}, uint32_t{SHT_SYMTAB}}) {
    for (uint64_t i = 0; i < header.e_shnum; ++i) {
      Elf64_Shdr section;
      if (!image.Read(header.e_shoff + i * sizeof(Elf64_Shdr), &section)) {
        return Fail(Code::kCorrupt, "ELF: section headers out of bounds");
      }
      if (section.sh_type != kind) continue;
      if (auto scanned = ScanTable(image, header, section, wanted, &out); !scanned) {
        return std::unexpected(scanned.error());
      }
    }
  }
  return out;
}

snapshot::Result<ElfSymbols> ReadElfSymbols(const std::string& path,
                                            const std::vector<std::string>& names) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Fail(Code::kIo, path + ": " + std::strerror(errno));
  struct stat st;
  std::vector<uint8_t> bytes;
  bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && uint64_t(st.st_size) <= kMaxFile;
  if (ok) {
    bytes.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (ok && done < bytes.size()) {
      const ssize_t n = pread(fd, bytes.data() + done, bytes.size() - done, off_t(done));
      ok = n > 0;
      if (ok) done += size_t(n);
    }
  }
  close(fd);
  if (!ok) return Fail(Code::kIo, path + ": not a regular file of at most 512 MiB, or unreadable");
  auto symbols = ReadElfSymbols(bytes, names);
  if (!symbols) return Fail(path + ": ", symbols.error());
  return symbols;
}

}  // namespace tidemark::cli
