#include "agent/connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/descriptors.h"

namespace tidemark::agent {

namespace {
constexpr auto kReconnect = std::chrono::milliseconds(100);  // As ZeroMQ's reconnect_ivl.
constexpr size_t kReadChunk = 64 * 1024;
}  // namespace

// Where to connect: a Unix socket's path, or a host and port resolved at each attempt.
struct Connection::Address {
  std::string path;  // ipc://
  std::string host, port;
};

Connection::Connection(ConnectionOptions options) : options_(std::move(options)) {}

Connection::~Connection() { Close(0); }

snapshot::Result<std::unique_ptr<Connection>> Connection::Open(const ConnectionOptions& options) {
  std::unique_ptr<Connection> c(new Connection(options));
  auto fail = [&](const std::string& why) {
    return snapshot::Fail("cannot connect to '" + options.endpoint + "': " + why);
  };
  auto address = std::make_unique<Address>();
  const std::string& e = options.endpoint;
  if (e.rfind("ipc://", 0) == 0) {
    address->path = e.substr(6);
    if (address->path.empty() || address->path.size() >= sizeof(sockaddr_un::sun_path)) {
      return fail("not a usable Unix socket path");
    }
  } else if (e.rfind("tcp://", 0) == 0) {
    const std::string rest = e.substr(6);
    const size_t colon = rest.rfind(':');
    if (colon == std::string::npos || colon + 1 == rest.size()) return fail("no port");
    address->host = rest.substr(0, colon);
    address->port = rest.substr(colon + 1);
    if (address->host.size() > 2 && address->host.front() == '[' && address->host.back() == ']') {
      address->host = address->host.substr(1, address->host.size() - 2);
    }
    char* end = nullptr;
    const long port = std::strtol(address->port.c_str(), &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535) return fail("not a port: " + address->port);
    if (address->host.empty() || address->host == "*") return fail("no host");
  } else {
    return fail("the endpoint is tcp://HOST:PORT or ipc:///path");
  }
  c->address_ = std::move(address);
  if (!options.curve_server_key.empty()) {
    auto server = DecodeZ85Key(options.curve_server_key);
    auto mine = DecodeZ85Key(options.curve_public_key);
    auto secret = DecodeZ85Key(options.curve_secret_key);
    if (!server || !mine || !secret) {
      return fail("the CURVE keys: " + (!server ? server.error()
                                        : !mine ? mine.error()
                                                : secret.error())
                                           .message);
    }
    c->curve_ = CurveKeys{*server, *mine, *secret};
  }
  c->StartConnecting();
  return c;
}

short Connection::poll_events() const {
  return static_cast<short>(POLLIN | (connecting_ || !out_.empty() ? POLLOUT : 0));
}

std::chrono::milliseconds Connection::Timeout() const {
  if (fd_ >= 0) return std::chrono::milliseconds(1000);
  return std::max(
      std::chrono::milliseconds(0),
      std::chrono::duration_cast<std::chrono::milliseconds>(reconnect_at_ - Clock::now()));
}

bool Connection::ready() const { return fd_ >= 0 && !connecting_ && zmtp_ && zmtp_->ready(); }

// The descriptor is still the socket made here. If not, the program closed it or put another
// file at its number: forget it without touching it, and connect again.
bool Connection::Ours() {
  if (fd_ < 0) return false;
  struct stat st;
  if (fstat(fd_, &st) == 0 && st.st_dev == device_ && st.st_ino == inode_) return true;
  ++lost_;
  fd_ = -1;
  Drop("the program closed or replaced the connection's descriptor");
  return false;
}

void Connection::StartConnecting() {
  reconnect_at_ = Clock::now() + kReconnect;
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_UNIX;
  if (!address_->path.empty()) {
    auto* un = reinterpret_cast<sockaddr_un*>(&storage);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, address_->path.c_str(), address_->path.size() + 1);
    length = static_cast<socklen_t>(sizeof(sockaddr_un));
  } else {
    addrinfo hints{}, *found = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(address_->host.c_str(), address_->port.c_str(), &hints, &found) != 0 ||
        found == nullptr) {
      last_error_ = "cannot resolve " + address_->host;
      return;
    }
    std::memcpy(&storage, found->ai_addr, found->ai_addrlen);
    length = found->ai_addrlen;
    family = found->ai_family;
    freeaddrinfo(found);
  }
  const int fd = MakeAboveStdio(
      [family] { return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); });
  if (fd < 0) {
    last_error_ = std::string("socket: ") + std::strerror(errno);
    return;
  }
  if (family != AF_UNIX) {
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  struct stat st;
  fstat(fd, &st);
  device_ = st.st_dev;
  inode_ = st.st_ino;
  if (connect(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 && errno != EINPROGRESS) {
    last_error_ = std::string("connect: ") + std::strerror(errno);
    close(fd);
    return;
  }
  fd_ = fd;
  connecting_ = true;
  zmtp_ = std::make_unique<ZmtpClient>(curve_);
  out_.clear();
  message_ends_.clear();
  zmtp_->Start(&out_);
}

void Connection::Drop(const std::string& why) {
  last_error_ = why;
  if (fd_ >= 0) close(fd_);  // Only called with a descriptor that is ours (or forgotten: -1).
  fd_ = -1;
  connecting_ = false;
  zmtp_.reset();
  out_.clear();  // As ZeroMQ with ZMQ_IMMEDIATE: what was queued to it is gone with it.
  message_ends_.clear();
  reconnect_at_ = Clock::now() + kReconnect;
}

void Connection::Pump() {
  if (fd_ < 0) {
    if (Clock::now() >= reconnect_at_) StartConnecting();
    return;
  }
  if (!Ours()) return;
  if (connecting_) {
    int error = 0;
    socklen_t size = sizeof error;
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &size) != 0) error = errno;
    if (error != 0) return Drop(std::string("connect: ") + std::strerror(error));
    pollfd p{fd_, POLLOUT, 0};
    if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLOUT)) return;  // Still connecting.
    connecting_ = false;
  }
  Write();
  if (fd_ >= 0) Read();
  if (fd_ >= 0) Write();  // The handshake's answers.
}

