#include "collector/api_store_files.h"

#include <cerrno>
#include <nlohmann/json.hpp>

#include "diff/json.h"
#include "store/file_system.h"

namespace tidemark::collector {
namespace {

// Whether `rel` stays inside the store: relative, no "." or ".." component, no NUL.
bool Inside(const std::string& rel) {
  if (rel.empty()) return true;
  if (rel.front() == '/' || rel.find('\0') != std::string::npos) return false;
  size_t start = 0;
  while (start <= rel.size()) {
    const size_t end = std::min(rel.find('/', start), rel.size());
    const std::string part = rel.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

std::expected<std::string, QueryError> Resolve(const std::string& store_dir,
                                               const QueryParams& params, const char* name) {
  const std::string rel = params.Get(name).value_or("");
  if (!Inside(rel)) {
    return std::unexpected(QueryError{
        400, std::string("'") + name + "' must be a path inside the store, not '" + rel + "'",
        name});
  }
  return rel.empty() ? store_dir : store_dir + "/" + rel;
}

QueryError FromFile(const snapshot::Error& e, const char* name) {
  return {e.code == snapshot::Code::kNotFound ? 404 : 500, e.message, name};
}

HttpResponse JsonAnswer(const nlohmann::json& body) {
  return {200, "application/json", diff::Dump(body) + "\n"};
}

}  // namespace

std::expected<HttpResponse, QueryError> StoreFile(const std::string& store_dir,
                                                  const QueryParams& params) {
  if (auto unknown = params.Unknown({"path", "offset", "length", "stat"})) {
    return std::unexpected(QueryError{400, "unknown parameter '" + *unknown + "'", *unknown});
  }
  if (!params.Get("path")) return std::unexpected(QueryError{400, "'path' is required", "path"});
  auto path = Resolve(store_dir, params, "path");
  if (!path) return std::unexpected(path.error());
  store::FileSystem& fs = store::FileSystem::Default();
  auto size = fs.Size(*path);
  if (!size) return std::unexpected(FromFile(size.error(), "path"));
  if (params.Flag("stat")) return JsonAnswer({{"size", *size}});
  auto offset = params.Integer("offset", 0, 0, INT64_MAX);
  if (!offset) return std::unexpected(QueryError{400, offset.error().message, "offset"});
  auto length = params.Integer("length", 0, 0, static_cast<int64_t>(kMaxFileRead));
  if (!length) return std::unexpected(QueryError{400, length.error().message, "length"});
  const uint64_t from = static_cast<uint64_t>(*offset);
  const uint64_t wanted =
      *length > 0 ? static_cast<uint64_t>(*length) : (*size > from ? *size - from : 0);
  if (wanted > kMaxFileRead) {
    return std::unexpected(QueryError{400,
                                      "that is " + std::to_string(wanted) + " bytes, over the " +
                                          std::to_string(kMaxFileRead) +
                                          " one request returns: ask a range with 'length'",
                                      "length"});
  }
  if (wanted == 0) return HttpResponse{200, "application/octet-stream", ""};
  auto bytes = fs.Read(*path, from, wanted);
  if (!bytes) return std::unexpected(FromFile(bytes.error(), "path"));
  return HttpResponse{200, "application/octet-stream", std::move(*bytes)};
}

std::expected<HttpResponse, QueryError> StoreList(const std::string& store_dir,
                                                  const QueryParams& params) {
  if (auto unknown = params.Unknown({"dir"})) {
    return std::unexpected(QueryError{400, "unknown parameter '" + *unknown + "'", *unknown});
  }
  auto dir = Resolve(store_dir, params, "dir");
  if (!dir) return std::unexpected(dir.error());
  auto names = store::FileSystem::Default().List(*dir);
  if (!names) return std::unexpected(FromFile(names.error(), "dir"));
  return JsonAnswer({{"names", *names}});
}

}  // namespace tidemark::collector
