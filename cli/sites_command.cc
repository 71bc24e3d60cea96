#include "cli/sites_command.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <ostream>

#include "cli/output.h"
#include "cli/stored.h"
#include "diff/sites.h"

namespace tidemark::cli {
namespace {

using nlohmann::json;

std::string TypeText(const std::string& type) { return type.empty() ? "(no object)" : type; }

json StackJson(const std::vector<diff::SiteFrame>& stack) {
  json frames = json::array();
  for (const diff::SiteFrame& f : stack) {
    frames.push_back({{"file", f.file}, {"function", f.function}, {"line", f.line}});
  }
  return frames;
}

json SamplingJson(const snapshot::Sites& s) {
  return {{"mean_bytes", s.mean_bytes},
          {"live_samples", s.live_samples},
          {"dropped_samples", s.dropped_samples},
          {"dropped_stacks", s.dropped_stacks},
          {"restarts", s.restarts}};
}

// A snapshot with sites, else a message saying why there are none.
bool LoadSites(const std::string& arg, const Flags& flags, snapshot::Snapshot& s,
               std::ostream& err) {
  if (!LoadSnapshotArgument(arg, flags, s, err)) return false;
  if (s.sites.recorded) return true;
  err << "tidemark sites: '" << arg
      << "' has no allocation sites: its agent was not sampling allocations (turn it on with "
         "TIDEMARK_SAMPLE_BYTES=512KiB, start(sample_bytes=...) or "
         "tidemark.start_sampling())\n";
  return false;
}

void Header(const Flags& flags, const snapshot::Sites& s, std::ostream& out) {
  out << "sampled live heap: " << s.live_samples << " samples, one per "
      << Size(flags, static_cast<double>(s.mean_bytes)) << " allocated on average";
  if (s.dropped_samples || s.dropped_stacks) {
    out << "; not kept (tables full): " << s.dropped_samples << " samples, " << s.dropped_stacks
        << " stacks";
  }
  if (s.restarts) out << "; restarted " << s.restarts << "x (another allocator hook)";
  out << "\n";
}

int OneSnapshot(const Flags& flags, std::vector<diff::SiteRow> rows, const snapshot::Sites& s,
                std::ostream& out) {
  if (flags.has("--folded")) {  // Every site for a flame graph, unless --top says otherwise.
    if (flags.value("--top")) rows.resize(RowsShown(flags, rows.size(), rows.size()));
    out << diff::FoldedSites(rows);
    return 0;
  }
  const size_t shown = RowsShown(flags, rows.size(), 20);
  if (flags.json) {
    json j = {{"sampling", SamplingJson(s)}, {"sites", json::array()}};
    for (size_t i = 0; i < shown; ++i) {
      j["sites"].push_back({{"type", rows[i].type.empty() ? json(nullptr) : json(rows[i].type)},
                            {"bytes", rows[i].bytes},
                            {"count", rows[i].count},
                            {"site", diff::DescribeSite(rows[i].stack)},
                            {"stack", StackJson(rows[i].stack)}});
    }
    MarkTruncated(j, shown, rows.size());
    out << j.dump(2) << "\n";
    return 0;
  }
  Header(flags, s, out);
  out << "  Est. bytes   Est. count  Type / site\n";
  for (size_t i = 0; i < shown; ++i) {
    char line[64];
    std::snprintf(line, sizeof line, "%12s %12" PRIu64 "  ",
                  Size(flags, static_cast<double>(rows[i].bytes)).c_str(), rows[i].count);
    out << line << TypeText(rows[i].type) << " at " << diff::DescribeSite(rows[i].stack) << "\n";
  }
  if (shown < rows.size()) out << "... " << rows.size() - shown << " more sites (--all)\n";
  return 0;
}

int TwoSnapshots(const Flags& flags, const std::vector<diff::SiteRow>& a,
                 const std::vector<diff::SiteRow>& b, const snapshot::Sites& s, std::ostream& out) {
  std::vector<diff::SiteDelta> rows = diff::DiffSites(a, b);
  std::erase_if(rows, [](const diff::SiteDelta& d) { return d.bytes_delta() == 0; });
  const size_t shown = RowsShown(flags, rows.size(), 20);
  if (flags.json) {
    json j = {{"sampling", SamplingJson(s)}, {"sites", json::array()}};
    for (size_t i = 0; i < shown; ++i) {
      const diff::SiteDelta& d = rows[i];
      j["sites"].push_back({{"type", d.type.empty() ? json(nullptr) : json(d.type)},
                            {"bytes_before", d.bytes_before},
                            {"bytes_after", d.bytes_after},
                            {"bytes_delta", d.bytes_delta()},
                            {"count_before", d.count_before},
                            {"count_after", d.count_after},
                            {"site", diff::DescribeSite(d.stack)},
                            {"stack", StackJson(d.stack)}});
    }
    MarkTruncated(j, shown, rows.size());
    out << j.dump(2) << "\n";
    return 0;
  }
  Header(flags, s, out);
  out << "  Bytes delta   Est. bytes  Type / site\n";
  for (size_t i = 0; i < shown; ++i) {
    const diff::SiteDelta& d = rows[i];
    char line[64];
    std::snprintf(line, sizeof line, "%13s %12s  ",
                  SignedSize(flags, static_cast<double>(d.bytes_delta())).c_str(),
                  Size(flags, static_cast<double>(d.bytes_after)).c_str());
    out << line << TypeText(d.type) << " at " << diff::DescribeSite(d.stack) << "\n";
  }
  if (shown < rows.size()) out << "... " << rows.size() - shown << " more sites (--all)\n";
  return 0;
}

}  // namespace

int SitesCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  snapshot::Snapshot a, b;
  if (!LoadSites(flags.positional[0], flags, a, err)) return 1;
  const bool two = flags.positional.size() == 2;
  if (two && !LoadSites(flags.positional[1], flags, b, err)) return 1;
  if (two && flags.has("--folded")) {
    err << "tidemark sites: --folded takes one snapshot\n";
    return 2;
  }
  auto keep = [&](std::vector<diff::SiteRow> rows) {
    if (const auto type = flags.value("--type")) {
      std::erase_if(rows, [&](const diff::SiteRow& r) { return TypeText(r.type) != *type; });
    }
    return rows;
  };
  if (!two) return OneSnapshot(flags, keep(diff::SiteRows(a)), a.sites, out);
  return TwoSnapshots(flags, keep(diff::SiteRows(a)), keep(diff::SiteRows(b)), b.sites, out);
}

}  // namespace tidemark::cli
