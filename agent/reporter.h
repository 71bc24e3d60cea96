// Reporter: the agent's native background thread. It takes a snapshot every interval (or when
// triggered, or when a collector asks for a graph), encodes and compresses it without the GIL,
// and pushes it to the collector over its Connection, reading acknowledgements on the same
// connection. No Python here: the thread asks `take` for a snapshot, and `take` acquires the
// GIL itself.
//
// A run may begin with a probation (ReporterProgress::connect_at in the future): the thread
// then only waits, with no descriptor and no ZeroMQ context, so that a child that does not
// live that long (a preexec_fn child, a short subprocess) or that closes every descriptor
// while daemonizing never meets the agent's. A run ends with Pause() (around fork(): quick,
// nothing in flight is waited for, progress handed back so the next run continues the
// schedule and the sequence numbers) or Stop() (the instance ends: a goodbye is sent so the
// collector expects nothing more, then a bounded linger).
//
// Thread-safety: Start/Pause/Stop from one controlling thread; figures() from any thread;
// the wake-ups (agent/wake.h) are async-signal-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/connection.h"
#include "agent/memory_limit.h"
#include "snapshot/result.h"
#include "snapshot/snapshot.h"

namespace tidemark::agent {

using Clock = std::chrono::steady_clock;

// The reporter thread's name (ps -L, /proc/self/task/*/comm).
inline constexpr char kReporterThreadName[] = "tidemark";

struct ReporterConfig {
  ConnectionOptions connection;
  // Several collectors (agent/endpoints.h), in any order: the reporter orders them by
  // rendezvous hashing of `identity`, its home first. Empty: connection.endpoint alone. The
  // agent moves to the next when what it sent waited failover_s unacknowledged (or no
  // collector took a snapshot for that long), sending what was unacknowledged again, and tries
  // its home again after home_retry_s elsewhere.
  std::vector<std::string> endpoints;
  double failover_s = 30;
  double home_retry_s = 120;
  snapshot::Identity identity;          // pid and start time are the caller's.
  double interval_s = 60;               // Fractions allowed.
  int graph_every = 0;                  // Every Nth snapshot is a graph; 0 = summaries only.
  double graph_request_interval_s = 5;  // Least time between graphs a collector requests.
  // The largest share of wall time the agent's periodic snapshots may cost in CPU — the
  // reporter thread's (the walk or the fork, the encode, the send) and a snapshot child's — or
  // hold the GIL. After a snapshot that cost c seconds (the larger of the two), the next waits
  // at least c / max_overhead (the interval is stretched, counted in
  // ReporterFigures::stretched). 0: no bound.
  double max_overhead = 0.01;
  int linger_ms = 250;  // Bounded wait for the goodbye and queued bytes on Stop.
  int zstd_level = 1;
  // Trouble worth a person's attention, said once per episode rather than per snapshot: no
  // snapshot acknowledged for warn_after_s (and again once delivery resumes), the first
  // snapshot dropped for another reason than a missing collector. Called on the reporter
  // thread; optional (the agent hands it to the "tidemark" logger, agent/notice.h).
  double warn_after_s = 300;
  std::function<void(const std::string&)> notice;
  // The memory limit (agent/memory_limit.h), read every memory_check_s (0: not watched; the
  // cgroup is found when the thread starts). Crossing a threshold takes a graph snapshot
  // (values off) at once, or a summary when the graph walk would need more than half the
  // memory left under the limit. Every snapshot's header carries the latest reading.
  MemoryLimitOptions memory;
  std::vector<uint32_t> memory_thresholds = {80, 90};
  double memory_check_s = 1;
  // Called when a run ends, once the take's cancel flag is set: wakes a take waiting off the
  // GIL for something else than the GIL (a snapshot child, agent/isolation.h). Optional.
  std::function<void()> interrupt;
};

struct ReporterFigures {
  uint64_t taken = 0;
  uint64_t sent = 0;
  uint64_t delivered = 0;  // Acknowledged by a collector.
  uint64_t dropped = 0;
  uint64_t graph_requests = 0;          // Graph requests from a collector...
  uint64_t graph_requests_delayed = 0;  // ...of which came too soon and waited.
  uint64_t stretched = 0;               // Intervals lengthened to keep within max_overhead.
  uint64_t last_encoded_bytes = 0;
  double last_pause_ms = 0;
  double total_pause_ms = 0;  // Every walk's pause, summed: the GIL time the agent took.
  // CPU time of the last periodic or requested snapshot: the reporter thread's and a child's;
  // and all of it, summed (what max_overhead bounds).
  double last_thread_cpu_ms = 0, last_child_cpu_ms = 0, total_cpu_ms = 0;
  double last_encode_ms = 0;
  bool connected = false;  // Past its probation, with a connection opened.
  std::string last_error;
  std::string memory_watch;             // MemorySource::Describe(), once discovered.
  std::optional<MemoryReading> memory;  // The latest reading, when a limit is known.
  uint64_t memory_graphs = 0;           // Snapshots taken for a crossed threshold: graphs...
  uint64_t memory_summaries = 0;        // ...and summaries (no room for a graph walk).
  uint32_t memory_crossed_pct = 0;      // The last threshold crossed.
  std::string endpoint;                 // The collector in use.
  uint64_t failovers = 0;               // Moves to another collector (home again included).
  uint64_t resent = 0;                  // Unacknowledged snapshots sent again after a move.
};

// Where a run starts, and where the previous one ended.
struct ReporterProgress {
  Clock::time_point connect_at;  // Nothing is opened before this.
  Clock::time_point next_due;    // The next periodic snapshot.
  uint64_t periodic = 0;         // Periodic snapshots so far (graph_every counts them).
  uint64_t last_seq = 0;         // Sequence numbers continue after this one.
  ReporterFigures figures;
  // Which memory thresholds were crossed (built from the config on the first run).
  std::optional<PressureThresholds> pressure;
  // Where the memory limit is read, found when the first run's loop starts, and when next.
  std::optional<MemorySource> memory_source;
  Clock::time_point next_memory_check;
  // The connection, kept across a fork() in the parent: making a socket again at that moment
  // would take a descriptor the program may be about to dup2() back (agent/descriptors.h).
  // Its acknowledgements are in figures.delivered already.
  std::shared_ptr<Connection> connection;
};

// A snapshot as taken: whole, or already encoded (a snapshot child encodes what it walked,
// agent/isolation.h), in which case `snapshot` holds its header only.
struct Taken {
  snapshot::Snapshot snapshot;
  std::string encoded;
  double child_cpu_ms = 0;  // A snapshot child's CPU time (0 for an inline walk).
};

// Called on the reporter thread. Returns the snapshot, or an error saying why none was taken
// (interpreter finalizing, a collection running, a walk abandoned, a snapshot child that
// failed, `cancel` set). `values`: a collector asked for a graph with short values, whatever
// the agent's setting.
using TakeFn = std::function<snapshot::Result<Taken>(snapshot::Kind, bool values,
                                                     const std::atomic<bool>& cancel)>;

// Called on the reporter thread once a probation is over, before anything is opened; false
// ends the run. The agent waits there for the GIL: a child between fork() and exec() (a
// preexec_fn child) holds it until exec, so its reporter never opens a descriptor.
using ReadyFn = std::function<bool(const std::atomic<bool>& cancel)>;

// How a run begins.
struct ReporterStart {
  // Open the connection in Start(), so that a bad endpoint or key is an error value there;
  // otherwise the thread opens it once progress.connect_at has come (an error then shows in
  // figures().last_error), and the caller pays only for starting a thread.
  bool open_now = true;
  ReadyFn ready;  // Optional: asked on the thread before it opens the connection.
};

class Reporter {
 public:
  // Starts the thread (see ReporterStart for when the connection is opened).
  static snapshot::Result<std::unique_ptr<Reporter>> Start(ReporterConfig config,
                                                           ReporterProgress progress, TakeFn take,
                                                           ReporterStart how);

  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;
  ~Reporter();  // Stop().

