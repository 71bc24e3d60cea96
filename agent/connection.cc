#include "agent/connection.h"

#include <zmq.hpp>

namespace tidemark::agent {

struct Connection::Zmq {
  zmq::context_t context{1};
  zmq::socket_t socket;
};

Connection::Connection(ConnectionOptions options)
    : options_(std::move(options)), zmq_(std::make_unique<Zmq>()) {}

Connection::~Connection() { Close(0); }

snapshot::Result<std::unique_ptr<Connection>> Connection::Open(const ConnectionOptions& options) {
  std::unique_ptr<Connection> c(new Connection(options));
  try {
    Zmq& z = *c->zmq_;
    z.context.set(zmq::ctxopt::thread_name_prefix, kZmqThreadNamePrefix);
    z.socket = zmq::socket_t(z.context, zmq::socket_type::dealer);
    z.socket.set(zmq::sockopt::immediate, 1);
    z.socket.set(zmq::sockopt::sndhwm, options.send_hwm);
    z.socket.set(zmq::sockopt::rcvhwm, 64);
    z.socket.set(zmq::sockopt::linger, 0);
    if (!options.curve_server_key.empty()) {
      z.socket.set(zmq::sockopt::curve_serverkey, options.curve_server_key);
      z.socket.set(zmq::sockopt::curve_publickey, options.curve_public_key);
      z.socket.set(zmq::sockopt::curve_secretkey, options.curve_secret_key);
    }
    z.socket.connect(options.endpoint);
  } catch (const zmq::error_t& e) {
    c->Close(0);
    return snapshot::Fail("cannot connect to '" + options.endpoint + "': " + e.what());
  }
  return c;
}

void* Connection::socket_handle() { return zmq_ ? zmq_->socket.handle() : nullptr; }

Connection::Sent Connection::Send(std::string&& encoded, uint64_t seq) {
  const auto now = Clock::now();
  const auto expiry = std::chrono::duration<double>(options_.unacked_expiry_s);
  while (!unacked_.empty() && now - unacked_.front().sent > expiry) {
    unacked_bytes_ -= unacked_.front().encoded.size();
    unacked_.pop_front();
  }
  if (unacked_bytes_ + encoded.size() > options_.unacked_budget_bytes) return Sent::kOverBudget;
  zmq::message_t message(encoded.data(), encoded.size());
  if (!zmq_->socket.send(message, zmq::send_flags::dontwait)) return Sent::kNotConnected;
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
  const std::string frame = snapshot::EncodeGoodbye(goodbye);
  try {
    return zmq_->socket.send(zmq::buffer(frame), zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

bool Connection::RecvFrame(std::string* frame) {
  zmq::message_t message;
  if (!zmq_->socket.recv(message, zmq::recv_flags::dontwait)) return false;
  frame->assign(static_cast<const char*>(message.data()), message.size());
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
  if (!zmq_) return;
  try {
    if (zmq_->socket) {
      zmq_->socket.set(zmq::sockopt::linger, linger_ms);
      zmq_->socket.close();
    }
    zmq_->context.close();
  } catch (const zmq::error_t&) {
  }
  zmq_.reset();
}

}  // namespace tidemark::agent
