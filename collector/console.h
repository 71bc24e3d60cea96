// The web console's files (collector/console/, and Debian's Chart.js), built into tidemarkd by
// collector/embed.cmake: served at / and /console/..., nothing fetched at run time. They hold
// no data (the pages ask the query API for it), so they are served without the token: the page
// must load to ask for it.
//
// Thread-safety: reentrant (constant tables).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "collector/http_server.h"

namespace tidemark::collector {

struct EmbeddedFile {
  const char* path;  // "/console/console.js".
  const unsigned char* data;
  size_t size;
};
extern const EmbeddedFile kEmbeddedFiles[];
extern const size_t kEmbeddedFileCount;

// The file at `path` ("/" is the console's page), or nullopt if `path` is not one of them.
// A method other than GET or HEAD on one is answered 405.
std::optional<HttpResponse> ConsoleFile(const std::string& method, const std::string& path);

}  // namespace tidemark::collector
