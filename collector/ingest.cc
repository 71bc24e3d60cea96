#include "collector/ingest.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <climits>
#include <map>
#include <zmq.hpp>

#include "snapshot/clock.h"
#include "snapshot/control.h"

namespace tidemark::collector {
namespace {

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr int kBatch = 256;  // Messages taken per wake-up before acks are looked at again.

std::string PeerAddress(zmq::message_t& message) {
  const char* address = zmq_msg_gets(message.handle(), "Peer-Address");
  return address ? address : "unknown peer";
}

}  // namespace

struct Ingest::State {
  zmq::context_t context{1};
  zmq::socket_t router;
  zmq::socket_t zap;
  bool curve = false;
  std::unique_ptr<boost::asio::thread_pool> pool;
  std::atomic<uint64_t> queued_bytes{0};
  std::atomic<int> queued_messages{0};

  struct PendingAck {
    std::string peer;
    uint64_t seq;
  };
  // By ticket (a resent snapshot waits on its first copy's); guarded by ack_mutex_.
  std::multimap<uint64_t, PendingAck> pending;

  std::set<std::string> allowed;  // Binary 32-byte public keys; the socket thread's.
  IngestSettings settings;        // The socket thread's copy.

  std::mutex log_mutex;
  struct ReasonLog {
    int64_t last_ns = INT64_MIN / 2;
    uint64_t suppressed = 0;
  };
  std::array<ReasonLog, static_cast<size_t>(DropReason::kCount)> logs;
  int64_t drop_log_interval_ns = 0;
};

Ingest::Ingest(store::Store& store, Metrics& metrics, Pipeline* pipeline)
    : store_(store), metrics_(metrics), pipeline_(pipeline) {}

bool Ingest::RequestGraph(const std::string& agent_key, bool values) {
  {
    std::lock_guard lock(peers_mutex_);
    auto peer = peers_.find(agent_key);
    if (peer == peers_.end()) return false;
    snapshot::Control control;
    control.graph_requested = true;
    control.values_requested = values;
    controls_.emplace_back(peer->second, control);
  }
  Wake();
  return true;
}

Ingest::~Ingest() {
  Stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

snapshot::Result<std::string> Ingest::Start(const IngestOptions& options) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return snapshot::Fail("eventfd failed");
  settings_ = options.settings;
  state_ = std::make_unique<State>();
  State& s = *state_;
  s.drop_log_interval_ns = options.settings.drop_log_interval_ns;
  const unsigned threads = options.validation_threads > 0
                               ? static_cast<unsigned>(options.validation_threads)
                               : std::max(1u, std::thread::hardware_concurrency());
  s.pool = std::make_unique<boost::asio::thread_pool>(threads);
  try {
    if (options.curve) {
      // libzmq asks the ZAP handler of the socket's own context, at this fixed address.
      s.zap = zmq::socket_t(s.context, zmq::socket_type::rep);
      s.zap.set(zmq::sockopt::linger, 0);
      s.zap.bind("inproc://zeromq.zap.01");
      s.curve = true;
    }
    s.router = zmq::socket_t(s.context, zmq::socket_type::router);
    // Up to twice the limit is read and counted as too_large; past that libzmq drops the
    // connection mid-message, before this thread could count it, bounding the memory it takes.
    s.router.set(
        zmq::sockopt::maxmsgsize,
        static_cast<int64_t>(
            std::min<uint64_t>(options.settings.limits.max_message_bytes, uint64_t{1} << 61) * 2));
    s.router.set(zmq::sockopt::rcvhwm, options.receive_hwm);
    s.router.set(zmq::sockopt::sndhwm, 10'000);
    s.router.set(zmq::sockopt::linger, 1000);
    if (options.curve) {
      s.router.set(zmq::sockopt::curve_server, true);
      s.router.set(zmq::sockopt::curve_secretkey, options.curve_secret_key);
      s.router.set(zmq::sockopt::zap_domain, "tidemark");
    }
    s.router.bind(options.endpoint);
    std::string bound = s.router.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { Run(); });
    return bound;
  } catch (const zmq::error_t& e) {
    state_.reset();
    return snapshot::Fail("cannot listen on " + options.endpoint + ": " + e.what());
  }
}

void Ingest::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void Ingest::Stop() {
  if (!thread_.joinable()) return;
  drain_until_ns_ = SteadyNowNs() + kStopDrainNs;
  stopping_ = true;
  Wake();
  thread_.join();
  state_.reset();
}

void Ingest::UpdateSettings(const IngestSettings& settings) {
  {
    std::lock_guard lock(settings_mutex_);
    settings_ = settings;
  }
  Wake();
}

void Ingest::OnDurable(uint64_t from, uint64_t to, bool ok) {
  {
    std::lock_guard lock(ack_mutex_);
    durable_events_.push_back({from, to, ok});
  }
  Wake();
}

void Ingest::Drop(DropReason reason, const std::string& detail) {
  metrics_.Dropped(reason);
  State& s = *state_;
  std::lock_guard lock(s.log_mutex);
  State::ReasonLog& log = s.logs[static_cast<size_t>(reason)];
  const int64_t now = SteadyNowNs();
  if (now - log.last_ns < s.drop_log_interval_ns) {
    ++log.suppressed;
    return;
  }
  if (log.suppressed > 0) {
    spdlog::warn("dropped a message ({}): {} ({} more dropped for this reason since the last line)",
                 DropReasonName(reason), detail, log.suppressed);
  } else {
    spdlog::warn("dropped a message ({}): {}", DropReasonName(reason), detail);
  }
  log.last_ns = now;
  log.suppressed = 0;
}

void Ingest::ProcessGoodbye(std::string_view message, const std::string& peer_address) {
  auto goodbye = snapshot::DecodeGoodbye(message);
  if (!goodbye) {
    Drop(DropReason::kHeader, goodbye.error().message + " (from " + peer_address + ")");
    return;
  }
  const snapshot::Identity& who = goodbye->identity;
  if (who.host.empty() || who.pid <= 0 || who.start_time_ns <= 0) {
    Drop(DropReason::kIdentity,
         "goodbye without host, pid or start time (from " + peer_address + ")");
    return;
  }
  auto stored =
      store_.AppendGoodbye(who, goodbye->seq, goodbye->timestamp_ns, snapshot::WallNowNs());
  if (!stored) {
    Drop(DropReason::kStore, stored.error().message);
    return;
  }
  if (!*stored) return;  // Never heard of: nothing to forget.
  const std::string key = snapshot::AgentName(who);
  {
    std::lock_guard lock(peers_mutex_);
    peers_.erase(key);
  }
  if (pipeline_) pipeline_->OnGoodbye(key, goodbye->moved);
}

void Ingest::Process(std::string peer, const std::string& peer_address, std::string_view message,
                     const Limits& limits) {
  if (snapshot::IsGoodbye(message)) {
    ProcessGoodbye(message, peer_address);
    return;
  }
  const int64_t now = snapshot::WallNowNs();
  Limits checked = limits;
  checked.now_ns = now;
  auto valid = Validate(message, checked);
  if (!valid) {
    Drop(valid.error().reason, valid.error().detail + " (from " + peer_address + ")");
    return;
  }
  metrics_.Received(valid->header, message.size(), now);
  bool duplicate = false, durable = false;
  {
    std::lock_guard lock(ack_mutex_);
    auto ticket = store_.Append(message, valid->header, valid->types, now, &duplicate);
    if (!ticket) {
      Drop(DropReason::kStore, ticket.error().message);
      return;
    }
    // A resent snapshot stored already is acknowledged once its first copy is durable: now,
    // or with that copy's durable event (queued after this, as the lock guarantees).
    durable = duplicate && *ticket <= store_.durable_ticket();
    if (!durable) state_->pending.emplace(*ticket, State::PendingAck{peer, valid->header.seq});
  }
  if (duplicate) {
    metrics_.Duplicate();
    if (durable) {
      snapshot::Control ack;
      ack.ack = valid->header.seq;
      {
        std::lock_guard lock(peers_mutex_);
        controls_.emplace_back(peer, ack);
      }
      Wake();
    }
    return;  // Stored and folded once.
  }
  if (!pipeline_) return;
  const std::string key = snapshot::AgentName(valid->header.identity);
  {
    std::lock_guard lock(peers_mutex_);
    // Bounded: forgetting every connection costs only until each agent's next snapshot.
    if (peers_.size() >= 100'000 && !peers_.count(key)) peers_.clear();
    peers_[key] = std::move(peer);
  }
  if (valid->header.kind == snapshot::Kind::kSummary) {
    pipeline_->OnSummary(key, valid->header, valid->types, now);
  } else {
    pipeline_->OnGraph(key, valid->header, message, now);
  }
}

void Ingest::SendAcks() {
  State& s = *state_;
  std::vector<State::PendingAck> acks;
  size_t lost = 0;
  {
    std::lock_guard lock(ack_mutex_);
    for (const DurableEvent& e : durable_events_) {
      auto end = s.pending.upper_bound(e.to);
      for (auto it = s.pending.begin(); it != end; ++it) {
        if (e.ok) {
          acks.push_back(std::move(it->second));
        } else {
          ++lost;
        }
      }
      s.pending.erase(s.pending.begin(), end);
    }
    durable_events_.clear();
  }
  for (size_t i = 0; i < lost; ++i) {
    Drop(DropReason::kStore, "a sync of the store failed: a snapshot was not acknowledged");
  }
  std::vector<std::pair<std::string, snapshot::Control>> controls;
  {
    std::lock_guard lock(peers_mutex_);
    controls.swap(controls_);
  }
  for (const auto& [peer, control] : controls) {
    const std::string frame = snapshot::EncodeControl(control);
    if (s.router.send(zmq::buffer(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      (void)s.router.send(zmq::buffer(frame), zmq::send_flags::dontwait);
    }
  }
  for (const State::PendingAck& ack : acks) {
    snapshot::Control control;
    control.ack = ack.seq;
    const std::string frame = snapshot::EncodeControl(control);
    // An agent gone meanwhile, or not reading, loses its ack: never wait for it.
    if (s.router.send(zmq::buffer(ack.peer),
                      zmq::send_flags::sndmore | zmq::send_flags::dontwait) &&
        s.router.send(zmq::buffer(frame), zmq::send_flags::dontwait)) {
      metrics_.Acknowledged();
    }
  }
}

void Ingest::Run() {
  State& s = *state_;

  auto take_settings = [&] {
    std::lock_guard lock(settings_mutex_);
    s.settings = settings_;
    {
      std::lock_guard log_lock(s.log_mutex);
      s.drop_log_interval_ns = s.settings.drop_log_interval_ns;
    }
    s.allowed.clear();
    for (const std::string& key : s.settings.allowed_clients) {
      std::string binary(32, '\0');
      if (zmq_z85_decode(reinterpret_cast<uint8_t*>(binary.data()), key.c_str())) {
        s.allowed.insert(binary);
      }
    }
  };

  auto pool_full = [&] {
    return s.queued_bytes.load() >= kMaxQueuedBytes ||
           s.queued_messages.load() >= kMaxQueuedMessages;
  };

  auto receive = [&] {
    for (int i = 0; i < kBatch && !pool_full(); ++i) {
      zmq::message_t peer;
      if (!s.router.recv(peer, zmq::recv_flags::dontwait)) return;
      auto body = std::make_shared<zmq::message_t>();
      if (!peer.more() || !s.router.recv(*body, zmq::recv_flags::none)) continue;
      if (body->more()) {
        zmq::message_t rest;
        while (s.router.recv(rest, zmq::recv_flags::none) && rest.more()) {
        }
        Drop(DropReason::kProtocol, "a message of more than one frame from " + PeerAddress(*body));
        continue;
      }
      if (s.curve) {  // The key it was let in with may have left the list since (a reload).
        const char* user = zmq_msg_gets(body->handle(), "User-Id");
        std::string key(32, '\0');
        if (user == nullptr || std::strlen(user) != 40 ||
            !zmq_z85_decode(reinterpret_cast<uint8_t*>(key.data()), user) ||
            !s.allowed.count(key)) {
          Drop(DropReason::kUnauthorized,
               std::string("CURVE client key ") + (user ? user : "(none)") + " from " +
                   PeerAddress(*body) + " is no longer in curve.allowed_clients");
          continue;
        }
      }
      const size_t size = body->size();
      s.queued_bytes += size;
      s.queued_messages += 1;
      boost::asio::post(*s.pool, [this, &s, peer = peer.to_string(), from = PeerAddress(*body),
                                  body, size, limits = s.settings.limits]() mutable {
        try {
          // Stopping: what is queued is stored for a while, then left unacknowledged (its
          // agents count it as not delivered), so that SIGTERM always ends the daemon.
          if (!stopping_ || SteadyNowNs() < drain_until_ns_) {
            Process(std::move(peer), from, body->to_string_view(), limits);
          }
        } catch (const std::exception& e) {
          Drop(DropReason::kStore, std::string("unexpected: ") + e.what());
        }
        body.reset();
        s.queued_bytes -= size;
        s.queued_messages -= 1;
        Wake();  // Its ack may be due, and the socket may be readable again.
      });
    }
  };

  auto answer_zap = [&] {
    std::vector<zmq::message_t> frames;
    while (true) {
      zmq::message_t frame;
      if (!s.zap.recv(frame, zmq::recv_flags::dontwait)) break;
      const bool more = frame.more();
      frames.push_back(std::move(frame));
      if (!more) break;
    }
    if (frames.size() < 6) return;
    const bool curve =
        frames[5].to_string_view() == "CURVE" && frames.size() >= 7 && frames[6].size() == 32;
    const std::string key = curve ? frames[6].to_string() : std::string();
    const bool allowed = curve && s.allowed.count(key);
    char z85[41] = {};
    if (curve) zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(key.data()), 32);
    if (!allowed) {
      Drop(DropReason::kUnauthorized, std::string("CURVE client key ") + (curve ? z85 : "(none)") +
                                          " from " + frames[3].to_string() +
                                          " is not in curve.allowed_clients");
    }
    const std::string reply[] = {"1.0",
                                 frames[1].to_string(),
                                 allowed ? "200" : "400",
                                 allowed ? "OK" : "client key not allowed",
                                 allowed ? std::string(z85) : "",
                                 ""};
    for (size_t i = 0; i < 6; ++i) {
      s.zap.send(zmq::buffer(reply[i]), i < 5 ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  };

  take_settings();
  std::vector<zmq::pollitem_t> items = {{s.router.handle(), 0, ZMQ_POLLIN, 0},
                                        {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
  if (s.curve) items.push_back({s.zap.handle(), 0, ZMQ_POLLIN, 0});
  // Nothing may escape this thread: an exception here would terminate the daemon.
  try {
    while (!stopping_) {
      // A full pool is not read from: the eventfd wakes this loop when a worker finishes.
      items[0].events = pool_full() ? 0 : ZMQ_POLLIN;
      try {
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(-1));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        throw;
      }
      if (items[1].revents & ZMQ_POLLIN) {
        uint64_t count;
        [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
        take_settings();
      }
      if (s.curve && (items[2].revents & ZMQ_POLLIN)) answer_zap();
      if (items[0].revents & ZMQ_POLLIN) receive();
      SendAcks();
    }
  } catch (const std::exception& e) {
    spdlog::critical("ingest thread stopped receiving: {}", e.what());
  }
  // What was taken in becomes durable and is acknowledged before the socket closes.
  try {
    s.pool->join();
    store_.Flush();
    SendAcks();
  } catch (const std::exception& e) {
    spdlog::error("while stopping: {}", e.what());
  }
  s.router.close();
  if (s.curve) s.zap.close();
}

}  // namespace tidemark::collector
