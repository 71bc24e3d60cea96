#include "agent/reporter.h"

#include <cxxabi.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <mutex>
#include <zmq.hpp>

#include "snapshot/control.h"
#include "snapshot/wire.h"

namespace tidemark::agent {

using Clock = std::chrono::steady_clock;

struct Reporter::State {
  zmq::context_t context{1};
  zmq::socket_t socket;
  struct Unacked {
    uint64_t seq;
    size_t bytes;
    Clock::time_point sent;
  };
  std::deque<Unacked> unacked;
  std::optional<Clock::time_point> last_requested_graph;
  size_t unacked_bytes = 0;
  uint64_t seq = 0;
  mutable std::mutex mutex;  // Guards figures.
  ReporterFigures figures;
};

Reporter::Reporter(ReporterConfig config, TakeFn take)
    : state_(std::make_unique<State>()), config_(std::move(config)), take_(std::move(take)) {}

snapshot::Result<std::unique_ptr<Reporter>> Reporter::Start(ReporterConfig config, TakeFn take,
                                                            int wake_fd) {
  if (!(config.interval_s > 0)) return snapshot::Fail("interval must be positive");
  std::unique_ptr<Reporter> r(new Reporter(std::move(config), std::move(take)));
  r->wake_fd_ = wake_fd;
  try {
    State& s = *r->state_;
    s.socket = zmq::socket_t(s.context, zmq::socket_type::dealer);
    s.socket.set(zmq::sockopt::immediate, 1);
    s.socket.set(zmq::sockopt::sndhwm, r->config_.send_hwm);
    s.socket.set(zmq::sockopt::rcvhwm, 64);
    s.socket.set(zmq::sockopt::linger, r->config_.linger_ms);
    if (!r->config_.curve_server_key.empty()) {
      s.socket.set(zmq::sockopt::curve_serverkey, r->config_.curve_server_key);
      s.socket.set(zmq::sockopt::curve_publickey, r->config_.curve_public_key);
      s.socket.set(zmq::sockopt::curve_secretkey, r->config_.curve_secret_key);
    }
    s.socket.connect(r->config_.endpoint);
  } catch (const zmq::error_t& e) {
    r->state_.reset();  // Closes socket and context before the error is returned.
    return snapshot::Fail("cannot connect to '" + r->config_.endpoint + "': " + e.what());
  }
  r->thread_ = std::thread([raw = r.get()] { raw->Run(); });
  return r;
}

Reporter::~Reporter() { Stop(); }

void Reporter::Stop() {
  if (thread_.joinable()) {
    stop_.store(true);
    Trigger();
    thread_.join();
  }
  if (state_) {
    state_->socket.close();
    state_->context.close();
  }
}

void Reporter::Trigger() {
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof one);
}

ReporterFigures Reporter::figures() const {
  std::lock_guard lock(state_->mutex);
  return state_->figures;
}

