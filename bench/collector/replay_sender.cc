// Synthetic agents for tidemarkd's tests and benchmark: N DEALER sockets replaying one real
// encoded snapshot (its header rewritten per agent and seq, its compressed body reused), or
// sending malformed messages of one kind. --mode resend sends every good message twice, as an
// agent that was not sure a collector got it does (both copies are acknowledged).
//
// Prints one JSON line when done: {"agents", "sent", "acked", "seconds", "bytes_sent",
// "cpu_seconds"}; with --print-acks also "ack SERVICE PID SEQ" per acknowledgement, as it
// arrives (the crash test compares them with what the store holds).
//
// --interval S paces instead (bench/collector/bench_fleet.py): every agent sends one summary
// each S seconds, their phases spread evenly, stamped with the wall clock, for --duration
// seconds; the agents share --connections sockets (agent i on socket i mod K; the collector
// keys agents by the identity in each snapshot, so K sockets carry any number of agents), and
// the first --leak-agents of them grow their first type by --leak-rate bytes an hour. Then it
// also prints "skipped" (sends refused by a full socket) and "behind_ms" (the longest a send
// came after its due time).
#include <sys/resource.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "snapshot/clock.h"
#include "snapshot/control.h"
#include "snapshot/wire.h"

namespace {

using namespace tidemark;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string endpoint;
  std::string file;
  std::string kind = "summary";
  std::string mode = "good";
  std::string service = "replay";
  int agents = 1;
  long count = 1;
  int window = 8;
  int types = 500;
  int64_t pid_base = 100000;
  uint64_t bytes = 0;
  double timeout_s = 60;
  double lost_after_s = 1.0;
  bool print_acks = false;
  double interval_s = 0;  // Paced mode when > 0.
  double duration_s = 60;
  int connections = 0;  // 0: one per agent.
  int leak_agents = 0;
  double leak_rate = 64.0 * (1 << 20);  // Bytes an hour.
  std::string server_key, public_key, secret_key;
};

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "replay_sender: " << message << "\n";
  std::exit(2);
}

snapshot::Snapshot Synthetic(const Options& o) {
  snapshot::Snapshot s;
  s.header.kind = o.kind == "graph" ? snapshot::Kind::kGraph : snapshot::Kind::kSummary;
  for (int i = 0; i < o.types; ++i) {
    s.types.push_back({"bench.module.Type" + std::to_string(i), uint64_t(1000 + i * 7),
                       uint64_t(64000 + i * 448), 64});
  }
  s.header.python_version = "3.11.7";
  s.header.identity = {"replay", "replay-host", 1, 1, {}};
  return s;
}

std::string BaseMessage(const Options& o) {
  if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) Die("cannot read " + o.file);
    std::stringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
  }
  auto encoded = snapshot::Encode(Synthetic(o));
  if (!encoded) Die(encoded.error().message);
  return *encoded;
}

// A message with `header`, whose body is `frame` and whose envelope declares `declared` bytes
// once decompressed.
std::string WithFrame(const snapshot::Header& header, const std::string& frame, uint64_t declared) {
  snapshot::Snapshot tiny;
  tiny.header = header;
  std::string message = *snapshot::Encode(tiny);
  const uint32_t header_bytes = snapshot::DecodeEnvelope(message)->header_bytes;
  message.resize(snapshot::kEnvelopeSize + header_bytes);
  for (int i = 0; i < 4; ++i) message[12 + i] = static_cast<char>(frame.size() >> (8 * i));
  for (int i = 0; i < 8; ++i) message[16 + i] = static_cast<char>(declared >> (8 * i));
  return message + frame;
}

std::string Bomb(const snapshot::Header& header) {
  // 256 MiB of zeros compress to a few KiB; the envelope states the size honestly.
  const size_t raw = size_t{256} << 20;
  std::string zeros(raw, '\0');
  std::string frame(ZSTD_compressBound(raw), '\0');
  frame.resize(ZSTD_compress(frame.data(), frame.size(), zeros.data(), raw, 1));
  return WithFrame(header, frame, raw);
}

// A ~260-byte message whose 17-byte zstd frame declares 1 GiB (one RLE block of 1 byte):
// a decoder sizing its output from the declaration allocates and zeroes 1 GiB for it.
std::string TinyBomb(const snapshot::Header& header) {
  const uint64_t declared = uint64_t{1} << 30;
  std::string frame = {'\x28', '\xb5', '\x2f', '\xfd', '\xe0'};  // Magic; 8-byte size, 1 segment.
  for (int i = 0; i < 8; ++i) frame.push_back(static_cast<char>(declared >> (8 * i)));
  const uint32_t block = 1 | (1 << 1) | (1u << 3);  // Last, RLE, 1 byte repeated once.
  for (int i = 0; i < 3; ++i) frame.push_back(static_cast<char>(block >> (8 * i)));
  frame.push_back('x');
  return WithFrame(header, frame, declared);
}

