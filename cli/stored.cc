#include "cli/stored.h"

#include "cli/merged.h"

#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cinttypes>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/output.h"
#include "diff/detector.h"
#include "snapshot/wire.h"
#include "store/references.h"
#include "store/store.h"

namespace tidemark::cli {
namespace {

using snapshot::Fail;
using snapshot::Result;
using store::ResolveRef;

constexpr const char* kSystemdStore = "/var/lib/tidemark";  // StateDirectory=tidemark

std::string IsoTime(int64_t ns) {
  const std::time_t seconds = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return out;
}

Result<store::Catalog> OpenCatalog(const std::string& dir, store::FileSystem& fs) {
  auto catalog = store::ReadCatalog(dir, fs);
  if (!catalog) return Fail("cannot read the store: " + catalog.error().message);
  return catalog;
}

// A snapshot file, read only once its envelope says it is one and how long it is: a 3 GB file
// of zeros costs 24 bytes, not 3 GB.
Result<std::string> ReadSnapshotFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail("cannot read '" + path + "'");
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) return Fail("cannot read '" + path + "': " + ec.message());
  std::string head(std::min<uint64_t>(size, snapshot::kEnvelopeSize), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  if (size < snapshot::kEnvelopeSize) {
    return Fail("'" + path + "' is " + std::to_string(size) +
                " bytes: a truncated envelope (a snapshot starts with 24)");
  }
  if (head.compare(0, 4, snapshot::kMagic, 4) != 0) {
    return Fail("'" + path + "' is not a tidemark snapshot (no TDMK envelope)");
  }
  uint64_t header = 0, body = 0;
  for (int i = 3; i >= 0; --i) header = (header << 8) | static_cast<uint8_t>(head[8 + i]);
  for (int i = 3; i >= 0; --i) body = (body << 8) | static_cast<uint8_t>(head[12 + i]);
  const uint64_t declared = snapshot::kEnvelopeSize + header + body;
  if (declared != size) {
    return Fail("'" + path + "' is " + std::to_string(size) + " bytes but its envelope declares " +
                std::to_string(declared) + " (truncated, or not one snapshot)");
  }
  std::string message(size, '\0');
  in.seekg(0);
  in.read(message.data(), static_cast<std::streamsize>(size));
  if (!in) return Fail("cannot read '" + path + "'");
  return message;
}

}  // namespace

StoreChoice ChooseStore(const std::optional<std::string>& option) {
  if (option) return {*option, "--store"};
  if (const char* env = std::getenv("TIDEMARK_STORE"); env && *env) return {env, "TIDEMARK_STORE"};
  if (IsStore("./tidemark-data")) return {"./tidemark-data", "the working directory"};
  if (IsStore(kSystemdStore)) return {kSystemdStore, "tidemarkd's systemd state directory"};
  return {"./tidemark-data", std::string("the default; no store there nor in ") + kSystemdStore};
}

bool IsStore(const std::string& dir) {
  std::error_code ec;
  for (const char* file : {"/agents.log", "/alerts.jnl", "/reports.jnl"}) {
    if (std::filesystem::is_regular_file(dir + file, ec)) return true;
  }
  return false;
}

bool IsStoredReference(const std::string& arg) {
  std::error_code ec;
  return arg.find_first_of(":@") != std::string::npos && !std::filesystem::is_regular_file(arg, ec);
}

bool LoadSnapshotArgument(const std::string& arg, const Flags& flags, snapshot::Snapshot& out,
                          std::ostream& err) {
  auto message = ReadSnapshotArgument(arg, flags);
  if (!message) {
    err << "tidemark: " << message.error().message << "\n";
    return false;
  }
  auto decoded = snapshot::Decode(*message);
  if (!decoded) {
    err << "tidemark: '" << arg << "' is not a readable snapshot: " << decoded.error().message
        << "\n";
    return false;
  }
  out = std::move(*decoded);
  return true;
}

Result<std::string> ReadSnapshotArgument(const std::string& arg, const Flags& flags) {
  if (!IsStoredReference(arg)) {
    if (std::filesystem::is_regular_file(arg)) return ReadSnapshotFile(arg);
    const std::string why = WhyNotAFile(arg, false);
    return Fail(snapshot::Code::kNotFound,
                "cannot open '" + arg + "': " + (why.empty() ? "not a regular file" : why));
  }
  auto catalog = OpenCatalog(flags.store_dir, *flags.fs);
  if (!catalog) return std::unexpected(catalog.error());
  auto entry = ResolveRef(*catalog, arg, flags.now_ns);
  if (!entry) return std::unexpected(entry.error());
  return store::ReadMessage(flags.store_dir, *entry, *flags.fs);
}