  // Ends the run quickly: a snapshot being taken or encoded is abandoned (not counted as
  // dropped), no thread of ours remains. Returns what the next run needs, the connection
  // included (a child closes its copy; nothing is written to it meanwhile). REQUIRES: the caller
  // does not hold the GIL.
  ReporterProgress Pause();

  // Ends the instance: joins the thread, says goodbye if anything was ever sent, closes the
  // connection waiting at most linger_ms. REQUIRES: the caller does not hold the GIL.
  void Stop();

  ReporterFigures figures() const;

 private:
  Reporter(ReporterConfig config, ReporterProgress progress, TakeFn take, ReadyFn ready);
  void Run();
  bool WaitForProbation();  // False if stopped first.
  void Loop();
  // `crossed_pct`: taken for a memory threshold (MemoryFigures::crossed_pct); 0 otherwise.
  void TakeOne(snapshot::Kind kind, bool values, uint32_t crossed_pct = 0);
  void CheckMemory();  // Reads the limit when due; a snapshot when a threshold is crossed.
  void KeepWithinOverhead(Clock::time_point walk_started);
  void OnControl(const snapshot::Control& control);
  void Join();
  void RecordError(std::string what);
  // `collector_trouble`: dropped because no collector took it; the silence notice covers it.
  void Drop(std::string why, bool collector_trouble = false);
  void CheckDelivery();  // The silence notice, and the one when delivery resumes.
  snapshot::Result<std::unique_ptr<Connection>> OpenCurrent();
  // Moves to another collector when the one in use stalls, or home when it is time to try;
  // true if the connection changed (its socket is new).
  bool MaybeMove();
  // A goodbye on the connection in use (best effort); `moved`: the agent goes on elsewhere.
  // REQUIRES: connection_.
  void SayGoodbye(bool moved);
  void SendOrQueue(std::string encoded, uint64_t seq);
  void FlushResend();     // Sends what waits to be sent again, in order, while the socket takes it.
  void WriteOffResend();  // The run ends with some still waiting: counted as dropped.
  void Notice(const std::string& what);

