#include "diff/sites.h"

#include <gtest/gtest.h>

namespace tidemark::diff {
namespace {

// A snapshot whose sites say: `Session` objects from login (called from post) and buffers
// from the same place, with the given estimated bytes.
snapshot::Snapshot WithSites(uint64_t session_bytes, uint64_t other_bytes) {
  snapshot::Snapshot s;
  s.types = {{"app.Session", 10, 1000, 100}, {"str", 5, 200, 40}};
  snapshot::Sites& sites = s.sites;
  sites.recorded = true;
  sites.strings = {"app/auth.py", "login", "app/views.py", "post", "app/other.py", "other"};
  sites.frames = {{0, 1, 42}, {2, 3, 88}, {4, 5, 7}};
  sites.stacks = {{0, 1}, {2}, {}};
  sites.rows = {{0, 0, session_bytes, session_bytes / 100},
                {0, 1, other_bytes, other_bytes / 100},
                {snapshot::Sites::kNoObject, 2, 64, 1},
                {0, 0, 100, 1}};  // The same site twice (as two sampler stacks): one row.
  return s;
}

TEST(Sites, RowsNameTypesAndStacksAndMergeTheSameSite) {
  const std::vector<SiteRow> rows = SiteRows(WithSites(9000, 500));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].type, "app.Session");
  EXPECT_EQ(rows[0].bytes, 9100u);
  EXPECT_EQ(DescribeSite(rows[0].stack),
            "app/auth.py:42 in login (called from app/views.py:88 in post)");
  EXPECT_EQ(rows[2].type, "");
  EXPECT_EQ(DescribeSite(rows[2].stack), "(no Python stack)");
}

TEST(Sites, GrowthLineNamesTheSiteWithTheLargestShareOfTheTypesGrowth) {
  const auto a = SiteRows(WithSites(1000, 1000));
  const auto b = SiteRows(WithSites(10200, 1800));  // +9200 at login, +800 elsewhere.
  EXPECT_EQ(GrowthSiteLine(a, b, "app.Session"),
            "92% of the new app.Session bytes were allocated at app/auth.py:42 in login (called "
            "from app/views.py:88 in post)");
  EXPECT_EQ(GrowthSiteLine(a, b, "str"), "");  // No site of it grew.
  EXPECT_EQ(GrowthSiteLine(b, a, "app.Session"), "");
  const std::vector<SiteDelta> deltas = DiffSites(a, b);
  ASSERT_FALSE(deltas.empty());
  EXPECT_EQ(deltas[0].bytes_delta(), 9200);
}

TEST(Sites, FoldedStacksRunOutermostFirstAndEndWithTheType) {
  const std::string folded = FoldedSites(SiteRows(WithSites(9000, 500)));
  EXPECT_NE(folded.find("post (app/views.py:88);login (app/auth.py:42);app.Session 9100\n"),
            std::string::npos)
      << folded;
  EXPECT_NE(folded.find("(no Python stack);(no object) 64\n"), std::string::npos) << folded;
}

TEST(Sites, ASnapshotWithoutSamplingHasNoRows) {
  EXPECT_TRUE(SiteRows(snapshot::Snapshot{}).empty());
}

}  // namespace
}  // namespace tidemark::diff
