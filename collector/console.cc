#include "collector/console.h"

#include <string_view>

namespace tidemark::collector {
namespace {

std::string ContentType(std::string_view path) {
  if (path.ends_with(".html")) return "text/html; charset=utf-8";
  if (path.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (path.ends_with(".css")) return "text/css; charset=utf-8";
  if (path.ends_with(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

}  // namespace

std::optional<HttpResponse> ConsoleFile(const std::string& method, const std::string& path) {
  const std::string wanted = path == "/" ? "/console/index.html" : path;
  for (size_t i = 0; i < kEmbeddedFileCount; ++i) {
    const EmbeddedFile& file = kEmbeddedFiles[i];
    if (wanted != file.path) continue;
    if (method != "GET" && method != "HEAD") return HttpResponse{405, "text/plain", "GET only\n"};
    return HttpResponse{200, ContentType(wanted),
                        std::string(reinterpret_cast<const char*>(file.data), file.size)};
  }
  return std::nullopt;
}

}  // namespace tidemark::collector
