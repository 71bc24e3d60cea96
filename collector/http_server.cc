#include "collector/http_server.h"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>

namespace tidemark::collector {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::asio::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const HttpServer::Handler& handler)
      : stream_(std::move(socket)), handler_(handler) {}

  void Start() {
    stream_.expires_after(std::chrono::seconds(10));
    http::async_read(stream_, buffer_, request_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (!ec) self->Respond();
                     });
  }

 private:
  void Respond() {
    HttpResponse answer;
    try {
      answer = handler_(std::string(request_.method_string()), std::string(request_.target()));
    } catch (const std::exception& e) {
      answer = {500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n"};
    }
    response_.result(static_cast<http::status>(answer.status));
    response_.version(request_.version());
    response_.set(http::field::server, "tidemarkd");
    response_.set(http::field::content_type, answer.content_type);
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
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

}  // namespace

HttpServer::HttpServer(boost::asio::io_context& io, Handler handler)
    : io_(io), handler_(std::move(handler)), acceptor_(io) {}

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
}

void HttpServer::Accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) std::make_shared<Session>(std::move(socket), handler_)->Start();
    Accept();
  });
}

}  // namespace tidemark::collector
