#include "collector/metrics.h"

#include <sstream>

namespace tidemark::collector {

std::string EscapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void Metrics::Received(const snapshot::Header& header, uint64_t message_bytes, int64_t now_ns) {
  const int slot = header.kind == snapshot::Kind::kGraph ? 1 : 0;
  snapshots_[slot].fetch_add(1, std::memory_order_relaxed);
  bytes_[slot].fetch_add(message_bytes, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  // Keyed as labelled: a process restarted with the same pid on the same host (PID 1 in a
  // restarted container) replaces the older instance's series instead of duplicating them,
  // which would make Prometheus reject the whole scrape.
  const snapshot::Identity& who = header.identity;
  const std::string key = who.service + '\0' + who.host + '\0' + std::to_string(who.pid);
  auto found = agents_.find(key);
  if (found != agents_.end()) {
    if (who.start_time_ns < found->second.identity.start_time_ns) return;  // The older one's.
    found->second.identity = who;
  }
  if (found == agents_.end()) {
    if (agents_.size() >= kMaxAgents && now_ns >= next_sweep_ns_) {
      Sweep(now_ns);
      next_sweep_ns_ = now_ns + kSweepIntervalNs;
    }
    if (agents_.size() >= kMaxAgents) {
      uncharted_.fetch_add(1, std::memory_order_relaxed);  // In the totals, not charted.
      return;
    }
    found = agents_.emplace(key, AgentSeen{}).first;
    found->second.identity = header.identity;
  }
  AgentSeen& agent = found->second;
  agent.last_seen_ns = now_ns;
  agent.figures = header.agent;
  agent.rss_bytes = header.rss_bytes;
  agent.heap_objects = header.objects;
  agent.heap_bytes = header.bytes;
}

void Metrics::Sweep(int64_t now_ns) {
  std::erase_if(
      agents_, [&](const auto& a) { return now_ns - a.second.last_seen_ns > kAgentForgetAfterNs; });
}

void Metrics::RetentionRemoved(const store::RetentionResult& r) {
  retention_snapshots_.fetch_add(r.snapshots_removed, std::memory_order_relaxed);
  retention_bytes_.fetch_add(r.bytes_removed, std::memory_order_relaxed);
}

std::string Metrics::Render(const store::StoreStats& store, int64_t now_ns) {
  std::ostringstream out;
  out.precision(15);  // Timestamps in seconds need 13 digits.
  auto family = [&](const char* name, const char* type, const char* help) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  };
  family("tidemark_snapshots_received_total", "counter", "Valid snapshots received, by kind.");
  out << "tidemark_snapshots_received_total{kind=\"summary\"} " << snapshots_[0] << '\n';
  out << "tidemark_snapshots_received_total{kind=\"graph\"} " << snapshots_[1] << '\n';
  family("tidemark_snapshot_bytes_received_total", "counter",
         "Bytes of valid snapshots received (compressed, as sent), by kind.");
  out << "tidemark_snapshot_bytes_received_total{kind=\"summary\"} " << bytes_[0] << '\n';
  out << "tidemark_snapshot_bytes_received_total{kind=\"graph\"} " << bytes_[1] << '\n';
  family("tidemark_snapshots_acknowledged_total", "counter",
         "Snapshots acknowledged to their agent once durable.");
  out << "tidemark_snapshots_acknowledged_total " << acknowledged_ << '\n';
  family("tidemark_snapshots_duplicate_total", "counter",
         "Snapshots received again (same agent and sequence number): acknowledged, stored once.");
  out << "tidemark_snapshots_duplicate_total " << duplicates_ << '\n';
  family("tidemark_messages_dropped_total", "counter", "Messages dropped, by reason.");
  for (int r = 0; r < static_cast<int>(DropReason::kCount); ++r) {
    out << "tidemark_messages_dropped_total{reason=\"" << DropReasonName(static_cast<DropReason>(r))
        << "\"} " << drops_[r] << '\n';
  }
  family("tidemark_store_bytes", "gauge", "Bytes of segment and index files in the store.");
  out << "tidemark_store_bytes{kind=\"summary\"} " << store.summary.bytes << '\n';
  out << "tidemark_store_bytes{kind=\"graph\"} " << store.graph.bytes << '\n';
  out << "tidemark_store_bytes{kind=\"series\"} " << store.series_bytes << '\n';
  family("tidemark_store_snapshots", "gauge", "Snapshots in the store.");
  out << "tidemark_store_snapshots{kind=\"summary\"} " << store.summary.snapshots << '\n';
  out << "tidemark_store_snapshots{kind=\"graph\"} " << store.graph.snapshots << '\n';
  family("tidemark_store_agents", "gauge", "Agent instances recorded in the store.");
  out << "tidemark_store_agents " << store.agents << '\n';
  family("tidemark_retention_removed_snapshots_total", "counter",
         "Snapshots removed by retention.");
  out << "tidemark_retention_removed_snapshots_total " << retention_snapshots_ << '\n';
  family("tidemark_retention_removed_bytes_total", "counter", "Bytes removed by retention.");
  out << "tidemark_retention_removed_bytes_total " << retention_bytes_ << '\n';

  family("tidemark_agent_snapshots_uncharted_total", "counter",
         "Snapshots from agents left out of the per-agent series: 10,000 agents were in them.");
  out << "tidemark_agent_snapshots_uncharted_total " << uncharted_ << '\n';

  std::lock_guard lock(mutex_);
  Sweep(now_ns);
  family("tidemark_agents", "gauge", "Agents heard from in the last hour (at most 10,000).");
  out << "tidemark_agents " << agents_.size() << '\n';
  struct Series {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const AgentSeen&);
  };
  static const Series series[] = {
      {"tidemark_agent_last_seen_timestamp_seconds", "gauge",
       "When the agent's last snapshot arrived.",
       [](const AgentSeen& a) { return a.last_seen_ns / 1e9; }},
      {"tidemark_agent_pause_seconds", "gauge", "GIL held for the agent's last walk.",
       [](const AgentSeen& a) { return a.figures.pause_ms / 1e3; }},
      {"tidemark_agent_encode_seconds", "gauge", "Encoding of the agent's previous snapshot.",
       [](const AgentSeen& a) { return a.figures.encode_ms / 1e3; }},
      {"tidemark_agent_encoded_bytes", "gauge", "Size of the agent's previous snapshot.",
       [](const AgentSeen& a) { return static_cast<double>(a.figures.encoded_bytes); }},
      {"tidemark_agent_dropped_snapshots", "gauge", "Snapshots the agent dropped so far.",
       [](const AgentSeen& a) { return static_cast<double>(a.figures.dropped); }},
      {"tidemark_agent_delivered_snapshots", "gauge", "Snapshots the agent saw acknowledged.",
       [](const AgentSeen& a) { return static_cast<double>(a.figures.delivered); }},
      {"tidemark_agent_rss_bytes", "gauge", "The process's resident set size.",
       [](const AgentSeen& a) { return static_cast<double>(a.rss_bytes); }},
      {"tidemark_agent_heap_objects", "gauge", "Python objects walked.",
       [](const AgentSeen& a) { return static_cast<double>(a.heap_objects); }},
      {"tidemark_agent_heap_bytes", "gauge", "Bytes of the Python objects walked.",
       [](const AgentSeen& a) { return static_cast<double>(a.heap_bytes); }},
  };
  for (const Series& s : series) {
    family(s.name, s.type, s.help);
    for (const auto& [key, a] : agents_) {
      out << s.name << "{service=\"" << EscapeLabel(a.identity.service) << "\",host=\""
          << EscapeLabel(a.identity.host) << "\",pid=\"" << a.identity.pid << "\"} " << s.value(a)
          << '\n';
    }
  }
  return out.str();
}

}  // namespace tidemark::collector