std::string NewestGraphHint(const std::string& arg, const Flags& flags) {
  if (!IsStoredReference(arg)) return "";
  auto catalog = OpenCatalog(flags.store_dir, *flags.fs);
  if (!catalog) return "";
  auto entry = ResolveRef(*catalog, arg, flags.now_ns);
  if (!entry) return "";
  const store::IndexEntry* newest = nullptr;
  for (const auto& e : catalog->entries) {
    if (e.agent == entry->agent && e.kind == snapshot::Kind::kGraph &&
        (!newest || e.seq > newest->seq)) {
      newest = &e;
    }
  }
  const auto agent = catalog->agents.find(entry->agent);
  if (agent == catalog->agents.end()) return "";
  const std::string name = snapshot::AgentName(agent->second.identity);
  if (!newest) {
    return "agent " + name +
           " has no graph snapshot stored (tidemarkd asks for two when a leak alert goes "
           "pending; TIDEMARK_GRAPH_EVERY=N takes one every N snapshots)";
  }
  return "the newest graph snapshot of " + name + " is " + name + ":" +
         std::to_string(newest->seq) + ", taken " + IsoTime(newest->timestamp_ns);
}

int ListStore(const Flags& flags, std::ostream& out, std::ostream& err) {
  const std::string& dir = flags.store_dir;
  const bool all = flags.all, json = flags.json;
  auto catalog = flags.collectors.size() > 1 ? ReadMergedCatalog(flags.collectors)
                                             : OpenCatalog(dir, *flags.fs);
  if (!catalog) {
    err << "tidemark ls: " << catalog.error().message << "\n";
    return 1;
  }
  std::map<uint32_t, std::vector<const store::IndexEntry*>> by_agent;
  for (const auto& e : catalog->entries) by_agent[e.agent].push_back(&e);
  for (auto& [id, entries] : by_agent) {
    std::sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
  }
  std::map<std::string, std::vector<const store::AgentRecord*>> services;
  for (const auto& [id, agent] : catalog->agents) {
    if (by_agent.count(id)) services[agent.identity.service].push_back(&agent);
  }
  const size_t shown_per_agent = all ? SIZE_MAX : 5;
  if (json) {
    nlohmann::json j = {{"store", dir}, {"services", nlohmann::json::array()}};
    for (const auto& [service, agents] : services) {
      nlohmann::json s = {{"service", service}, {"agents", nlohmann::json::array()}};
      for (const auto* a : agents) {
        nlohmann::json labels = nlohmann::json::object();
        for (const auto& [k, v] : a->identity.labels) labels[k] = v;
        nlohmann::json agent = {{"id", a->id},
                                {"name", snapshot::AgentName(a->identity)},
                                {"host", a->identity.host},
                                {"pid", a->identity.pid},
                                {"start_time_ns", a->identity.start_time_ns},
                                {"labels", labels},
                                {"snapshots", nlohmann::json::array()}};
        for (const auto* e : by_agent[a->id]) {
          agent["snapshots"].push_back({{"seq", e->seq},
                                        {"kind", snapshot::KindName(e->kind)},
                                        {"timestamp_ns", e->timestamp_ns},
                                        {"received_ns", e->received_ns},
                                        {"objects", e->objects},
                                        {"bytes", e->bytes},
                                        {"types", e->types},
                                        {"rss_bytes", e->rss_bytes},
                                        {"message_bytes", e->message_bytes},
                                        {"memory_crossed_pct", e->crossed_pct}});
        }
        s["agents"].push_back(agent);
      }
      j["services"].push_back(s);
    }
    out << j.dump(2) << "\n";
    return 0;
  }
  if (services.empty()) out << "store " << dir << " holds no snapshots yet\n";
  for (const auto& [service, agents] : services) {
    out << service << "\n";
    for (const auto* a : agents) {
      const auto& entries = by_agent[a->id];
      std::string labels;
      for (const auto& [k, v] : a->identity.labels) labels += " " + k + "=" + v;
      out << "  agent " << a->id << "  " << snapshot::AgentName(a->identity) << "  host "
          << a->identity.host << " pid " << a->identity.pid << "  started "
          << IsoTime(a->identity.start_time_ns) << labels << "  (" << entries.size()
          << " snapshots)\n";
      const size_t first = entries.size() - std::min(entries.size(), shown_per_agent);
      if (first > 0) out << "      ... " << first << " older (--all lists them)\n";
      for (size_t i = first; i < entries.size(); ++i) {
        const auto* e = entries[i];
        char line[200];
        std::snprintf(line, sizeof line,
                      "    %3u:%-6" PRIu64 " %-7s %s %10" PRIu64 " objects %10s heap %10s stored\n",
                      a->id, e->seq, snapshot::KindName(e->kind), IsoTime(e->timestamp_ns).c_str(),
                      e->objects, Size(flags, static_cast<double>(e->bytes)).c_str(),
                      Size(flags, static_cast<double>(e->message_bytes)).c_str());
        out << line;
        if (e->crossed_pct > 0) {
          out << "        ^ taken past " << e->crossed_pct << "% of the memory limit\n";
        }
      }
    }
  }
  return 0;
}

