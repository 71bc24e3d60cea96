#include "collector/http_server.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>

namespace tidemark::collector {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::asio::ip::tcp;

// Only this origin's scripts, styles, images and requests; nothing inline, nothing framed.
constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `open` counts the sessions alive: this one until it is destroyed.
  Session(tcp::socket socket, const HttpServer::Handler& handler, std::shared_ptr<size_t> open)
      : stream_(std::move(socket)), handler_(handler), open_(std::move(open)) {
    ++*open_;
  }
  ~Session() { --*open_; }

  void Start() {
    stream_.expires_after(std::chrono::seconds(10));
    http::async_read(stream_, buffer_, request_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (!ec) self->Respond();
                     });
  }

 private:
  void Respond() {
    HttpRequest request{std::string(request_.method_string()), std::string(request_.target()),
                        std::string(request_[http::field::authorization]),
                        std::string(request_[http::field::host])};
    auto reply = [self = shared_from_this()](HttpResponse answer) {
      auto executor = self->stream_.get_executor();
      boost::asio::post(executor, [self = std::move(self), answer = std::move(answer)]() mutable {
        self->Write(std::move(answer));
      });
    };
    try {
      handler_(request, reply);
    } catch (const std::exception& e) {
      reply({500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n"});
    }
  }

  void Write(HttpResponse answer) {
    response_.result(static_cast<http::status>(answer.status));
    response_.version(request_.version());
    response_.set(http::field::server, "tidemarkd");
    response_.set(http::field::content_type, answer.content_type);
    response_.set("Content-Security-Policy", kContentSecurityPolicy);
    response_.set("X-Content-Type-Options", "nosniff");
    response_.set("X-Frame-Options", "DENY");
    response_.set("Referrer-Policy", "no-referrer");
    response_.set(http::field::cache_control, "no-store");
    for (const auto& [name, value] : answer.headers) response_.set(name, value);
    response_.keep_alive(false);
    response_.body() = std::move(answer.body);
    response_.prepare_payload();
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code, size_t) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    });
  }

  beast::tcp_stream stream_;
  const HttpServer::Handler& handler_;
  std::shared_ptr<size_t> open_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

}  // namespace

// Answers a connection over the cap without reading it, and closes it.
void Refuse(tcp::socket socket) {
  static const std::string kBusy =
      std::string(
          "HTTP/1.1 503 Service Unavailable\r\nServer: tidemarkd\r\n"
          "Content-Type: text/plain; charset=utf-8\r\nContent-Security-Policy: ") +
      kContentSecurityPolicy +
      "\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
      "Referrer-Policy: no-referrer\r\nCache-Control: no-store\r\nRetry-After: 1\r\n"
      "Connection: close\r\nContent-Length: 36\r\n\r\ntoo many HTTP connections; try again\n";
  boost::system::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(boost::asio::buffer(kBusy), ignored);
  socket.close(ignored);
}

HttpServer::HttpServer(boost::asio::io_context& io, Handler handler, size_t max_connections)
    : io_(io),
      handler_(std::move(handler)),
      max_connections_(max_connections),
      acceptor_(io),
      backoff_(io) {}

snapshot::Result<std::string> HttpServer::Listen(const std::string& host_port) {
  const auto colon = host_port.rfind(':');
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host_port.substr(0, colon), ec);
  if (ec) return snapshot::Fail("http.listen: \"" + host_port + "\" is not an IP address and port");
  const tcp::endpoint endpoint(address,
                               static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) return snapshot::Fail("cannot listen for HTTP on " + host_port + ": " + ec.message());
  Accept();
  const tcp::endpoint bound = acceptor_.local_endpoint();
  return bound.address().to_string() + ":" + std::to_string(bound.port());
}

void HttpServer::Stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  backoff_.cancel();
}

void HttpServer::Accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // Out of descriptors (or another accept error): wait, then try again, never spin.
      counters_->accept_errors.fetch_add(1, std::memory_order_relaxed);
      backoff_delay_ = std::min<std::chrono::milliseconds>(
          std::chrono::milliseconds(2000),
          std::max<std::chrono::milliseconds>(std::chrono::milliseconds(100), 2 * backoff_delay_));
      backoff_.expires_after(backoff_delay_);
      backoff_.async_wait([this](boost::system::error_code wait) {
        if (!wait && acceptor_.is_open()) Accept();
      });
      return;
    }
    backoff_delay_ = std::chrono::milliseconds(0);
    if (*open_ >= max_connections_) {
      counters_->refused.fetch_add(1, std::memory_order_relaxed);
      Refuse(std::move(socket));
    } else {
      std::make_shared<Session>(std::move(socket), handler_, open_)->Start();
    }
    Accept();
  });
}

}  // namespace tidemark::collector
