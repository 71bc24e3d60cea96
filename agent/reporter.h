// Reporter: the agent's native background thread. It takes a snapshot every interval (or when
// triggered), encodes and compresses it without the GIL, and pushes it to the collector over
// a ZeroMQ DEALER socket, reading acknowledgements on the same connection.
//
// It never blocks its host: the socket only queues to a completed connection
// (ZMQ_IMMEDIATE), its high-water mark is small, bytes sent but not yet acknowledged are
// capped by a budget, and sends never wait: whatever cannot go now is dropped and counted.
// While no collector listens, memory stays bounded by the budget.
//
// No Python here: the thread asks `take` for a snapshot, and `take` acquires the GIL itself.
//
// Thread-safety: Start/Stop from one controlling thread; Trigger() is async-signal-safe;
// figures() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "snapshot/result.h"
#include "snapshot/snapshot.h"

namespace tidemark::agent {

struct ReporterConfig {
  std::string endpoint;                 // e.g. "tcp://127.0.0.1:7878"
  snapshot::Identity identity;          // pid and start time are the caller's.
  double interval_s = 60;               // Fractions allowed.
  int graph_every = 0;                  // Every Nth snapshot is a graph; 0 = summaries only.
  double graph_request_interval_s = 5;  // Least time between graphs a collector requests.
  size_t unacked_budget_bytes = 64u << 20;
  double unacked_expiry_s = 120;  // An ack not seen by then never comes: free its budget.
  int send_hwm = 4;
  int linger_ms = 250;  // Bounded wait for queued bytes when stopping.
  int zstd_level = 1;
  // CURVE (optional): the server's public key and this agent's key pair, Z85-encoded.
  std::string curve_server_key, curve_public_key, curve_secret_key;
};

struct ReporterFigures {
  uint64_t taken = 0;
  uint64_t sent = 0;
  uint64_t delivered = 0;  // Acknowledged by a collector.
  uint64_t dropped = 0;
  uint64_t graph_requests = 0;          // Graph requests from a collector...
  uint64_t graph_requests_delayed = 0;  // ...of which came too soon and waited.
  uint64_t last_encoded_bytes = 0;
  double last_pause_ms = 0;
  double last_encode_ms = 0;
  std::string last_error;
};

// Called on the reporter thread. Returns the snapshot, or nullopt if none could be taken
// (interpreter finalizing, a collection running, a walk abandoned): counted as dropped.
// `values`: a collector asked for a graph with short values, whatever the agent's setting.
using TakeFn = std::function<std::optional<snapshot::Snapshot>(snapshot::Kind, bool values)>;

class Reporter {
 public:
  // Creates the socket and starts the thread. Errors (bad endpoint, bad keys) are values.
  // `wake_fd` is an eventfd owned by the caller that outlives the reporter: a write to it
  // (Trigger(), or a signal handler) takes a snapshot now.
  static snapshot::Result<std::unique_ptr<Reporter>> Start(ReporterConfig config, TakeFn take,
                                                           int wake_fd);

  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;
  ~Reporter();  // Stops.

  // Stops and joins the thread, closes the socket (bounded linger) and the ZeroMQ context,
  // so that no thread of ours remains. REQUIRES: the caller does not hold the GIL.
  void Stop();

  // Wakes the thread to take a snapshot now. Async-signal-safe.
  void Trigger();

  ReporterFigures figures() const;

 private:
  Reporter(ReporterConfig config, TakeFn take);
  void Run();
  struct State;
  std::unique_ptr<State> state_;
  ReporterConfig config_;
  TakeFn take_;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  // Reporter thread only. A collector's graph request waits until
  // ReporterConfig::graph_request_interval_s after the previous requested graph was done.
  std::optional<std::chrono::steady_clock::time_point> graph_due_;
  bool values_requested_ = false;
  std::thread thread_;
};

}  // namespace tidemark::agent