int VerifyStore(const std::string& dir, bool json, std::ostream& out, std::ostream& err) {
  store::FileSystem& fs = store::FileSystem::Default();  // verify reads a local store.
  auto catalog = OpenCatalog(dir, fs);
  if (!catalog) {
    err << "tidemark verify: " << catalog.error().message << "\n";
    return 1;
  }
  const bool progress = isatty(STDERR_FILENO) && !json;
  uint64_t good = 0, removed = 0;
  nlohmann::json failures = nlohmann::json::array();
  std::optional<store::Catalog> now;  // Read again when a segment is missing.
  auto still_listed = [&](const store::IndexEntry& e) {
    if (!now) now = OpenCatalog(dir, fs).value_or(store::Catalog{});
    return std::any_of(now->entries.begin(), now->entries.end(), [&](const auto& n) {
      return n.agent == e.agent && n.seq == e.seq && n.kind == e.kind;
    });
  };
  for (size_t i = 0; i < catalog->entries.size(); ++i) {
    const auto& e = catalog->entries[i];
    auto message = store::ReadMessage(dir, e, fs);
    std::string problem;
    if (!message && message.error().code == snapshot::Code::kNotFound && !still_listed(e)) {
      ++removed;  // Retention removed it since the catalog was read: the store is live.
    } else if (!message) {
      problem = message.error().message;
    } else if (auto decoded = snapshot::Decode(*message); !decoded) {
      problem = decoded.error().message;
    } else if (decoded->header.seq != e.seq) {
      problem = "index says seq " + std::to_string(e.seq) + ", message says " +
                std::to_string(decoded->header.seq);
    }
    if (problem.empty()) {
      good += message.has_value();
    } else {
      failures.push_back({{"agent", e.agent}, {"seq", e.seq}, {"problem", problem}});
      if (!json) err << "agent " << e.agent << " seq " << e.seq << ": " << problem << "\n";
    }
    if (progress && (i % 100 == 99 || i + 1 == catalog->entries.size())) {
      err << "\rverified " << i + 1 << " of " << catalog->entries.size() << std::flush;
    }
  }
  if (progress) err << "\n";
  if (json) {
    out << nlohmann::json{{"snapshots", catalog->entries.size()},
                          {"good", good},
                          {"removed_meanwhile", removed},
                          {"failures", failures},
                          {"problems", catalog->problems}}
               .dump(2)
        << "\n";
  } else {
    out << good << " of " << catalog->entries.size() << " stored snapshots decode";
    if (removed) out << " (" << removed << " removed by retention while verifying)";
    out << "\n";
    for (const std::string& problem : catalog->problems) out << "problem: " << problem << "\n";
  }
  return failures.empty() && catalog->problems.empty() ? 0 : 1;
}

int MakeCurveKeys(bool json, std::ostream& out, std::ostream& err) {
  char public_key[41], secret_key[41];
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    err << "tidemark keygen: libzmq was built without CURVE support\n";
    return 1;
  }
  if (json) {
    out << nlohmann::json{{"public_key", public_key}, {"secret_key", secret_key}}.dump(2) << "\n";
  } else {
    out << "public_key = \"" << public_key << "\"\nsecret_key = \"" << secret_key << "\"\n";
  }
  return 0;
}

}  // namespace tidemark::cli