// A malformed message of the given kind, derived from a good one.
std::string Malformed(const std::string& mode, const std::string& good,
                      const snapshot::Header& header, const Options& o, std::mt19937_64& rng) {
  if (mode == "garbage") {
    std::string out(1000, '\0');
    for (char& c : out) c = static_cast<char>(rng());
    return out;
  }
  if (mode == "truncated")
    return good.substr(0, good.size() - std::min<size_t>(good.size() / 2, 100));
  if (mode == "oversized")
    return "TDMK" + std::string(o.bytes ? o.bytes : (size_t{300} << 20), 'x');
  if (mode == "version") {
    std::string out = good;
    out[4] = 99;
    return out;
  }
  if (mode == "identity") {
    snapshot::Header h = header;
    h.identity.pid = 0;
    return *snapshot::ReplaceHeader(good, h);
  }
  if (mode == "badname") {  // Not UTF-8, or a separator of agent names, in turn.
    snapshot::Header h = header;
    switch (h.seq % 3) {
      case 0:
        h.identity.service = "bad\xff\xfename";
        break;
      case 1:
        h.identity.service = "pay/eu";
        break;
      default:
        h.identity.host = "eu/db";
    }
    return *snapshot::ReplaceHeader(good, h);
  }
  if (mode == "future") {  // Dated a day after now.
    snapshot::Header h = header;
    h.timestamp_ns = snapshot::WallNowNs() + int64_t{86400} * 1'000'000'000;
    return *snapshot::ReplaceHeader(good, h);
  }
  if (mode == "bomb") return Bomb(header);
  if (mode == "tinybomb") return TinyBomb(header);
  Die("unknown --mode " + mode);
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

std::string AgentService(const Options& o, int i) {
  return o.agents == 1 ? o.service : o.service + "-" + std::to_string(i % 16);
}

// A leaking agent's summary `elapsed` after the start: its first type grown by --leak-rate.
std::string Leaking(const Options& o, const snapshot::Snapshot& synthetic,
                    const snapshot::Header& header, std::chrono::duration<double> elapsed) {
  snapshot::Snapshot leaking = synthetic;
  leaking.header = header;
  const double grown = o.leak_rate * elapsed.count() / 3600;
  leaking.types[0].bytes += static_cast<uint64_t>(grown);
  leaking.types[0].count += static_cast<uint64_t>(grown / 64);
  return *snapshot::Encode(leaking);
}

// --interval: the fleet at its own pace (see the top of the file).
int Paced(const Options& o) {
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;  // One descriptor per connection, and libzmq's own.
  setrlimit(RLIMIT_NOFILE, &files);
  const int connections = o.connections > 0 ? std::min(o.connections, o.agents) : o.agents;
  zmq::context_t context(1);
  context.set(zmq::ctxopt::max_sockets, connections + 64);
  std::vector<zmq::socket_t> sockets;
  for (int i = 0; i < connections; ++i) {
    sockets.emplace_back(context, zmq::socket_type::dealer);
    sockets.back().set(zmq::sockopt::linger, 0);
    sockets.back().set(zmq::sockopt::sndhwm, 1000);
    sockets.back().connect(o.endpoint);
  }
  // Sockets with acknowledgements to come: polling every socket at each wake-up would cost the
  // sender more than the collectors their work at 3,000 connections.
  std::vector<int> unacked(connections, 0);
  std::vector<int> waiting;

  const snapshot::Snapshot synthetic = Synthetic(o);
  const std::string base = BaseMessage(o);
  snapshot::Header header = *snapshot::DecodeHeader(base);
  header.identity.host = "fleet-host";
  header.identity.start_time_ns = snapshot::WallNowNs();
  std::vector<uint64_t> seq(o.agents, 0);
  uint64_t sent = 0, acked = 0, skipped = 0, bytes_sent = 0;
  double behind_ms = 0;
  const auto started = Clock::now();
  const double cpu_start = CpuSeconds();
  const auto interval = std::chrono::duration<double>(o.interval_s);
  const auto end = started + std::chrono::duration<double>(o.duration_s);
  auto receive = [&](std::chrono::milliseconds wait) {
    std::this_thread::sleep_for(wait);
    std::erase_if(waiting, [&](int i) {
      for (zmq::message_t reply; sockets[i].recv(reply, zmq::recv_flags::dontwait);) {
        auto control = snapshot::DecodeControl(reply.to_string_view());
        if (control && control->ack) {
          ++acked;
          --unacked[i];
        }
      }
      return unacked[i] <= 0;
    });
  };
  // Agent i sends at started + (round + i / agents) * interval: each turn sends what is due,
  // then reads acknowledgements until the next is.
  auto due = [&](long turn) {
    const double at = static_cast<double>(turn / o.agents) + double(turn % o.agents) / o.agents;
    return started + std::chrono::duration_cast<Clock::duration>(interval * at);
  };
  for (long turn = 0; due(turn) < end;) {
    for (auto now = Clock::now(); due(turn) <= now && due(turn) < end; ++turn) {
      behind_ms =
          std::max(behind_ms, std::chrono::duration<double, std::milli>(now - due(turn)).count());
      const int i = static_cast<int>(turn % o.agents);
      header.identity.service = AgentService(o, i);
      header.identity.pid = o.pid_base + i;
      header.seq = ++seq[i];
      header.timestamp_ns = snapshot::WallNowNs();
      const std::string message =
          i < o.leak_agents
              ? Leaking(o, synthetic, header, std::chrono::duration<double>(now - started))
              : *snapshot::ReplaceHeader(base, header);
      const int k = i % connections;
      if (sockets[k].send(zmq::buffer(message), zmq::send_flags::dontwait)) {
        ++sent;
        bytes_sent += message.size();
        if (unacked[k]++ == 0) waiting.push_back(k);
      } else {
        ++skipped;
      }
    }
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(due(turn) - Clock::now());
    receive(std::clamp(wait, std::chrono::milliseconds(10), std::chrono::milliseconds(100)));
  }
  for (const auto drain = Clock::now() + std::chrono::seconds(10);
       acked < sent && Clock::now() < drain;) {
    receive(std::chrono::milliseconds(100));
  }
  std::printf(
      "{\"agents\": %d, \"connections\": %d, \"sent\": %llu, \"acked\": %llu, \"skipped\": %llu, "
      "\"seconds\": %.3f, \"bytes_sent\": %llu, \"behind_ms\": %.1f, \"cpu_seconds\": %.3f}\n",
      o.agents, connections, static_cast<unsigned long long>(sent),
      static_cast<unsigned long long>(acked), static_cast<unsigned long long>(skipped),
      std::chrono::duration<double>(Clock::now() - started).count(),
      static_cast<unsigned long long>(bytes_sent), behind_ms, CpuSeconds() - cpu_start);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--endpoint")
      o.endpoint = next();
    else if (a == "--file")
      o.file = next();
    else if (a == "--kind")
      o.kind = next();
    else if (a == "--mode")
      o.mode = next();
    else if (a == "--service")
      o.service = next();
    else if (a == "--agents")
      o.agents = std::stoi(next());
    else if (a == "--count")
      o.count = std::stol(next());
    else if (a == "--window")
      o.window = std::stoi(next());
    else if (a == "--types")
      o.types = std::stoi(next());
    else if (a == "--pid-base")
      o.pid_base = std::stoll(next());
    else if (a == "--bytes")
      o.bytes = std::stoull(next());
    else if (a == "--timeout")
      o.timeout_s = std::stod(next());
    else if (a == "--print-acks")
      o.print_acks = true;
    else if (a == "--interval")
      o.interval_s = std::stod(next());
    else if (a == "--duration")
      o.duration_s = std::stod(next());
    else if (a == "--connections")
      o.connections = std::stoi(next());
    else if (a == "--leak-agents")
      o.leak_agents = std::stoi(next());
    else if (a == "--leak-rate")
      o.leak_rate = std::stod(next());
    else if (a == "--curve-server-key")
      o.server_key = next();
    else if (a == "--curve-public-key")
      o.public_key = next();
    else if (a == "--curve-secret-key")
      o.secret_key = next();
    else
      Die("unknown argument " + a);
  }
  if (o.endpoint.empty()) Die("--endpoint is required");
  if (o.interval_s > 0) return Paced(o);

  const std::string base = BaseMessage(o);
  auto base_header = snapshot::DecodeHeader(base);
  if (!base_header) Die("base snapshot: " + base_header.error().message);
  const int64_t start_ns = snapshot::WallNowNs();
  std::mt19937_64 rng(42);

  zmq::context_t context(1);
  struct Agent {
    zmq::socket_t socket;
    snapshot::Header header;
    long next_seq = 1;
    int in_flight = 0;
    Clock::time_point last_progress = Clock::now();
  };
  std::vector<Agent> agents(o.agents);
  for (int i = 0; i < o.agents; ++i) {
    Agent& a = agents[i];
    a.socket = zmq::socket_t(context, zmq::socket_type::dealer);
    a.socket.set(zmq::sockopt::linger, 2000);
    a.socket.set(zmq::sockopt::sndhwm, 100000);
    if (!o.server_key.empty()) {
      a.socket.set(zmq::sockopt::curve_serverkey, o.server_key);
      a.socket.set(zmq::sockopt::curve_publickey, o.public_key);
      a.socket.set(zmq::sockopt::curve_secretkey, o.secret_key);
    }
    a.socket.connect(o.endpoint);
    a.header = *base_header;
    a.header.identity.service = AgentService(o, i);
    a.header.identity.host = "replay-host";
    a.header.identity.pid = o.pid_base + i;
    a.header.identity.start_time_ns = start_ns;
  }

  uint64_t sent = 0, acked = 0, bytes_sent = 0;
  const auto started = Clock::now();
  const double cpu_start = CpuSeconds();
  auto send_next = [&](Agent& a) {
    a.header.seq = static_cast<uint64_t>(a.next_seq++);
    a.header.timestamp_ns = start_ns + static_cast<int64_t>(a.header.seq) * 1'000'000;
    const bool good = o.mode == "good" || o.mode == "resend";
    const std::string message =
        good ? *snapshot::ReplaceHeader(base, a.header)
             : Malformed(o.mode, *snapshot::ReplaceHeader(base, a.header), a.header, o, rng);
    for (int copy = 0; copy < (o.mode == "resend" ? 2 : 1); ++copy) {
      if (a.socket.send(zmq::buffer(message), zmq::send_flags::dontwait)) {
        ++sent;
        bytes_sent += message.size();
        ++a.in_flight;
      }
    }
  };

  if (o.mode != "good" && o.mode != "resend") {
    for (Agent& a : agents) {
      for (long n = 0; n < o.count; ++n) send_next(a);
    }
  } else {
    const long total = o.count * o.agents * (o.mode == "resend" ? 2 : 1);
    std::vector<zmq::pollitem_t> items;
    for (Agent& a : agents) items.push_back({a.socket.handle(), 0, ZMQ_POLLIN, 0});
    for (Agent& a : agents) {
      while (a.in_flight < o.window && a.next_seq <= o.count) send_next(a);
    }
    while (static_cast<long>(acked) < total &&
           std::chrono::duration<double>(Clock::now() - started).count() < o.timeout_s) {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
      const auto now = Clock::now();
      for (size_t i = 0; i < agents.size(); ++i) {
        Agent& a = agents[i];
        zmq::message_t reply;
        while (a.socket.recv(reply, zmq::recv_flags::dontwait)) {
          auto control = snapshot::DecodeControl(reply.to_string_view());
          if (!control || !control->ack) continue;
          ++acked;
          a.in_flight = std::max(0, a.in_flight - 1);
          a.last_progress = now;
          if (o.print_acks) {
            std::printf("ack %s %lld %llu\n", a.header.identity.service.c_str(),
                        static_cast<long long>(a.header.identity.pid),
                        static_cast<unsigned long long>(*control->ack));
            std::fflush(stdout);
          }
        }
        // A message in flight when the daemon died is never acknowledged: move on.
        if (a.in_flight > 0 &&
            std::chrono::duration<double>(now - a.last_progress).count() > o.lost_after_s) {
          a.in_flight = 0;
          a.last_progress = now;
        }
        while (a.in_flight < o.window && a.next_seq <= o.count) send_next(a);
      }
      if (std::all_of(agents.begin(), agents.end(),
                      [&](const Agent& a) { return a.next_seq > o.count && a.in_flight == 0; })) {
        break;
      }
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf(
      "{\"agents\": %d, \"sent\": %llu, \"acked\": %llu, \"seconds\": %.3f, \"bytes_sent\": %llu, "
      "\"message_bytes\": %zu, \"cpu_seconds\": %.3f}\n",
      o.agents, static_cast<unsigned long long>(sent), static_cast<unsigned long long>(acked),
      seconds, static_cast<unsigned long long>(bytes_sent), base.size(), CpuSeconds() - cpu_start);
  std::fflush(stdout);
  return 0;
}