void Reporter::Run() {
  State& s = *state_;
  auto record_error = [&](std::string what) {
    std::lock_guard lock(s.mutex);
    s.figures.last_error = std::move(what);
  };
  auto drop = [&](std::string why) {
    std::lock_guard lock(s.mutex);
    ++s.figures.dropped;
    s.figures.last_error = std::move(why);
  };

  auto read_acks = [&] {
    zmq::message_t frame;
    while (s.socket.recv(frame, zmq::recv_flags::dontwait)) {
      auto control = snapshot::DecodeControl(frame.to_string_view());
      if (!control) {
        record_error(control.error().message);
        continue;
      }
      if (control->graph_requested) {
        // Taken at once, or once graph_request_interval_s has passed since the last one;
        // requests meanwhile join the one already due.
        auto due = Clock::now();
        const auto floor = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(config_.graph_request_interval_s));
        if (s.last_requested_graph) due = std::max(due, *s.last_requested_graph + floor);
        std::lock_guard lock(s.mutex);
        ++s.figures.graph_requests;
        if (due > Clock::now()) ++s.figures.graph_requests_delayed;
        if (!graph_due_ || due < *graph_due_) graph_due_ = due;
        values_requested_ = values_requested_ || control->values_requested;
      }
      if (!control->ack) continue;
      // Acks arrive in order; anything older than the acked one is not coming.
      while (!s.unacked.empty() && s.unacked.front().seq <= *control->ack) {
        s.unacked_bytes -= s.unacked.front().bytes;
        const bool exact = s.unacked.front().seq == *control->ack;
        s.unacked.pop_front();
        if (exact) {
          std::lock_guard lock(s.mutex);
          ++s.figures.delivered;
        }
      }
    }
  };

  auto take_one = [&](snapshot::Kind kind, bool values = false) {
    std::optional<snapshot::Snapshot> snap = take_(kind, values);
    if (!snap) {
      drop("no snapshot taken");
      return;
    }
    const auto encode_start = Clock::now();
    ReporterFigures before = figures();
    snapshot::Header& h = snap->header;
    h.identity = config_.identity;
    h.seq = ++s.seq;
    h.agent.encode_ms = before.last_encode_ms;
    h.agent.encoded_bytes = before.last_encoded_bytes;
    h.agent.dropped = before.dropped;
    h.agent.delivered = before.delivered;
    auto encoded = snapshot::Encode(*snap, {.zstd_level = config_.zstd_level});
    const double encode_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - encode_start).count();
    {
      std::lock_guard lock(s.mutex);
      ++s.figures.taken;
      s.figures.last_pause_ms = h.agent.pause_ms;
      s.figures.last_encode_ms = encode_ms;
      if (encoded) s.figures.last_encoded_bytes = encoded->size();
    }
    snap.reset();  // The object table is no longer needed: free it before sending.
    if (!encoded) {
      drop(encoded.error().message);
      return;
    }
    const auto now = Clock::now();
    while (!s.unacked.empty() &&
           now - s.unacked.front().sent > std::chrono::duration<double>(config_.unacked_expiry_s)) {
      s.unacked_bytes -= s.unacked.front().bytes;
      s.unacked.pop_front();
    }
    if (s.unacked_bytes + encoded->size() > config_.unacked_budget_bytes) {
      drop("unacknowledged bytes over budget");
      return;
    }
    zmq::message_t message(encoded->data(), encoded->size());
    if (!s.socket.send(message, zmq::send_flags::dontwait)) {
      drop("no collector connected (or its queue is full)");
      return;
    }
    s.unacked.push_back({h.seq, encoded->size(), now});
    s.unacked_bytes += encoded->size();
    std::lock_guard lock(s.mutex);
    ++s.figures.sent;
  };

  try {
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(config_.interval_s));
    auto next = Clock::now() + interval;
    uint64_t periodic = 0;
    zmq::pollitem_t items[2] = {{static_cast<void*>(s.socket), 0, ZMQ_POLLIN, 0},
                                {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
    while (!stop_.load()) {
      const auto wake_at = graph_due_ ? std::min(next, *graph_due_) : next;
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(wake_at - Clock::now());
      zmq::poll(items, 2, std::chrono::milliseconds(std::max<int64_t>(0, wait.count())));
      bool triggered = false;
      if (items[1].revents & ZMQ_POLLIN) {
        uint64_t count;
        triggered = read(wake_fd_, &count, sizeof count) == sizeof count;
      }
      if (stop_.load()) break;
      if (items[0].revents & ZMQ_POLLIN) read_acks();
      if (graph_due_ && Clock::now() >= *graph_due_) {
        graph_due_.reset();
        take_one(snapshot::Kind::kGraph, values_requested_);
        values_requested_ = false;
        // From the end of this walk: however long a graph takes, the next waits a full interval.
        s.last_requested_graph = Clock::now();
      } else if (triggered && Clock::now() < next) {
        take_one(snapshot::Kind::kSummary);
      }
      if (Clock::now() >= next) {
        ++periodic;
        const bool graph = config_.graph_every > 0 && periodic % config_.graph_every == 0;
        take_one(graph ? snapshot::Kind::kGraph : snapshot::Kind::kSummary);
        next += interval;
        if (next < Clock::now()) next = Clock::now() + interval;  // Fell behind: no burst.
      }
    }
  } catch (abi::__forced_unwind&) {
    throw;  // Thread cancellation at interpreter exit must unwind, not be swallowed.
  } catch (const std::exception& e) {
    record_error(std::string("reporter stopped: ") + e.what());
  } catch (...) {
    record_error("reporter stopped: unknown error");
  }
}

}  // namespace tidemark::agent
