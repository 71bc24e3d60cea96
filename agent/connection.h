// Connection: the agent's ZeroMQ DEALER connection to a collector, and what it owes: the
// snapshots sent but not yet acknowledged. No Python here.
//
// It never blocks: the socket queues only to a completed connection (ZMQ_IMMEDIATE), its
// high-water mark is small, sends never wait, and the bytes sent but not acknowledged are
// capped by a budget (entries older than the expiry are written off). Whatever cannot go now
// is refused, for the caller to count as dropped. What was sent and not acknowledged is kept
// (within the budget) so that it can be sent to another collector (agent/endpoints.h).
//
// Opening one makes a ZeroMQ context, whose I/O and reaper threads and descriptors (epoll,
// eventfds, the TCP socket; all close-on-exec) live until Close().
//
// Thread-safety: none; owned by the reporter thread, or by the caller while that thread is
// not running.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "snapshot/control.h"
#include "snapshot/result.h"
#include "snapshot/wire.h"

namespace tidemark::agent {

// ZeroMQ's threads of a connection are named "7337/ZMQbg/IO/0" and "7337/ZMQbg/Reap", so
// that the agent can tell them from a host's own ZeroMQ threads (ps -L shows them too).
inline constexpr int kZmqThreadNamePrefix = 7337;
inline constexpr char kZmqThreadNameStart[] = "7337/ZMQbg/";

struct ConnectionOptions {
  std::string endpoint;  // e.g. "tcp://127.0.0.1:7878"
  int send_hwm = 4;
  size_t unacked_budget_bytes = 64u << 20;
  double unacked_expiry_s = 120;
  // CURVE (optional): the server's public key and this agent's key pair, Z85-encoded.
  std::string curve_server_key, curve_public_key, curve_secret_key;
};

class Connection {
 public:
  using Clock = std::chrono::steady_clock;

  // Makes the context and socket and starts connecting. Errors (bad endpoint, bad keys) are
  // values naming the endpoint.
  static snapshot::Result<std::unique_ptr<Connection>> Open(const ConnectionOptions& options);
  ~Connection();  // Close(0).
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The socket, for zmq_poll.
  void* socket_handle();

  enum class Sent { kOk, kOverBudget, kNotConnected };
  // Sends one encoded snapshot with sequence number `seq` without waiting. Taken (moved from)
  // only when sent (kOk), and kept, within the budget, until acknowledged or expired, for
  // TakeUnacked; otherwise `encoded` is left as it was.
  Sent Send(std::string&& encoded, uint64_t seq);

  // The snapshots sent and not acknowledged, oldest first, handed over (to be sent to another
  // collector) and forgotten here.
  std::vector<std::pair<uint64_t, std::string>> TakeUnacked();
  // When the oldest of them was sent, if any.
  std::optional<Clock::time_point> oldest_unacked() const;

  // Says the instance is ending (snapshot::Goodbye), without waiting. False if it could not
  // be queued (no collector connected).
  bool SendGoodbye(const snapshot::Goodbye& goodbye);

  // Reads every control message waiting, without blocking. `on_control` is called for each;
  // acknowledgements also free budget here and count in acked(). Undecodable frames are
  // reported through on_error.
  template <typename OnControl, typename OnError>
  void ReadControls(OnControl&& on_control, OnError&& on_error);

  // Closes the socket and terminates the context, waiting at most `linger_ms` for queued
  // messages; joins ZeroMQ's threads. Idempotent.
  void Close(int linger_ms);

  uint64_t acked() const { return acked_; }

 private:
  struct Zmq;
  Connection(ConnectionOptions options);
  bool RecvFrame(std::string* frame);
  void Acknowledge(uint64_t seq);

  ConnectionOptions options_;
  std::unique_ptr<Zmq> zmq_;
  struct Unacked {
    uint64_t seq;
    std::string encoded;
    Clock::time_point sent;
  };
  std::deque<Unacked> unacked_;
  size_t unacked_bytes_ = 0;
  uint64_t acked_ = 0;
};

template <typename OnControl, typename OnError>
void Connection::ReadControls(OnControl&& on_control, OnError&& on_error) {
  std::string frame;
  while (RecvFrame(&frame)) {
    auto control = snapshot::DecodeControl(frame);
    if (!control) {
      on_error(control.error().message);
      continue;
    }
    if (control->ack) Acknowledge(*control->ack);
    on_control(*control);
  }
}

}  // namespace tidemark::agent
