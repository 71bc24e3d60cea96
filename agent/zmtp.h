// ZMTP 3.0 as the agent speaks it: the client side of a DEALER connected to tidemarkd's ROUTER,
// as a state machine without I/O (bytes received go in, bytes to send come out), with the NULL
// and CURVE (CurveZMQ) mechanisms. The agent's own, so that nothing of a ZeroMQ library lives
// in the host: no background thread, no eventfd, one TCP or Unix socket that agent/connection.h
// owns and watches (libzmq aborts its host when a descriptor of its is closed under it).
//
// Layouts (integers big-endian):
//
//   greeting (64 bytes)  FF 00 00 00 00 00 00 00 00 7F | 03 00 | mechanism, 20 bytes, NUL-padded
//                        | as-server 00 | 31 x 00
//   frame                flags (01 more, 02 long, 04 command) | size: 1 byte, or 8 if long | body
//   command body         name length (1) | name | data
//   metadata             (name length (1) | name | value length (4) | value)*
//   NULL                 READY command: "\x05READY" | metadata {Socket-Type: DEALER}, each way
//   CURVE  HELLO         "\x05HELLO" | 01 00 | 72 x 00 | C' (32) | nonce (8) | Box[64 x 00](C'->S)
//          WELCOME       "\x07WELCOME" | nonce (16) | Box[S' (32) | cookie (96)](S->C')
//          INITIATE      "\x08INITIATE" | cookie (96) | nonce (8)
//                        | Box[C (32) | vouch nonce (16) | Box[C' | S](C->S') (80) |
//                        metadata](C'->S')
//          READY         "\x05READY" | nonce (8) | Box[metadata](S'->C')
//          MESSAGE       a data frame: "\x07MESSAGE" | nonce (8) | Box[flags (1) | payload]
//   A Box is crypto_box (Curve25519, XSalsa20, Poly1305): 16 bytes of MAC, then the ciphertext.
//   Nonces are a prefix ("CurveZMQHELLO---", "WELCOME-", "CurveZMQINITIATE", "VOUCH---",
//   "CurveZMQREADY---", "CurveZMQMESSAGEC" from the client, "...MESSAGES" from the server) and a
//   counter (8 bytes; strictly increasing, checked on what the server sends) or 16 random bytes.
//
// What the collector sends is hostile input: every length is checked, a frame is at most
// kMaxFrame bytes, and any violation is an error (the connection is then dropped).
//
// Thread-safety: none; one per connection, owned by the reporter thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "snapshot/result.h"

namespace tidemark::agent {

using Key = std::array<uint8_t, 32>;

struct CurveKeys {
  Key server, public_key, secret;  // S, C, c
};

// A 40-character Z85 key (what `tidemark keygen` prints), as 32 bytes.
snapshot::Result<Key> DecodeZ85Key(std::string_view text);

class ZmtpClient {
 public:
  static constexpr size_t kMaxFrame = 1 << 20;

  explicit ZmtpClient(std::optional<CurveKeys> curve);
  ~ZmtpClient();
  ZmtpClient(const ZmtpClient&) = delete;
  ZmtpClient& operator=(const ZmtpClient&) = delete;

  // The greeting, to send first.
  void Start(std::string* out);
  // Takes bytes received; appends to *out what must be sent in answer and to *frames the
  // data frames received (each frame of a multi-part message on its own, as a DEALER's recv
  // gives them). An error means the connection must be dropped.
  snapshot::Result<void> Receive(std::string_view bytes, std::string* out,
                                 std::vector<std::string>* frames);
  // The handshake is complete: messages may be sent.
  bool ready() const { return state_ == State::kReady; }
  // Appends `message` as one frame (boxed under CURVE) to *out. Only when ready().
  void Encode(std::string_view message, std::string* out);

 private:
  enum class State { kGreeting, kWelcome, kPeerReady, kReady, kFailed };
  snapshot::Result<void> OnGreeting(std::string* out);
  snapshot::Result<void> OnFrame(uint8_t flags, std::string_view body, std::string* out,
                                 std::vector<std::string>* frames);
  snapshot::Result<void> OnWelcome(std::string_view body, std::string* out);
  snapshot::Result<void> OnReady(std::string_view body);
  snapshot::Result<void> OnMessage(std::string_view body, std::vector<std::string>* frames);
  void Command(std::string_view body, std::string* out) const;
  uint64_t NextNonce() { return nonce_++; }

  std::optional<CurveKeys> curve_;
  State state_ = State::kGreeting;
  std::string in_;  // Received, not yet parsed.
  // CURVE: the transient pair, the server's transient key, the precomputed key, nonces.
  Key transient_public_{}, transient_secret_{}, server_transient_{};
  std::array<uint8_t, 32> precomputed_{};
  uint64_t nonce_ = 1, peer_nonce_ = 0;
};

}  // namespace tidemark::agent
