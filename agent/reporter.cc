#include "agent/reporter.h"

#include <cxxabi.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "agent/endpoints.h"
#include "agent/process_memory.h"
#include "agent/wake.h"
#include "snapshot/clock.h"
#include "snapshot/control.h"
#include "snapshot/wire.h"

namespace tidemark::agent {
namespace {

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

Reporter::Reporter(ReporterConfig config, ReporterProgress progress, TakeFn take, ReadyFn ready)
    : config_(std::move(config)),
      take_(std::move(take)),
      ready_(std::move(ready)),
      progress_(std::move(progress)) {
  connection_ = std::move(progress_.connection);
  if (connection_) progress_.figures.delivered -= connection_->acked();  // Counted anew below.
  figures_ = progress_.figures;
  figures_.connected = false;
  endpoints_ = config_.endpoints.empty()
                   ? std::vector<std::string>{config_.connection.endpoint}
                   : RendezvousOrder(config_.endpoints, snapshot::AgentName(config_.identity));
  figures_.endpoint = endpoints_[0];
}

snapshot::Result<std::unique_ptr<Connection>> Reporter::OpenCurrent() {
  ConnectionOptions options = config_.connection;
  options.endpoint = endpoints_[current_];
  on_current_since_ = Clock::now();
  refused_since_.reset();
  {
    std::lock_guard lock(figures_mutex_);
    figures_.endpoint = options.endpoint;
  }
  return Connection::Open(options);
}

snapshot::Result<std::unique_ptr<Reporter>> Reporter::Start(ReporterConfig config,
                                                            ReporterProgress progress, TakeFn take,
                                                            ReporterStart how) {
  if (!(config.interval_s > 0)) return snapshot::Fail("interval must be positive");
  std::unique_ptr<Reporter> r(
      new Reporter(std::move(config), std::move(progress), std::move(take), std::move(how.ready)));
  if (how.open_now && !r->connection_) {
    auto opened = r->OpenCurrent();
    if (!opened) return std::unexpected(opened.error());
    r->connection_ = std::move(*opened);
  }
  // The thread starts with every signal blocked, whatever the calling thread blocks: a
  // process-directed signal goes to any thread that does not block it, and a program that takes
  // its signals with sigwait, sigwaitinfo or a signalfd (blocking them everywhere else) must get
  // every one, never have one land here and kill it by its default action.
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  try {
    r->thread_ = std::thread([raw = r.get()] { raw->Run(); });
  } catch (const std::system_error& e) {
    pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    return snapshot::Fail(snapshot::Code::kIo, std::string("cannot start a thread: ") + e.what());
  }
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  return r;
}

Reporter::~Reporter() { Stop(); }

void Reporter::Join() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(wait_mutex_);
    stop_.store(true);
  }
  waiting_.notify_all();
  wake::Poke();
  if (config_.interrupt) config_.interrupt();
  thread_.join();
}

void Reporter::WriteOffResend() {
  if (resend_.empty()) return;
  std::lock_guard lock(figures_mutex_);
  figures_.dropped += resend_.size();
  resend_.clear();
  resend_bytes_ = 0;
}

ReporterProgress Reporter::Pause() {
  Join();
  WriteOffResend();
  ReporterProgress progress = progress_;
  progress.figures = figures();
  progress.figures.connected = false;
  progress.connection = std::move(connection_);
  return progress;
}

void Reporter::Stop() {
  Join();
  WriteOffResend();  // Still waiting for a collector to take them: the instance ends.
  if (!connection_) return;
  if (figures().sent > 0) SayGoodbye(false);
  connection_->Close(config_.linger_ms);
  connection_.reset();
}

void Reporter::SayGoodbye(bool moved) {
  snapshot::Goodbye goodbye;
  goodbye.identity = config_.identity;
  // Ending: one past the last snapshot's. Moving: the last one's, as numbering goes on.
  goodbye.seq = moved ? progress_.last_seq : ++progress_.last_seq;
  goodbye.timestamp_ns = snapshot::WallNowNs();
  goodbye.moved = moved;
  connection_->SendGoodbye(goodbye);
}

