// RemoteFileSystem: a store's files read over tidemarkd's query API (GET /api/v1/store/file and
// store/list, collector/api_store_files.h), so that `tidemark VERB --collector URL` runs the
// same code as on the collector's host, on the same bytes, and prints the same output.
//
// Paths are "URL/REL" (the CLI's store directory is the URL); reads longer than one request
// returns are asked in pieces. Read-only: every writing method fails. The token, when
// tidemarkd needs one (http.token_file), is read from TIDEMARK_TOKEN_FILE or TIDEMARK_TOKEN.
// Plain http:// only (TLS: a reverse proxy on the collector's side, reached through a tunnel).
//
// Thread-safety: reentrant (each request is its own connection).
#pragma once

#include <memory>
#include <string>

#include "snapshot/result.h"
#include "store/file_system.h"

namespace tidemark::cli {

// A file system over the collector at `url` ("http://HOST:PORT", a trailing '/' ignored);
// an error naming what is wrong with the URL or the token file.
snapshot::Result<std::unique_ptr<store::FileSystem>> OpenRemoteFileSystem(const std::string& url);

// "http://HOST:PORT" for `url` as given (trailing '/' removed): the CLI's store directory.
std::string RemoteStoreRoot(const std::string& url);

}  // namespace tidemark::cli
