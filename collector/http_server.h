// A small HTTP/1.1 server on Boost.Beast for /healthz and /metrics: one request per
// connection, read with a timeout, answered by a handler on the io_context's thread.
//
// Thread-safety: use from the io_context's thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <string>

#include "snapshot/result.h"

namespace tidemark::collector {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const std::string& method, const std::string& target)>;

  HttpServer(boost::asio::io_context& io, Handler handler);
  // Binds HOST:PORT (port 0 picks a free one); returns the bound HOST:PORT.
  snapshot::Result<std::string> Listen(const std::string& host_port);
  void Stop();

 private:
  void Accept();

  boost::asio::io_context& io_;
  Handler handler_;
  boost::asio::ip::tcp::acceptor acceptor_;
};

}  // namespace tidemark::collector
