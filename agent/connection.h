// Connection: the agent's connection to a collector (ZMTP 3.0 as a DEALER, agent/zmtp.h, over
// one TCP or Unix socket), and what it owes: the snapshots sent but not yet acknowledged. No
// Python here, and no thread: the reporter polls PollFd() and calls Pump().
//
// It never blocks: messages go only to a connection whose handshake is done, at most
// send_hwm of them wait to be written, writes never wait, and the bytes sent but not
// acknowledged are capped by a budget (entries older than the expiry are written off).
// Whatever cannot go now is refused, for the caller to count as dropped. What was sent and not
// acknowledged is kept (within the budget) so that it can be sent to another collector
// (agent/endpoints.h). A connection that fails is dropped and made again after 100 ms.
//
// Its one descriptor lives in someone else's process: it is never below 3 (a program that
// closed 0, 1 or 2 gets them back as it expects), close-on-exec, and before every use it is
// checked to still be the socket made here (its device and inode): one the program closed
// (os.closerange) or replaced (dup2) is forgotten without being touched — never closed, read
// or written — and a new connection is made (counted in lost_descriptors()).
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

#include "agent/zmtp.h"
#include "snapshot/control.h"
#include "snapshot/result.h"
#include "snapshot/wire.h"

namespace tidemark::agent {

struct ConnectionOptions {
  std::string endpoint;  // "tcp://HOST:PORT", "tcp://[::1]:PORT" or "ipc:///path"
  int send_hwm = 4;
  size_t unacked_budget_bytes = 64u << 20;
  double unacked_expiry_s = 120;
  // CURVE (optional): the server's public key and this agent's key pair, Z85-encoded.
  std::string curve_server_key, curve_public_key, curve_secret_key;
};

class Connection {
 public:
  using Clock = std::chrono::steady_clock;

  // Checks the endpoint and keys and starts connecting. Errors (bad endpoint, bad keys) are
  // values naming the endpoint.
  static snapshot::Result<std::unique_ptr<Connection>> Open(const ConnectionOptions& options);
  ~Connection();  // Close(0).
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // What to poll: the descriptor (-1 while waiting to connect again) and the events wanted.
  int poll_fd() const { return fd_; }
  short poll_events() const;
  // How long poll may wait before the connection has something to do by itself.
  std::chrono::milliseconds Timeout() const;
  // Does what can be done now: connects, writes, reads (frames kept for ReadControls).
  void Pump();
  // The handshake is done: snapshots can be sent.
  bool ready() const;

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
  // Descriptors found closed or replaced by the program, and connections dropped on an error.
  uint64_t lost_descriptors() const { return lost_; }
  const std::string& last_error() const { return last_error_; }

 private:
  struct Address;
  Connection(ConnectionOptions options);
  bool RecvFrame(std::string* frame);
  void Acknowledge(uint64_t seq);
  bool Ours();
  void StartConnecting();
  void Drop(const std::string& why);
  void Write();
  void Read();
  bool Queue(std::string_view message);

  ConnectionOptions options_;
  std::unique_ptr<Address> address_;
  std::optional<CurveKeys> curve_;
  std::unique_ptr<ZmtpClient> zmtp_;
  int fd_ = -1;
  uint64_t device_ = 0, inode_ = 0;  // Of the socket made here.
  bool connecting_ = false;
  Clock::time_point reconnect_at_{};
  std::string out_;                  // Bytes to write.
  std::deque<size_t> message_ends_;  // Where each queued message ends in out_.
  std::deque<std::string> received_;
  uint64_t lost_ = 0;
  std::string last_error_;
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
