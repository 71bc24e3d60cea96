// The store's files, read-only over the query API, for `tidemark --collector URL`: the CLI
// reads them through a store::FileSystem that asks these (cli/remote_file_system.h), so every
// verb runs the same code on the same bytes and prints what it would print on the collector's
// host. (docs/api.md, "The store's files".)
//
//   GET /api/v1/store/file?path=REL[&offset=N][&length=N]  the bytes, at most kMaxFileRead
//   GET /api/v1/store/file?path=REL&stat=1                 {"size": N}
//   GET /api/v1/store/list?dir=REL                         {"names": [...]} ("" = the store)
//
// REL is relative to the store: no leading '/', no "." or ".." component, no NUL (400 naming
// `path` or `dir`). A file that does not exist is 404.
//
// Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <expected>
#include <string>

#include "collector/api_queries.h"
#include "collector/http_server.h"

namespace tidemark::collector {

inline constexpr uint64_t kMaxFileRead = uint64_t{16} << 20;  // Bytes one request returns.

std::expected<HttpResponse, QueryError> StoreFile(const std::string& store_dir,
                                                  const QueryParams& params);
std::expected<HttpResponse, QueryError> StoreList(const std::string& store_dir,
                                                  const QueryParams& params);

}  // namespace tidemark::collector