  const ReporterConfig config_;
  TakeFn take_;
  ReadyFn ready_;
  ReporterProgress progress_;  // Reporter thread only while it runs.
  std::shared_ptr<Connection> connection_;
  std::atomic<bool> stop_{false};
  std::mutex wait_mutex_;  // With waiting_: the probation's wait.
  std::condition_variable waiting_;
  // Reporter thread only. A collector's graph request waits until graph_request_interval_s
  // after the previous requested graph was done.
  std::optional<Clock::time_point> graph_due_;
  std::optional<Clock::time_point> last_requested_graph_;
  bool values_requested_ = false;
  uint64_t acked_seen_ = 0;          // Connection::acked() when last checked.
  Clock::time_point last_delivery_;  // The last acknowledgement, or the connection's start.
  bool silence_noticed_ = false;
  uint64_t last_objects_ = 0;  // The last walk's objects: what a graph walk would cost.
  bool drop_noticed_ = false;
  // Reporter thread only: the collectors (home first), the one in use, since when, since when
  // a snapshot found no collector (with nothing acknowledged since), and what waits to be sent
  // again after a move (oldest first; bounded by the unacknowledged budget).
  std::vector<std::string> endpoints_;
  size_t current_ = 0;
  Clock::time_point on_current_since_;
  std::optional<Clock::time_point> refused_since_;
  std::deque<std::pair<uint64_t, std::string>> resend_;
  size_t resend_bytes_ = 0;
  mutable std::mutex figures_mutex_;
  ReporterFigures figures_;
  std::thread thread_;
};

}  // namespace tidemark::agent
