#include "diff/sites.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace tidemark::diff {
namespace {

std::string Where(const SiteFrame& f) {
  return f.file + ":" + std::to_string(f.line) + " in " + f.function;
}

// Rows with the same type and stack (stacks that differ only below the 64th frame, or by
// the snapshot's numbering) are one site.
using Key = std::pair<std::string, std::string>;

Key KeyOf(const std::string& type, const std::vector<SiteFrame>& stack) {
  std::string text;
  for (const SiteFrame& f : stack) text += Where(f) + "\n";
  return {type, text};
}

}  // namespace

std::vector<SiteRow> SiteRows(const snapshot::Snapshot& s) {
  const snapshot::Sites& sites = s.sites;
  std::map<Key, SiteRow> merged;
  for (const snapshot::Sites::Row& row : sites.rows) {
    SiteRow r;
    if (row.type != snapshot::Sites::kNoObject) r.type = s.types[row.type].name;
    for (uint32_t f : sites.stacks[row.stack]) {
      const snapshot::Sites::Frame& frame = sites.frames[f];
      r.stack.push_back({sites.strings[frame.file], sites.strings[frame.function], frame.line});
    }
    r.bytes = row.bytes;
    r.count = row.count;
    auto [it, added] = merged.try_emplace(KeyOf(r.type, r.stack), r);
    if (!added) {
      it->second.bytes += row.bytes;
      it->second.count += row.count;
    }
  }
  std::vector<SiteRow> rows;
  for (auto& [key, row] : merged) rows.push_back(std::move(row));
  std::stable_sort(rows.begin(), rows.end(),
                   [](const SiteRow& a, const SiteRow& b) { return a.bytes > b.bytes; });
  return rows;
}

std::string DescribeSite(const std::vector<SiteFrame>& stack) {
  if (stack.empty()) return "(no Python stack)";
  std::string text = Where(stack[0]);
  if (stack.size() > 1) text += " (called from " + Where(stack[1]) + ")";
  return text;
}

std::vector<SiteDelta> DiffSites(const std::vector<SiteRow>& a, const std::vector<SiteRow>& b) {
  std::map<Key, SiteDelta> by_key;
  auto add = [&](const std::vector<SiteRow>& rows, uint64_t SiteDelta::*bytes,
                 uint64_t SiteDelta::*count) {
    for (const SiteRow& r : rows) {
      SiteDelta& d = by_key[KeyOf(r.type, r.stack)];
      d.type = r.type;
      d.stack = r.stack;
      d.*bytes = r.bytes;
      d.*count = r.count;
    }
  };
  add(a, &SiteDelta::bytes_before, &SiteDelta::count_before);
  add(b, &SiteDelta::bytes_after, &SiteDelta::count_after);
  std::vector<SiteDelta> rows;
  for (auto& [key, d] : by_key) rows.push_back(std::move(d));
  std::stable_sort(rows.begin(), rows.end(), [](const SiteDelta& x, const SiteDelta& y) {
    return x.bytes_delta() > y.bytes_delta();
  });
  return rows;
}

std::string GrowthSiteLine(const std::vector<SiteRow>& a, const std::vector<SiteRow>& b,
                           const std::string& type) {
  int64_t grown = 0;
  const SiteDelta* top = nullptr;
  const std::vector<SiteDelta> deltas = DiffSites(a, b);
  for (const SiteDelta& d : deltas) {
    if (d.type != type || d.bytes_delta() <= 0) continue;
    grown += d.bytes_delta();
    if (top == nullptr) top = &d;
  }
  if (top == nullptr) return "";
  const long share = std::lround(100.0 * static_cast<double>(top->bytes_delta()) / grown);
  return std::to_string(share) + "% of the new " + type + " bytes were allocated at " +
         DescribeSite(top->stack);
}

std::string LiveSiteLine(const std::vector<SiteRow>& rows, const std::string& type) {
  uint64_t total = 0;
  const SiteRow* top = nullptr;
  for (const SiteRow& r : rows) {
    if (r.type != type || r.bytes == 0) continue;
    total += r.bytes;
    if (top == nullptr || r.bytes > top->bytes) top = &r;
  }
  if (top == nullptr) return "";
  const long share = std::lround(100.0 * static_cast<double>(top->bytes) / total);
  return std::to_string(share) + "% of the live " + type + " bytes were allocated at " +
         DescribeSite(top->stack);
}

std::string FoldedSites(const std::vector<SiteRow>& rows) {
  std::string out;
  for (const SiteRow& r : rows) {
    if (r.bytes == 0) continue;
    std::string line;
    for (auto f = r.stack.rbegin(); f != r.stack.rend(); ++f) {
      std::string frame = f->function + " (" + f->file + ":" + std::to_string(f->line) + ")";
      std::replace(frame.begin(), frame.end(), ';', ',');  // ';' separates frames.
      line += frame + ";";
    }
    if (r.stack.empty()) line += "(no Python stack);";
    line += r.type.empty() ? "(no object)" : r.type;
    out += line + " " + std::to_string(r.bytes) + "\n";
  }
  return out;
}

}  // namespace tidemark::diff
