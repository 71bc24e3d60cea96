#include "diff/type_diff.h"

#include <algorithm>
#include <unordered_map>

namespace tidemark::diff {

std::vector<TypeDelta> DiffTypes(const std::vector<snapshot::TypeStat>& before,
                                 const std::vector<snapshot::TypeStat>& after) {
  std::unordered_map<std::string, size_t> row_of;
  std::vector<TypeDelta> rows;
  auto row = [&](const std::string& name) -> TypeDelta& {
    auto [it, inserted] = row_of.try_emplace(name, rows.size());
    if (inserted) rows.push_back(TypeDelta{.name = name});
    return rows[it->second];
  };
  for (const auto& t : before) {
    TypeDelta& r = row(t.name);
    r.count_before += static_cast<int64_t>(t.count);
    r.bytes_before += static_cast<int64_t>(t.bytes);
  }
  for (const auto& t : after) {
    TypeDelta& r = row(t.name);
    r.count_after += static_cast<int64_t>(t.count);
    r.bytes_after += static_cast<int64_t>(t.bytes);
  }
  std::sort(rows.begin(), rows.end(), [](const TypeDelta& a, const TypeDelta& b) {
    if (a.bytes_delta() != b.bytes_delta()) return a.bytes_delta() > b.bytes_delta();
    if (a.count_delta() != b.count_delta()) return a.count_delta() > b.count_delta();
    return a.name < b.name;
  });
  return rows;
}

}  // namespace tidemark::diff
