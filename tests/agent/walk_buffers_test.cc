#include "agent/walk_buffers.h"

#include <gtest/gtest.h>

#include "agent/process_memory.h"

namespace tidemark::agent {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// Each test runs in its own process (gtest_discover_tests): the last walk's figures start at 0.

TEST(WalkBuffers, BeforeAnyWalkRoomFollowsTheBlockCountOrElseTheRss) {
  EXPECT_FALSE(WalkedBefore());
  EXPECT_EQ(ExpectedObjects(0), size_t{1} << 16);
  EXPECT_EQ(ExpectedObjects(512 * kMiB), 512 * kMiB / 64);
  EXPECT_EQ(ExpectedObjects(512 * kMiB, 800'000), 900'000u);
}

TEST(WalkBuffers, BeforeAnyWalkABlockCountIsFaultedInAndAnRssGuessIsNot) {
  const uint64_t rss_before = ResidentBytes();
  WalkBuffers guessed = PrepareWalkBuffers(false, 1024 * kMiB);
  EXPECT_GE(guessed.addresses.capacity(), 1024 * kMiB / 64);
  EXPECT_LT(ResidentBytes() - rss_before, 4 * kMiB);  // 65,536 addresses: 512 KiB.
  WalkBuffers counted = PrepareWalkBuffers(false, 1024 * kMiB, 2'000'000);
  EXPECT_GE(ResidentBytes() - rss_before, 2'250'000u * 8 * 9 / 10);
}

TEST(WalkBuffers, RoomFollowsTheLastWalkScaledByTheRssGrowthUpToEightTimes) {
  NoteWalkedObjects(1'000'000, 100 * kMiB);
  EXPECT_EQ(ExpectedObjects(100 * kMiB), 1'125'000u);
  EXPECT_EQ(ExpectedObjects(50 * kMiB), 1'125'000u);    // A shrunk RSS: the last count.
  EXPECT_EQ(ExpectedObjects(200 * kMiB), 2'250'000u);   // Doubled.
  EXPECT_EQ(ExpectedObjects(5000 * kMiB), 9'000'000u);  // Capped at 8x.
}

TEST(WalkBuffers, APreparedGraphIsWrittenWithoutAPageFault) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer faults in its shadow of what is written";
#endif
  NoteWalkedObjects(2'000'000, 100 * kMiB);
  WalkBuffers b = PrepareWalkBuffers(true, 100 * kMiB);
  ASSERT_GE(b.addresses.capacity(), 2'000'000u);
  ASSERT_GE(b.graph.refs.capacity(), 6'000'000u);
  const uint64_t before = MinorFaults();
  // What a walk of the same heap writes: every column, two references per object.
  for (uint32_t i = 0; i < 2'000'000; ++i) {
    b.addresses.push_back(i);
    b.graph.type.push_back(i);
    b.graph.size.push_back(i);
    b.graph.length.push_back(i);
    b.graph.ref_begin.push_back(i);
    b.graph.refs.push_back(i);
    b.graph.refs.push_back(i);
    b.seen_ref_addresses.push_back(i);
  }
  // ~64 MB written: 16,000 pages had they not been faulted in beforehand.
  EXPECT_LT(MinorFaults() - before, 100u);
}

TEST(WalkBuffers, AnRssGrownByOtherMemoryFaultsInAtMostTwiceTheLastWalksColumns) {
  NoteWalkedObjects(1'000'000, 100 * kMiB);
  const uint64_t rss_before = ResidentBytes();
  // The RSS grew 8x, by something that is not objects: room for 9M, 2M faulted in.
  WalkBuffers b = PrepareWalkBuffers(false, 800 * kMiB);
  EXPECT_GE(b.addresses.capacity(), 9'000'000u);
  const uint64_t grown = ResidentBytes() - rss_before;
  EXPECT_GE(grown, 2'000'000u * 8 * 9 / 10);
  EXPECT_LE(grown, 2'000'000u * 8 * 11 / 10);
}

}  // namespace
}  // namespace tidemark::agent
