// Per-type differences between two snapshots' type tables: what grew, by how much.
//
// Pure functions over values. Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "snapshot/snapshot.h"

namespace tidemark::diff {

struct TypeDelta {
  std::string name;
  int64_t count_before = 0;
  int64_t count_after = 0;
  int64_t bytes_before = 0;
  int64_t bytes_after = 0;

  int64_t count_delta() const { return count_after - count_before; }
  int64_t bytes_delta() const { return bytes_after - bytes_before; }
};

// Every type present in either table, largest byte growth first (then count growth, then
// name, so the order is total and stable). Types absent on one side count as zero there.
std::vector<TypeDelta> DiffTypes(const std::vector<snapshot::TypeStat>& before,
                                 const std::vector<snapshot::TypeStat>& after);

}  // namespace tidemark::diff
