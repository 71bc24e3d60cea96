// A small HTTP/1.1 server on Boost.Beast for /healthz, /metrics and the query API: one request
// per connection, read with a timeout, handed to a handler on the io_context's thread, which
// replies at once or later from another thread (the reply is written on the io_context's).
//
// Every response carries a strict Content-Security-Policy (scripts, styles and requests from
// this origin only; no inline script, no framing), nosniff, no referrer and no caching.
//
// Bounded: at most max_connections at once; one more is answered 503 and closed (counted),
// so HTTP clients cannot take the descriptors that agents' connections need. When accept()
// fails for lack of descriptors (EMFILE, ENFILE) the server waits before accepting again
// (100 ms, doubling to 2 s) instead of spinning, and counts it.
//
// Thread-safety: use from the io_context's thread only; the counters may be read from any.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "snapshot/result.h"

namespace tidemark::collector {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers = {};  // Beyond those always sent.
};

struct HttpCounters {
  std::atomic<uint64_t> refused{0};        // Over max_connections: answered 503.
  std::atomic<uint64_t> accept_errors{0};  // accept() failed (no descriptor left, ...).
};

struct HttpRequest {
  std::string method, target;
  std::string authorization;  // The Authorization header, "" if absent.
  std::string host;           // The Host header, "" if absent.
};

class HttpServer {
 public:
  // Called exactly once per request, from any thread; the connection stays open until then
  // (a request still unanswered when the server is destroyed is closed unanswered).
  using Reply = std::function<void(HttpResponse)>;
  using Handler = std::function<void(const HttpRequest& request, Reply reply)>;

  HttpServer(boost::asio::io_context& io, Handler handler, size_t max_connections = 64);
  // Binds HOST:PORT (port 0 picks a free one); returns the bound HOST:PORT.
  snapshot::Result<std::string> Listen(const std::string& host_port);
  void Stop();
  const HttpCounters& counters() const { return *counters_; }

 private:
  void Accept();

  boost::asio::io_context& io_;
  Handler handler_;
  const size_t max_connections_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  std::chrono::milliseconds backoff_delay_{0};
  std::shared_ptr<size_t> open_ = std::make_shared<size_t>(0);  // Sessions alive.
  std::unique_ptr<HttpCounters> counters_ = std::make_unique<HttpCounters>();
};

}  // namespace tidemark::collector
