#include "collector/diagnosis.h"

namespace tidemark::collector {

Diagnosis Diagnose(const analysis::GraphDiffResult& r, const std::string& alert_type, bool grew,
                   bool capped) {
  Diagnosis out;
  const std::string no_growth =
      grew ? "" : "the summaries showed no growth between them (a leak in steps?)";
  const analysis::NewGroup* group = nullptr;
  for (const analysis::NewGroup& g : r.groups) {
    if (g.type == alert_type) group = &g;
  }
  if (!group && !r.groups.empty()) group = &r.groups.front();
  if (!group) {
    out.note = "no new objects between the two graph snapshots" +
               (no_growth.empty() ? "" : ": " + no_growth);
    return out;
  }
  out.type = group->type;
  for (const analysis::Holder& h : group->holders) {
    out.holders.push_back({h.description, h.path, h.count, h.bytes});
  }
  out.note = std::to_string(group->count) + " new " + group->type + " objects (" +
             std::to_string(group->bytes) + " bytes) between two graph snapshots " +
             diff::HumanSeconds(r.seconds) + " apart";
  // Headline what the holder holds: Records, not the bytes payloads inside them.
  const analysis::Holder* top = group->holders.empty() ? nullptr : &group->holders.front();
  if (top && !top->outermost_type.empty() && top->outermost_type != group->type) {
    out.type = top->outermost_type;
    out.note += "; they are inside " + std::to_string(top->outermost_count) + " new " + out.type +
                " objects retaining " + std::to_string(top->outermost_bytes) +
                " bytes, contents included";
  }
  if (!no_growth.empty()) out.note += "; " + no_growth;
  if (capped) out.note += "; an agent capped reference lists, holders may be incomplete";
  return out;
}

std::vector<diff::Cause> Causes(const analysis::GraphDiffResult& r,
                                const std::vector<std::string>& graphs, bool grew, bool capped) {
  std::vector<diff::Cause> out;
  for (const analysis::NewGroup& g : r.groups) {
    Diagnosis d = Diagnose(r, g.type, grew, capped);
    std::string key = diff::CauseKey(d.holders);
    if (key.empty()) continue;
    out.push_back({g.type, std::move(key), std::move(d.type), std::move(d.holders), graphs,
                   std::move(d.note), ""});
  }
  return out;
}

}  // namespace tidemark::collector