ReporterFigures Reporter::figures() const {
  std::lock_guard lock(figures_mutex_);
  return figures_;
}

void Reporter::RecordError(std::string what) {
  std::lock_guard lock(figures_mutex_);
  figures_.last_error = std::move(what);
}

void Reporter::Drop(std::string why, bool collector_trouble) {
  const bool first = !collector_trouble && !drop_noticed_;
  if (first) {
    drop_noticed_ = true;
    Notice("a snapshot was dropped: " + why + " (later drops are counted in status()['dropped'])");
  }
  std::lock_guard lock(figures_mutex_);
  ++figures_.dropped;
  figures_.last_error = std::move(why);
}

void Reporter::Notice(const std::string& what) {
  if (config_.notice) config_.notice(what);
}

void Reporter::CheckDelivery() {
  const auto now = Clock::now();
  const uint64_t acked = connection_->acked();
  if (acked != acked_seen_) {
    acked_seen_ = acked;
    last_delivery_ = now;
    refused_since_.reset();
    if (silence_noticed_) {
      silence_noticed_ = false;
      Notice("snapshots are acknowledged by " + endpoints_[current_] + " again");
    }
    return;
  }
  if (silence_noticed_ || now - last_delivery_ < Seconds(config_.warn_after_s)) return;
  silence_noticed_ = true;
  const ReporterFigures f = figures();
  const auto silent_s = std::chrono::duration_cast<std::chrono::seconds>(now - last_delivery_);
  Notice("no snapshot acknowledged by a collector at " + endpoints_[current_] + " for " +
         std::to_string(silent_s.count()) + " s; " + std::to_string(f.dropped) + " dropped so far" +
         (f.last_error.empty() ? "" : " (last: " + f.last_error + ")"));
}

bool Reporter::WaitForProbation() {
  std::unique_lock lock(wait_mutex_);
  waiting_.wait_until(lock, progress_.connect_at,
                      [this] { return stop_.load() || Clock::now() >= progress_.connect_at; });
  return !stop_.load();
}

void Reporter::Run() {
  pthread_setname_np(pthread_self(), kReporterThreadName);
  try {
    if (!WaitForProbation()) return;
    if (!connection_) {
      if ((ready_ && !ready_(stop_)) || stop_.load()) return;
      auto opened = OpenCurrent();
      if (!opened) {
        RecordError(opened.error().message);
        return;
      }
      connection_ = std::move(*opened);
    }
    {
      std::lock_guard lock(figures_mutex_);
      figures_.connected = true;
    }
    Loop();
  } catch (abi::__forced_unwind&) {
    throw;  // Thread cancellation at interpreter exit must unwind, not be swallowed.
  } catch (const std::exception& e) {
    RecordError(std::string("reporter stopped: ") + e.what());
  } catch (...) {
    RecordError("reporter stopped: unknown error");
  }
}

void Reporter::OnControl(const snapshot::Control& control) {
  if (!control.graph_requested) return;
  // Taken at once, or once graph_request_interval_s has passed since the last one; requests
  // meanwhile join the one already due.
  auto due = Clock::now();
  if (last_requested_graph_) {
    due = std::max(due, *last_requested_graph_ + Seconds(config_.graph_request_interval_s));
  }
  std::lock_guard lock(figures_mutex_);
  ++figures_.graph_requests;
  if (due > Clock::now()) ++figures_.graph_requests_delayed;
  if (!graph_due_ || due < *graph_due_) graph_due_ = due;
  values_requested_ = values_requested_ || control.values_requested;
}

