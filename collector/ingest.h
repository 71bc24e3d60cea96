// The receiving side of tidemarkd: a ZeroMQ ROUTER socket on its own thread.
//
// Agents connect with DEALER sockets. The socket's thread only moves bytes: each message (a
// snapshot, or an agent's goodbye when it stops) is handed to a pool of validation threads,
// which validate it (collector/validate.h) and append it to the store; the socket's thread
// acknowledges it on the same connection once the store reports it durable. While the pool
// holds kMaxQueuedBytes or kMaxQueuedMessages, the socket is not read: libzmq's high-water
// marks then push back on the agents, and the daemon's memory stays bounded. Invalid messages
// are counted by reason and logged at most once per reason per drop_log_interval, with the
// number suppressed in between, so a flood of garbage costs neither log volume nor the good
// agents' throughput beyond its own validation. A message costs at most a bounded multiple of
// its own size to decode (snapshot::DecodeLimits::max_expansion).
//
// libzmq buffers a whole message before any check of ours, so the socket carries
// ZMQ_MAXMSGSIZE (twice limits.max_message_bytes: a message over the limit but under that is
// counted as too_large; a larger one makes libzmq drop the connection uncounted) and a
// receive high-water mark.
//
// With CURVE on, the thread also answers ZAP requests: a client key not on the allowlist is
// refused during the handshake and counted as "unauthorized".
//
// Thread-safety: Start/Stop from one thread; UpdateSettings from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "collector/metrics.h"
#include "collector/pipeline.h"
#include "collector/validate.h"
#include "snapshot/control.h"
#include "snapshot/result.h"
#include "store/store.h"

namespace tidemark::collector {

// What may change while running (SIGHUP).
struct IngestSettings {
  Limits limits;
  int64_t drop_log_interval_ns = 10'000'000'000;
  std::vector<std::string> allowed_clients;  // Z85 public keys.
};

struct IngestOptions {
  std::string endpoint;
  int receive_hwm = 1000;
  int validation_threads = 0;  // 0: one per CPU.
  bool curve = false;
  std::string curve_secret_key;  // Z85.
  IngestSettings settings;
};

class Ingest {
 public:
  static constexpr uint64_t kMaxQueuedBytes = uint64_t{256} << 20;
  static constexpr int kMaxQueuedMessages = 4096;
  // On Stop(), messages still queued are stored for this long, then left unacknowledged.
  static constexpr int64_t kStopDrainNs = int64_t{5} * 1'000'000'000;

  // `pipeline` (may be null) receives every stored summary and graph.
  Ingest(store::Store& store, Metrics& metrics, Pipeline* pipeline = nullptr);
  ~Ingest();  // Stop().
  Ingest(const Ingest&) = delete;
  Ingest& operator=(const Ingest&) = delete;

  // Binds and starts the thread. Returns the bound endpoint (the port when it was 0).
  snapshot::Result<std::string> Start(const IngestOptions& options);
  // Stops receiving, waits for what was appended to become durable, sends those acks, joins.
  void Stop();
  void UpdateSettings(const IngestSettings& settings);

  // Queues a graph request to an agent (by snapshot::AgentName) on the connection its last
  // snapshot came in on. False if no snapshot came from it yet. Thread-safe.
  bool RequestGraph(const std::string& agent_key, bool values);

  // The store's on_durable callback: (from, to] durable (ok) or lost.
  void OnDurable(uint64_t from, uint64_t to, bool ok);

 private:
  struct State;
  void Run();
  void Wake();
  // On a validation thread: validate, store, queue the ack.
  void Process(std::string peer, const std::string& peer_address, std::string_view message,
               const Limits& limits);
  // A goodbye (snapshot::Goodbye): recorded in the store, the agent forgotten by the pipeline.
  void ProcessGoodbye(std::string_view message, const std::string& peer_address);
  void Drop(DropReason reason, const std::string& detail);
  void SendAcks();

  store::Store& store_;
  Metrics& metrics_;
  Pipeline* pipeline_;

  // Agent key -> ZeroMQ routing id of its connection, and graph requests waiting to be sent.
  std::mutex peers_mutex_;
  std::unordered_map<std::string, std::string> peers_;
  std::vector<std::pair<std::string, snapshot::Control>> controls_;
  std::unique_ptr<State> state_;
  std::thread thread_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> drain_until_ns_{0};  // Steady clock; set before stopping_.

  std::mutex settings_mutex_;
  IngestSettings settings_;
  // Guards durable_events_ and the pending acks. Held across store_.Append() and the insertion
  // of its ticket, so that the durable event for a ticket is always queued after the ticket.
  std::mutex ack_mutex_;
  struct DurableEvent {
    uint64_t from, to;
    bool ok;
  };
  std::vector<DurableEvent> durable_events_;
};

}  // namespace tidemark::collector
