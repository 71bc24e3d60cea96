#include "agent/zmtp.h"

#include <sodium.h>

#include <cstring>

namespace tidemark::agent {
namespace {

using snapshot::Code;
using snapshot::Fail;

constexpr size_t kGreetingSize = 64;
constexpr uint8_t kMore = 0x01, kLong = 0x02, kCommand = 0x04;
constexpr size_t kBoxMac = crypto_box_MACBYTES;  // 16
constexpr char kZ85[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

std::unexpected<snapshot::Error> Protocol(const std::string& what) {
  return Fail(Code::kInvalid, "collector protocol: " + what);
}

void PutU64(uint64_t v, uint8_t* out) {
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<uint8_t>(v);
}

uint64_t GetU64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | in[i];
  return v;
}

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

void Append(std::string* out, const void* data, size_t size) {
  out->append(static_cast<const char*>(data), size);
}

// One frame: flags, then a short or long size, then the body.
void Frame(uint8_t flags, std::string_view body, std::string* out) {
  if (body.size() > 255) {
    uint8_t header[9] = {static_cast<uint8_t>(flags | kLong)};
    PutU64(body.size(), header + 1);
    Append(out, header, sizeof header);
  } else {
    const uint8_t header[2] = {flags, static_cast<uint8_t>(body.size())};
    Append(out, header, sizeof header);
  }
  out->append(body);
}

std::string Metadata() {
  std::string m;
  const std::string name = "Socket-Type", value = "DEALER";
  m.push_back(static_cast<char>(name.size()));
  m += name;
  uint8_t size[4] = {0, 0, 0, static_cast<uint8_t>(value.size())};
  Append(&m, size, 4);
  m += value;
  return m;
}

// The peer's metadata must say it is a ROUTER.
snapshot::Result<void> CheckMetadata(std::string_view m) {
  while (!m.empty()) {
    const size_t name_size = static_cast<uint8_t>(m[0]);
    if (m.size() < 1 + name_size + 4) return Protocol("truncated metadata");
    const std::string_view name = m.substr(1, name_size);
    const uint8_t* s = Bytes(m.substr(1 + name_size, 4));
    const uint64_t value_size = (uint64_t{s[0]} << 24) | (s[1] << 16) | (s[2] << 8) | s[3];
    if (m.size() - 1 - name_size - 4 < value_size) return Protocol("truncated metadata");
    const std::string_view value = m.substr(1 + name_size + 4, value_size);
    if (name == "Socket-Type" && value != "ROUTER") {
      return Protocol("the peer is a " + std::string(value) + " socket, not tidemarkd's ROUTER");
    }
    m.remove_prefix(1 + name_size + 4 + value_size);
  }
  return {};
}

// A nonce: 16 or 8 bytes of prefix, then `tail`.
std::array<uint8_t, crypto_box_NONCEBYTES> Nonce(const char* prefix, const uint8_t* tail,
                                                 size_t tail_size) {
  std::array<uint8_t, crypto_box_NONCEBYTES> n{};
  const size_t p = crypto_box_NONCEBYTES - tail_size;
  std::memcpy(n.data(), prefix, p);
  std::memcpy(n.data() + p, tail, tail_size);
  return n;
}

}  // namespace

snapshot::Result<Key> DecodeZ85Key(std::string_view text) {
  if (text.size() != 40)
    return Fail("a CURVE key is 40 Z85 characters, not " + std::to_string(text.size()));
  Key key{};
  for (size_t block = 0; block < 8; ++block) {
    uint64_t value = 0;
    for (size_t i = 0; i < 5; ++i) {
      const char* at = std::strchr(kZ85, text[block * 5 + i]);
      if (at == nullptr || text[block * 5 + i] == '\0') return Fail("a CURVE key is not Z85 text");
      value = value * 85 + static_cast<uint64_t>(at - kZ85);
    }
    if (value > 0xffffffffu) return Fail("a CURVE key is not Z85 text");
    for (size_t i = 0; i < 4; ++i) key[block * 4 + i] = static_cast<uint8_t>(value >> (24 - 8 * i));
  }
  return key;
}

ZmtpClient::ZmtpClient(std::optional<CurveKeys> curve) : curve_(std::move(curve)) {
  static const bool initialized = sodium_init() >= 0;  // Once; thread-safe.
  (void)initialized;
  if (curve_) crypto_box_keypair(transient_public_.data(), transient_secret_.data());
}

ZmtpClient::~ZmtpClient() {
  sodium_memzero(transient_secret_.data(), transient_secret_.size());
  sodium_memzero(precomputed_.data(), precomputed_.size());
  if (curve_) sodium_memzero(curve_->secret.data(), curve_->secret.size());
}

void ZmtpClient::Start(std::string* out) {
  uint8_t greeting[kGreetingSize] = {0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 0};
  std::memcpy(greeting + 12, curve_ ? "CURVE" : "NULL", curve_ ? 5 : 4);
  Append(out, greeting, sizeof greeting);
}

void ZmtpClient::Command(std::string_view body, std::string* out) const {
  Frame(kCommand, body, out);
}

snapshot::Result<void> ZmtpClient::Receive(std::string_view bytes, std::string* out,
                                           std::vector<std::string>* frames) {
  if (state_ == State::kFailed) return Protocol("the connection already failed");
  in_.append(bytes);
  auto failed = [&](snapshot::Result<void> r) {
    if (!r) state_ = State::kFailed;
    return r;
  };
  if (state_ == State::kGreeting) {
    if (in_.size() < kGreetingSize) return {};
    if (auto r = failed(OnGreeting(out)); !r) return r;
  }
  size_t at = 0;
  while (in_.size() - at >= 2) {
    const uint8_t flags = static_cast<uint8_t>(in_[at]);
    if (flags & ~(kMore | kLong | kCommand)) return failed(Protocol("a frame with unknown flags"));
    size_t header = 2;
    uint64_t size = static_cast<uint8_t>(in_[at + 1]);
    if (flags & kLong) {
      header = 9;
      if (in_.size() - at < header) break;
      size = GetU64(Bytes(std::string_view(in_).substr(at + 1, 8)));
    }
    if (size > kMaxFrame) return failed(Protocol("a frame of " + std::to_string(size) + " bytes"));
    if (in_.size() - at - header < size) break;
    const std::string_view body = std::string_view(in_).substr(at + header, size);
    if (auto r = failed(OnFrame(flags, body, out, frames)); !r) return r;
    at += header + size;
  }
  in_.erase(0, at);
  return {};
}

snapshot::Result<void> ZmtpClient::OnGreeting(std::string* out) {
  const uint8_t* g = Bytes(in_);
  if (g[0] != 0xff || g[9] != 0x7f) return Protocol("not a ZMTP greeting");
  if (g[10] < 3) return Protocol("ZMTP " + std::to_string(g[10]) + ".x is not spoken here");
  const std::string mechanism(reinterpret_cast<const char*>(g + 12),
                              strnlen(reinterpret_cast<const char*>(g + 12), 20));
  if (mechanism != (curve_ ? "CURVE" : "NULL")) {
    return Protocol("the collector speaks " + mechanism + ", this agent " +
                    (curve_ ? "CURVE" : "NULL (no CURVE keys given)"));
  }
  in_.erase(0, kGreetingSize);
  if (!curve_) {
    Command("\x05READY" + Metadata(), out);
    state_ = State::kPeerReady;
    return {};
  }
  // HELLO: Box[64 zeros](C'->S).
  uint8_t nonce_tail[8];
  PutU64(NextNonce(), nonce_tail);
  const auto nonce = Nonce("CurveZMQHELLO---", nonce_tail, 8);
  uint8_t zeros[64] = {}, box[64 + kBoxMac];
  if (crypto_box_easy(box, zeros, sizeof zeros, nonce.data(), curve_->server.data(),
                      transient_secret_.data()) != 0) {
    return Protocol("the server's CURVE key is unusable");
  }
  std::string hello("\x05HELLO\x01\x00", 8);
  hello.append(72, '\0');
  Append(&hello, transient_public_.data(), 32);
  Append(&hello, nonce_tail, 8);
  Append(&hello, box, sizeof box);
  Command(hello, out);
  state_ = State::kWelcome;
  return {};
}

snapshot::Result<void> ZmtpClient::OnFrame(uint8_t flags, std::string_view body, std::string* out,
                                           std::vector<std::string>* frames) {
  const bool command = (flags & kCommand) != 0;
  if (command && body.size() >= 6 &&
      body.substr(0, 6) ==
          "\x05"
          "ERROR") {
    const size_t n =
        body.size() > 6 ? std::min<size_t>(static_cast<uint8_t>(body[6]), body.size() - 7) : 0;
    return Protocol("the collector refused the connection: " +
                    std::string(body.substr(body.size() > 6 ? 7 : 6, n)));
  }
  if (command && body.size() >= 5 && body.substr(0, 5) == "\x04PING") {
    if (body.size() < 7) return Protocol("a short PING");
    std::string pong("\x04PONG");
    pong.append(body.substr(7, std::min<size_t>(body.size() - 7, 16)));
    if (ready() && curve_) return {};  // Under CURVE commands after the handshake are boxed.
    Command(pong, out);
    return {};
  }
  switch (state_) {
    case State::kWelcome:
      if (!command) return Protocol("data before the handshake");
      return OnWelcome(body, out);
    case State::kPeerReady:
      if (!command) return Protocol("data before the handshake");
      return OnReady(body);
    case State::kReady:
      if (curve_) return OnMessage(body, frames);
      if (command) return {};  // ZMTP 3.1 commands (PONG, SUBSCRIBE...) mean nothing here.
      frames->emplace_back(body);
      return {};
    default:
      return Protocol("unexpected frame");
  }
}

snapshot::Result<void> ZmtpClient::OnWelcome(std::string_view body, std::string* out) {
  if (body.size() != 168 || body.substr(0, 8) != "\x07WELCOME") return Protocol("no WELCOME");
  const auto nonce = Nonce("WELCOME-", Bytes(body) + 8, 16);
  uint8_t plain[128];
  if (crypto_box_open_easy(plain, Bytes(body) + 24, 144, nonce.data(), curve_->server.data(),
                           transient_secret_.data()) != 0) {
    return Protocol("the WELCOME does not open with the server's key (a wrong server key?)");
  }
  std::memcpy(server_transient_.data(), plain, 32);
  if (crypto_box_beforenm(precomputed_.data(), server_transient_.data(),
                          transient_secret_.data()) != 0) {
    return Protocol("the server's transient key is unusable");
  }
  // The vouch: Box[C' | S](C->S'), with a random long nonce.
  uint8_t vouch_tail[16];
  randombytes_buf(vouch_tail, sizeof vouch_tail);
  const auto vouch_nonce = Nonce("VOUCH---", vouch_tail, 16);
  uint8_t vouch_plain[64], vouch[64 + kBoxMac];
  std::memcpy(vouch_plain, transient_public_.data(), 32);
  std::memcpy(vouch_plain + 32, curve_->server.data(), 32);
  if (crypto_box_easy(vouch, vouch_plain, sizeof vouch_plain, vouch_nonce.data(),
                      server_transient_.data(), curve_->secret.data()) != 0) {
    return Protocol("the server's transient key is unusable");
  }
  std::string inner;
  Append(&inner, curve_->public_key.data(), 32);
  Append(&inner, vouch_tail, 16);
  Append(&inner, vouch, sizeof vouch);
  inner += Metadata();
  uint8_t nonce_tail[8];
  PutU64(NextNonce(), nonce_tail);
  const auto initiate_nonce = Nonce("CurveZMQINITIATE", nonce_tail, 8);
  std::string box(inner.size() + kBoxMac, '\0');
  crypto_box_easy_afternm(reinterpret_cast<uint8_t*>(box.data()), Bytes(inner), inner.size(),
                          initiate_nonce.data(), precomputed_.data());
  std::string initiate("\x08INITIATE");
  Append(&initiate, plain + 32, 96);  // The cookie.
  Append(&initiate, nonce_tail, 8);
  initiate += box;
  sodium_memzero(plain, sizeof plain);
  Command(initiate, out);
  state_ = State::kPeerReady;
  return {};
}

snapshot::Result<void> ZmtpClient::OnReady(std::string_view body) {
  if (body.size() < 6 || body.substr(0, 6) != "\x05READY") return Protocol("no READY");
  if (!curve_) {
    if (auto r = CheckMetadata(body.substr(6)); !r) return r;
    state_ = State::kReady;
    return {};
  }
  if (body.size() < 14 + kBoxMac) return Protocol("a short READY");
  peer_nonce_ = GetU64(Bytes(body) + 6);
  const auto nonce = Nonce("CurveZMQREADY---", Bytes(body) + 6, 8);
  std::string plain(body.size() - 14 - kBoxMac, '\0');
  if (crypto_box_open_easy_afternm(reinterpret_cast<uint8_t*>(plain.data()), Bytes(body) + 14,
                                   body.size() - 14, nonce.data(), precomputed_.data()) != 0) {
    return Protocol("the READY does not open");
  }
  if (auto r = CheckMetadata(plain); !r) return r;
  state_ = State::kReady;
  return {};
}

snapshot::Result<void> ZmtpClient::OnMessage(std::string_view body,
                                             std::vector<std::string>* frames) {
  if (body.size() < 16 + kBoxMac + 1 || body.substr(0, 8) != "\x07MESSAGE") {
    return Protocol("not a CURVE MESSAGE");
  }
  const uint64_t sequence = GetU64(Bytes(body) + 8);
  if (sequence <= peer_nonce_) return Protocol("a replayed or reordered MESSAGE");
  peer_nonce_ = sequence;
  const auto nonce = Nonce("CurveZMQMESSAGES", Bytes(body) + 8, 8);
  std::string plain(body.size() - 16 - kBoxMac, '\0');
  if (crypto_box_open_easy_afternm(reinterpret_cast<uint8_t*>(plain.data()), Bytes(body) + 16,
                                   body.size() - 16, nonce.data(), precomputed_.data()) != 0) {
    return Protocol("a MESSAGE that does not open");
  }
  if (static_cast<uint8_t>(plain[0]) & kCommand) return {};  // A command inside: none expected.
  frames->emplace_back(plain.substr(1));
  return {};
}

void ZmtpClient::Encode(std::string_view message, std::string* out) {
  if (!curve_) {
    Frame(0, message, out);
    return;
  }
  uint8_t nonce_tail[8];
  PutU64(NextNonce(), nonce_tail);
  const auto nonce = Nonce("CurveZMQMESSAGEC", nonce_tail, 8);
  std::string plain(1, '\0');
  plain.append(message);
  std::string boxed("\x07MESSAGE");
  Append(&boxed, nonce_tail, 8);
  const size_t at = boxed.size();
  boxed.resize(at + plain.size() + kBoxMac);
  crypto_box_easy_afternm(reinterpret_cast<uint8_t*>(boxed.data() + at), Bytes(plain), plain.size(),
                          nonce.data(), precomputed_.data());
  Frame(0, boxed, out);
}

}  // namespace tidemark::agent