void Reporter::Loop() {
  const auto interval = Seconds(config_.interval_s);
  last_delivery_ = Clock::now();
  if (config_.memory_check_s > 0) {
    if (!progress_.memory_source) {  // Once: after a fork the parent's schedule goes on.
      progress_.memory_source = MemorySource::Discover(config_.memory);
      progress_.next_memory_check = Clock::now();
    }
    if (!progress_.pressure) progress_.pressure.emplace(config_.memory_thresholds);
    std::lock_guard lock(figures_mutex_);
    figures_.memory_watch = progress_.memory_source->Describe();
  }
  while (!stop_.load()) {
    auto wake_at = graph_due_ ? std::min(progress_.next_due, *graph_due_) : progress_.next_due;
    if (progress_.memory_source) wake_at = std::min(wake_at, progress_.next_memory_check);
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake_at - Clock::now());
    wait = std::min(wait, connection_->Timeout());
    // The wake eventfd, checked each turn (the program may have closed it: a new one is made).
    const int wake_fd = wake::Fd();
    if (wake_fd < 0) wait = std::min(wait, std::chrono::milliseconds(100));
    if (!resend_.empty() || endpoints_.size() > 1) {
      wait = std::min(wait, std::chrono::milliseconds(100));  // Resending, or watching for stalls.
    }
    pollfd fds[2] = {{connection_->poll_fd(), connection_->poll_events(), 0}, {wake_fd, POLLIN, 0}};
    if (poll(fds, 2, static_cast<int>(std::max<long>(0, wait.count()))) < 0 && errno != EINTR) {
      throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    }
    const bool triggered = wake::TakeTrigger();
    if (stop_.load()) break;
    connection_->Pump();
    connection_->ReadControls([this](const snapshot::Control& c) { OnControl(c); },
                              [this](const std::string& e) { RecordError(e); });
    {
      std::lock_guard lock(figures_mutex_);
      figures_.delivered = progress_.figures.delivered + connection_->acked();
    }
    CheckDelivery();
    MaybeMove();
    FlushResend();
    CheckMemory();
    if (stop_.load()) break;
    if (graph_due_ && Clock::now() >= *graph_due_) {
      graph_due_.reset();
      TakeOne(snapshot::Kind::kGraph, values_requested_);
      values_requested_ = false;
      // From the end of this walk: however long a graph takes, the next waits a full interval.
      last_requested_graph_ = Clock::now();
    } else if (triggered && Clock::now() < progress_.next_due) {
      TakeOne(snapshot::Kind::kSummary, false);
    }
    if (Clock::now() >= progress_.next_due) {
      ++progress_.periodic;
      const bool graph = config_.graph_every > 0 && progress_.periodic % config_.graph_every == 0;
      const auto started = Clock::now();
      TakeOne(graph ? snapshot::Kind::kGraph : snapshot::Kind::kSummary, false);
      progress_.next_due += interval;
      if (progress_.next_due < Clock::now()) progress_.next_due = Clock::now() + interval;
      KeepWithinOverhead(started);
    }
  }
}

void Reporter::KeepWithinOverhead(Clock::time_point walk_started) {
  if (!(config_.max_overhead > 0)) return;
  double cost_s;
  {
    std::lock_guard lock(figures_mutex_);
    // The CPU it cost, or the GIL it held if longer (a loaded machine keeps a walking thread
    // off the CPU with the GIL held): both stay within the share.
    cost_s =
        std::max(figures_.last_thread_cpu_ms + figures_.last_child_cpu_ms, figures_.last_pause_ms) /
        1e3;
  }
  const auto earliest = walk_started + Seconds(cost_s / config_.max_overhead);
  if (earliest <= progress_.next_due) return;
  progress_.next_due = earliest;
  std::lock_guard lock(figures_mutex_);
  ++figures_.stretched;
}