void Connection::Write() {
  size_t written = 0;
  while (written < out_.size()) {
    const ssize_t n =
        send(fd_, out_.data() + written, out_.size() - written, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) return Drop(std::string("send: ") + std::strerror(errno));
    written += static_cast<size_t>(n);
  }
  out_.erase(0, written);
  while (!message_ends_.empty() && message_ends_.front() <= written) message_ends_.pop_front();
  for (size_t& end : message_ends_) end -= written;
}

void Connection::Read() {
  char buffer[kReadChunk];
  std::vector<std::string> frames;
  for (;;) {
    const ssize_t n = recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n == 0) return Drop("the collector closed the connection");
    if (n < 0) return Drop(std::string("recv: ") + std::strerror(errno));
    frames.clear();
    auto fed = zmtp_->Receive(std::string_view(buffer, static_cast<size_t>(n)), &out_, &frames);
    if (!fed) return Drop(fed.error().message);
    for (std::string& f : frames) received_.push_back(std::move(f));
    if (received_.size() > 4096) received_.pop_front();  // Bounded: the oldest go.
  }
}

bool Connection::Queue(std::string_view message) {
  if (!ready() || !Ours()) return false;
  if (message_ends_.size() >= static_cast<size_t>(std::max(1, options_.send_hwm))) {
    Write();
    if (fd_ < 0 || message_ends_.size() >= static_cast<size_t>(std::max(1, options_.send_hwm))) {
      return false;
    }
  }
  zmtp_->Encode(message, &out_);
  message_ends_.push_back(out_.size());
  Write();
  return true;
}

Connection::Sent Connection::Send(std::string&& encoded, uint64_t seq) {
  const auto now = Clock::now();
  const auto expiry = std::chrono::duration<double>(options_.unacked_expiry_s);
  while (!unacked_.empty() && now - unacked_.front().sent > expiry) {
    unacked_bytes_ -= unacked_.front().encoded.size();
    unacked_.pop_front();
  }
  if (unacked_bytes_ + encoded.size() > options_.unacked_budget_bytes) return Sent::kOverBudget;
  if (!Queue(encoded)) return Sent::kNotConnected;
  unacked_bytes_ += encoded.size();
  unacked_.push_back({seq, std::move(encoded), now});
  return Sent::kOk;
}

std::vector<std::pair<uint64_t, std::string>> Connection::TakeUnacked() {
  std::vector<std::pair<uint64_t, std::string>> out;
  for (Unacked& u : unacked_) out.emplace_back(u.seq, std::move(u.encoded));
  unacked_.clear();
  unacked_bytes_ = 0;
  return out;
}

std::optional<Connection::Clock::time_point> Connection::oldest_unacked() const {
  if (unacked_.empty()) return std::nullopt;
  return unacked_.front().sent;
}

bool Connection::SendGoodbye(const snapshot::Goodbye& goodbye) {
  return Queue(snapshot::EncodeGoodbye(goodbye));
}

bool Connection::RecvFrame(std::string* frame) {
  if (received_.empty()) return false;
  *frame = std::move(received_.front());
  received_.pop_front();
  return true;
}

void Connection::Acknowledge(uint64_t seq) {
  // Acks arrive in order; anything older than the acked one is not coming.
  while (!unacked_.empty() && unacked_.front().seq <= seq) {
    unacked_bytes_ -= unacked_.front().encoded.size();
    if (unacked_.front().seq == seq) ++acked_;
    unacked_.pop_front();
  }
}

void Connection::Close(int linger_ms) {
  if (fd_ < 0 || !Ours()) {
    fd_ = -1;
    return;
  }
  // What is queued gets up to linger_ms to be written (a goodbye, the last snapshot).
  const auto until = Clock::now() + std::chrono::milliseconds(std::max(0, linger_ms));
  while (!out_.empty() && !connecting_ && fd_ >= 0 && Clock::now() < until) {
    pollfd p{fd_, POLLOUT, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (poll(&p, 1, static_cast<int>(std::max<long>(1, left))) > 0 && Ours()) Write();
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  zmtp_.reset();
}

}  // namespace tidemark::agent
