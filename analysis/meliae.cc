#include "analysis/meliae.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace tidemark::analysis {
namespace {

// A field that must be a whole number from 0 to 2^64 - 1: a float (1e+300), a negative number
// or a string is an error naming the field, never a value converted out of range.
uint64_t Unsigned(const nlohmann::json& value, const char* field) {
  if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
    throw std::invalid_argument(std::string("'") + field + "' is " + value.dump() +
                                ", not a whole number from 0 to 2^64-1");
  }
  return value.get<uint64_t>();
}

using snapshot::Fail;

// Reads lines of any length from a plain or gzip file (zlib reads both).
class LineReader {
 public:
  explicit LineReader(gzFile file) : file_(file) {}
  bool Next(std::string& line) {
    line.clear();
    char buffer[1 << 16];
    while (gzgets(file_, buffer, sizeof buffer) != nullptr) {
      line += buffer;
      if (!line.empty() && line.back() == '\n') return true;
    }
    return !line.empty();
  }

 private:
  gzFile file_;
};

std::string_view Trim(std::string_view s) {
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == ',')) {
    s.remove_suffix(1);
  }
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

}  // namespace

snapshot::Result<snapshot::Snapshot> ReadMeliaeDump(const std::string& path,
                                                    MeliaeImportStats* stats_out,
                                                    const std::function<void(uint64_t)>& progress) {
  std::unique_ptr<gzFile_s, decltype(&gzclose)> file(gzopen(path.c_str(), "rb"), &gzclose);
  if (!file) return Fail("cannot open '" + path + "'");
  gzbuffer(file.get(), 1 << 20);
  MeliaeImportStats stats;
  snapshot::Snapshot s;
  s.header.kind = snapshot::Kind::kGraph;
  s.header.identity.service = "meliae:" + std::filesystem::path(path).filename().string();
  s.header.identity.host = "imported";
  s.header.identity.pid = 1;
  s.header.identity.start_time_ns = 1;
  snapshot::Graph& g = s.graph;
  std::unordered_map<std::string, uint32_t> type_ids;
  std::unordered_map<uint64_t, uint32_t> index_of;
  std::vector<uint64_t> ref_addresses;
  std::vector<uint64_t> ref_begin = {0};
  LineReader reader(file.get());
  std::string line;
  uint64_t number = 0;
  while (reader.Next(line)) {
    ++number;
    if (progress && number % 100'000 == 0) progress(number);
    const std::string_view text = Trim(line);
    if (text.empty() || text == "[" || text == "]") continue;
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(text);
      const uint64_t address = Unsigned(object.at("address"), "address");
      if (!index_of.emplace(address, static_cast<uint32_t>(g.address.size())).second) {
        ++stats.duplicate_addresses;
        continue;
      }
      const std::string type = object.at("type").get<std::string>();
      auto [it, added] = type_ids.emplace(type, static_cast<uint32_t>(s.types.size()));
      if (added) s.types.push_back({type, 0, 0, 0});
      const uint64_t size = Unsigned(object.at("size"), "size");
      snapshot::TypeStat& row = s.types[it->second];
      row.count += 1;
      row.bytes += size;
      row.max_bytes = std::max(row.max_bytes, size);
      const uint32_t i = static_cast<uint32_t>(g.address.size());
      g.address.push_back(address);
      g.type.push_back(it->second);
      g.size.push_back(size);
      g.length.push_back(object.contains("len") ? static_cast<uint32_t>(std::min<uint64_t>(
                                                      Unsigned(object["len"], "len"), UINT32_MAX))
                                                : 0);
      if (object.contains("name") && object["name"].is_string()) {
        g.names.emplace_back(i, object["name"].get<std::string>());
      }
      if (object.contains("value") && !object["value"].is_null()) {
        const auto& v = object["value"];
        g.values.emplace_back(i, v.is_string() ? v.get<std::string>() : v.dump());
      }
      if (object.contains("refs")) {
        for (const auto& r : object["refs"]) ref_addresses.push_back(Unsigned(r, "refs"));
      }
      ref_begin.push_back(ref_addresses.size());
    } catch (const std::exception& e) {
      return Fail(path + ":" + std::to_string(number) + ": not a meliae object line (" + e.what() +
                  ")");
    }
  }
  if (gzeof(file.get()) == 0) {
    int error = 0;
    const char* message = gzerror(file.get(), &error);
    if (error != Z_OK) return Fail(path + ": " + message);
  }
  if (g.address.size() >= UINT32_MAX) return Fail(path + ": too many objects");
  g.ref_begin.push_back(0);
  for (size_t i = 0; i + 1 < ref_begin.size(); ++i) {
    for (uint64_t k = ref_begin[i]; k < ref_begin[i + 1]; ++k) {
      auto found = index_of.find(ref_addresses[k]);
      if (found == index_of.end()) {
        ++stats.dangling_references;
        continue;
      }
      g.refs.push_back(found->second);
    }
    g.ref_begin.push_back(g.refs.size());
  }
  stats.objects = g.address.size();
  stats.references = g.refs.size();
  s.header.objects = stats.objects;
  s.header.types = s.types.size();
  for (const auto& t : s.types) s.header.bytes += t.bytes;
  s.header.has_values = !g.values.empty();
  if (stats_out) *stats_out = stats;
  return s;
}

}  // namespace tidemark::analysis