void Reporter::CheckMemory() {
  if (!progress_.memory_source || Clock::now() < progress_.next_memory_check) return;
  progress_.next_memory_check = Clock::now() + Seconds(config_.memory_check_s);
  const std::optional<MemoryReading> reading = progress_.memory_source->Read();
  {
    std::lock_guard lock(figures_mutex_);
    figures_.memory = reading;
  }
  if (!reading) return;
  const uint32_t crossed = progress_.pressure->Cross(reading->share());
  if (crossed == 0) return;
  // A graph walk costs ~64 bytes per object of columns (and a snapshot child's copied pages):
  // near the limit it could be what the OOM killer acts on. Then a summary says what there is.
  const uint64_t left = reading->limit - std::min(reading->current, reading->limit);
  const uint64_t graph_cost = last_objects_ * 64;
  const bool graph = 2 * graph_cost <= left;
  {
    std::lock_guard lock(figures_mutex_);
    ++(graph ? figures_.memory_graphs : figures_.memory_summaries);
    figures_.memory_crossed_pct = crossed;
  }
  const auto mib = [](uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; };
  Notice("memory at " + std::to_string(static_cast<int>(reading->share() * 100)) + "% of its " +
         reading->source + " limit (" + mib(reading->current) + " of " + mib(reading->limit) +
         "), past " + std::to_string(crossed) + "%: " +
         (graph ? "a graph snapshot is sent now"
                : "a summary is sent now (a graph walk would need ~" + mib(graph_cost) +
                      " of the " + mib(left) + " left)"));
  TakeOne(graph ? snapshot::Kind::kGraph : snapshot::Kind::kSummary, false, crossed);
}

void Reporter::TakeOne(snapshot::Kind kind, bool values, uint32_t crossed_pct) {
  const double cpu_before = ThreadCpuMs();
  snapshot::Result<Taken> taken = take_(kind, values, stop_);
  if (stop_.load()) return;  // Abandoned for a pause or stop: not a drop.
  if (!taken) {
    Drop("no snapshot taken: " + taken.error().message);
    return;
  }
  last_objects_ = taken->snapshot.header.objects;
  const auto encode_start = Clock::now();
  const ReporterFigures before = figures();
  snapshot::Header& h = taken->snapshot.header;
  h.identity = config_.identity;
  h.seq = ++progress_.last_seq;
  h.agent.encode_ms = before.last_encode_ms;
  h.agent.encoded_bytes = before.last_encoded_bytes;
  h.agent.dropped = before.dropped;
  h.agent.delivered = before.delivered;
  if (progress_.memory_source) {
    if (const auto m = progress_.memory_source->Read()) {
      h.memory = {.current = m->current,
                  .limit = m->limit,
                  .source = m->source,
                  .crossed_pct = crossed_pct};
    }
  }
  auto encoded =
      taken->encoded.empty()
          ? snapshot::Encode(taken->snapshot, {.zstd_level = config_.zstd_level, .cancel = &stop_})
          : snapshot::ReplaceHeader(taken->encoded, h);
  if (stop_.load()) return;
  const double encode_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - encode_start).count();
  {
    std::lock_guard lock(figures_mutex_);
    ++figures_.taken;
    figures_.last_pause_ms = h.agent.pause_ms;
    figures_.total_pause_ms += h.agent.pause_ms;
    figures_.last_encode_ms = encode_ms;
    if (encoded) figures_.last_encoded_bytes = encoded->size();
    figures_.last_thread_cpu_ms = ThreadCpuMs() - cpu_before;
    figures_.last_child_cpu_ms = taken->child_cpu_ms;
    figures_.total_cpu_ms += figures_.last_thread_cpu_ms + figures_.last_child_cpu_ms;
  }
  const uint64_t seq = h.seq;
  *taken = Taken{};  // The object table is no longer needed: free it before sending.
  if (!encoded) {
    Drop(encoded.error().message);
    return;
  }
  SendOrQueue(std::move(*encoded), seq);
}

