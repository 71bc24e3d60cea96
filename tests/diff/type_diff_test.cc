#include "diff/type_diff.h"

#include <gtest/gtest.h>

namespace tidemark::diff {
namespace {

using snapshot::TypeStat;

TEST(DiffTypes, LargestByteGrowthComesFirst) {
  std::vector<TypeStat> before = {{"dict", 10, 1000, 0}, {"app.Order", 5, 500, 0}};
  std::vector<TypeStat> after = {{"dict", 11, 1100, 0}, {"app.Order", 50, 5000, 0}};
  auto rows = DiffTypes(before, after);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].name, "app.Order");
  EXPECT_EQ(rows[0].bytes_delta(), 4500);
  EXPECT_EQ(rows[0].count_delta(), 45);
  EXPECT_EQ(rows[1].name, "dict");
}

TEST(DiffTypes, TypeMissingOnOneSideCountsAsZero) {
  auto rows = DiffTypes({{"gone", 3, 300, 0}}, {{"new", 2, 64, 0}});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].name, "new");
  EXPECT_EQ(rows[0].count_before, 0);
  EXPECT_EQ(rows[1].name, "gone");
  EXPECT_EQ(rows[1].bytes_delta(), -300);
}

}  // namespace
}  // namespace tidemark::diff
