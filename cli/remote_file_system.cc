#include "cli/remote_file_system.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace tidemark::cli {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::asio::ip::tcp;
using snapshot::Fail;
using snapshot::Result;

constexpr uint64_t kPiece = uint64_t{16} << 20;  // collector/api_store_files.h kMaxFileRead.
constexpr auto kTimeout = std::chrono::seconds(60);

std::string Escape(const std::string& text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// One GET, its body when 200; otherwise an error with the API's message.
class Client {
 public:
  Client(std::string root, std::string host, std::string port, std::string token)
      : root_(std::move(root)),
        host_(std::move(host)),
        port_(std::move(port)),
        token_(std::move(token)) {}

  const std::string& root() const { return root_; }

  Result<std::string> Get(const std::string& target) const {
    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    beast::flat_buffer buffer;
    http::request<http::empty_body> request{http::verb::get, target, 11};
    request.set(http::field::host, host_);
    request.set(http::field::user_agent, "tidemark-cli");
    if (!token_.empty()) request.set(http::field::authorization, "Bearer " + token_);
    http::response_parser<http::string_body> parser;
    parser.body_limit(kPiece + (1 << 20));
    beast::error_code failed;
    tcp::resolver resolver(io);
    stream.expires_after(kTimeout);
    resolver.async_resolve(host_, port_, [&](beast::error_code ec, tcp::resolver::results_type r) {
      if (ec) return void(failed = ec);
      stream.async_connect(r, [&](beast::error_code ec, const tcp::endpoint&) {
        if (ec) return void(failed = ec);
        http::async_write(stream, request, [&](beast::error_code ec, size_t) {
          if (ec) return void(failed = ec);
          http::async_read(stream, buffer, parser,
                           [&](beast::error_code ec, size_t) { failed = ec; });
        });
      });
    });
    io.run();
    if (failed) return Fail("cannot ask tidemarkd at " + root_ + ": " + failed.message());
    auto response = parser.release();
    if (response.result() == http::status::ok) return std::move(response.body());
    return Refusal(response.result_int(), response.body());
  }

 private:
  Result<std::string> Refusal(unsigned status, const std::string& body) const {
    if (status == 401) {
      return Fail(root_ +
                  " needs a token (tidemarkd's http.token_file): put it in a file "
                  "and name it in TIDEMARK_TOKEN_FILE" +
                  std::string(token_.empty() ? "" : "; the one given was refused"));
    }
    auto json = nlohmann::json::parse(body, nullptr, false);
    const std::string why = json.is_object() && json.contains("error")
                                ? json["error"].get<std::string>()
                                : "HTTP " + std::to_string(status);
    return Fail(status == 404 ? snapshot::Code::kNotFound : snapshot::Code::kIo,
                "tidemarkd at " + root_ + ": " + why);
  }

  const std::string root_, host_, port_, token_;
};

class RemoteFileSystem : public store::FileSystem {
 public:
  explicit RemoteFileSystem(Client client) : client_(std::move(client)) {}

  Result<std::string> Read(const std::string& path, uint64_t offset, uint64_t length) override {
    auto rel = Relative(path);
    if (!rel) return std::unexpected(rel.error());
    if (length == 0) {
      auto size = Size(path);
      if (!size) return std::unexpected(size.error());
      length = *size > offset ? *size - offset : 0;
    }
    std::string out;
    while (length > 0) {
      const uint64_t piece = std::min(length, kPiece);
      auto bytes = client_.Get("/api/v1/store/file?path=" + Escape(*rel) + "&offset=" +
                               std::to_string(offset) + "&length=" + std::to_string(piece));
      if (!bytes) return std::unexpected(bytes.error());
      out += *bytes;
      if (bytes->size() < piece) break;  // End of file.
      offset += piece;
      length -= piece;
    }
    return out;
  }

  Result<uint64_t> Size(const std::string& path) override {
    auto rel = Relative(path);
    if (!rel) return std::unexpected(rel.error());
    auto body = client_.Get("/api/v1/store/file?stat=1&path=" + Escape(*rel));
    if (!body) return std::unexpected(body.error());
    auto json = nlohmann::json::parse(*body, nullptr, false);
    if (!json.is_object() || !json["size"].is_number_unsigned()) {
      return Fail("tidemarkd at " + client_.root() + " answered a size that is not one");
    }
    return json["size"].get<uint64_t>();
  }

  Result<std::vector<std::string>> List(const std::string& dir) override {
    auto rel = Relative(dir);
    if (!rel) return std::unexpected(rel.error());
    auto body = client_.Get("/api/v1/store/list?dir=" + Escape(*rel));
    if (!body) return std::unexpected(body.error());
    auto json = nlohmann::json::parse(*body, nullptr, false);
    if (!json.is_object() || !json["names"].is_array()) {
      return Fail("tidemarkd at " + client_.root() + " answered a listing that is not one");
    }
    std::vector<std::string> names;
    for (const auto& n : json["names"]) {
      if (n.is_string()) names.push_back(n.get<std::string>());
    }
    return names;
  }

  Result<std::unique_ptr<store::WritableFile>> Create(const std::string& path) override {
    return ReadOnly(path);
  }
  Result<void> Truncate(const std::string& path, uint64_t) override { return ReadOnly(path); }
  Result<void> CreateDirs(const std::string& dir) override { return ReadOnly(dir); }
  Result<void> Rename(const std::string& from, const std::string&) override {
    return ReadOnly(from);
  }
  Result<void> SyncDir(const std::string& dir) override { return ReadOnly(dir); }
  Result<bool> RemoveIfUnused(const std::string& path) override { return ReadOnly(path); }
  Result<std::unique_ptr<store::FileLock>> Lock(const std::string& path) override {
    return ReadOnly(path);
  }

 private:
  static std::unexpected<snapshot::Error> ReadOnly(const std::string& path) {
    return Fail("the store at " + path + " is read over the query API: read-only");
  }

  Result<std::string> Relative(const std::string& path) const {
    const std::string& root = client_.root();
    if (path == root) return std::string();
    if (path.compare(0, root.size() + 1, root + "/") != 0) {
      return Fail(path + " is not in the store at " + root);
    }
    return path.substr(root.size() + 1);
  }

  Client client_;
};

Result<std::string> Token() {
  if (const char* file = std::getenv("TIDEMARK_TOKEN_FILE"); file && *file) {
    std::ifstream in(file);
    if (!in) return Fail(std::string("TIDEMARK_TOKEN_FILE: cannot read ") + file);
    std::string token;
    in >> token;
    return token;
  }
  const char* token = std::getenv("TIDEMARK_TOKEN");
  return std::string(token ? token : "");
}

}  // namespace

std::string RemoteStoreRoot(const std::string& url) {
  std::string root = url;
  while (!root.empty() && root.back() == '/') root.pop_back();
  return root;
}

Result<std::unique_ptr<store::FileSystem>> OpenRemoteFileSystem(const std::string& url) {
  const std::string root = RemoteStoreRoot(url);
  constexpr std::string_view kScheme = "http://";
  const std::string rest = root.rfind(kScheme, 0) == 0 ? root.substr(kScheme.size()) : "";
  const size_t colon = rest.rfind(':');
  if (rest.empty() || rest.find('/') != std::string::npos || colon == std::string::npos ||
      colon == 0 || colon + 1 == rest.size() ||
      rest.find_first_not_of("0123456789", colon + 1) != std::string::npos) {
    return Fail("--collector: expected http://HOST:PORT (tidemarkd's http.listen), not '" + url +
                "'");
  }
  std::string host = rest.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto token = Token();
  if (!token) return std::unexpected(token.error());
  return std::unique_ptr<store::FileSystem>(std::make_unique<RemoteFileSystem>(
      Client(root, host, rest.substr(colon + 1), std::move(*token))));
}

}  // namespace tidemark::cli