void Reporter::SendOrQueue(std::string encoded, uint64_t seq) {
  if (!resend_.empty()) {  // Behind what waits to go again: the collector sees them in order.
    resend_bytes_ += encoded.size();
    resend_.emplace_back(seq, std::move(encoded));
    while (resend_bytes_ > config_.connection.unacked_budget_bytes && resend_.size() > 1) {
      resend_bytes_ -= resend_.front().second.size();
      resend_.pop_front();
      Drop("unacknowledged bytes over budget while moving to another collector", true);
    }
    std::lock_guard lock(figures_mutex_);
    ++figures_.sent;
    return;
  }
  switch (connection_->Send(std::move(encoded), seq)) {
    case Connection::Sent::kOverBudget:
      Drop("unacknowledged bytes over budget", true);
      return;
    case Connection::Sent::kNotConnected:
      if (!refused_since_) refused_since_ = Clock::now();
      if (endpoints_.size() > 1) {  // Kept for the next collector: MaybeMove will move.
        resend_bytes_ += encoded.size();
        resend_.emplace_back(seq, std::move(encoded));
        std::lock_guard lock(figures_mutex_);
        ++figures_.sent;
        return;
      }
      Drop("no collector connected (or its queue is full)", true);
      return;
    case Connection::Sent::kOk:
      refused_since_.reset();
      break;
  }
  std::lock_guard lock(figures_mutex_);
  ++figures_.sent;
}

bool Reporter::MaybeMove() {
  if (endpoints_.size() < 2) return false;
  const auto now = Clock::now();
  const auto failover = Seconds(config_.failover_s);
  const auto oldest = connection_->oldest_unacked();
  const bool stalled = (oldest && now - *oldest > failover) ||
                       (!resend_.empty() && now - on_current_since_ > failover) ||
                       (refused_since_ && now - *refused_since_ > failover);
  const bool home_again = current_ != 0 && now - on_current_since_ > Seconds(config_.home_retry_s);
  if (!stalled && !home_again) return false;
  const std::string from = endpoints_[current_];
  // What the old collector did not acknowledge goes first, then what already waited.
  auto unacked = connection_->TakeUnacked();
  for (auto it = unacked.rbegin(); it != unacked.rend(); ++it) {
    resend_bytes_ += it->second.size();
    resend_.emplace_front(it->first, std::move(it->second));
  }
  progress_.figures.delivered += connection_->acked();
  // The collector left behind forgets this agent without calling it silent, and leaves its
  // alerts to the next one (best effort: a collector that stopped answering may be gone).
  SayGoodbye(true);
  connection_->Close(stalled ? 0 : config_.linger_ms);
  connection_.reset();
  acked_seen_ = 0;
  current_ = stalled ? (current_ + 1) % endpoints_.size() : 0;
  for (size_t tries = 0; !connection_ && tries < endpoints_.size(); ++tries) {
    auto opened = OpenCurrent();
    if (opened) {
      connection_ = std::move(*opened);
    } else {
      RecordError(opened.error().message);
      current_ = (current_ + 1) % endpoints_.size();
    }
  }
  if (!connection_) throw std::runtime_error("no collector endpoint opens");
  {
    std::lock_guard lock(figures_mutex_);
    ++figures_.failovers;
  }
  Notice((stalled ? "nothing acknowledged by " + from + " for " +
                        std::to_string(static_cast<int>(config_.failover_s)) + " s: moving to "
                  : "trying home again: moving from " + from + " to ") +
         endpoints_[current_] + " (" + std::to_string(resend_.size()) +
         " unacknowledged snapshots to send again)");
  return true;
}

void Reporter::FlushResend() {
  while (!resend_.empty()) {
    auto& [seq, encoded] = resend_.front();
    const size_t bytes = encoded.size();
    const Connection::Sent sent = connection_->Send(std::move(encoded), seq);
    if (sent == Connection::Sent::kNotConnected) return;  // Not connected yet: next turn.
    resend_bytes_ -= bytes;
    resend_.pop_front();
    std::lock_guard lock(figures_mutex_);
    if (sent == Connection::Sent::kOk) {
      ++figures_.resent;
    } else {
      ++figures_.dropped;
    }
  }
}

}  // namespace tidemark::agent
