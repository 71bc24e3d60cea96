#include "agent/sample_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace tidemark::agent {
namespace {

TEST(SampleTable, FindsEveryInsertedAddressAndNothingElseThroughGrowthAndErasure) {
  SampleTable table(1 << 20);
  std::map<uint64_t, uint64_t> truth;
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200000; ++round) {
    const uint64_t address = 0x7f0000000000ull + (rng() % 50000) * 16;
    SampleTable::Sample removed;
    if (truth.count(address)) {
      ASSERT_TRUE(table.Erase(address, &removed));
      EXPECT_EQ(removed.size, truth[address]);
      truth.erase(address);
    } else if (rng() % 3 != 0) {
      ASSERT_TRUE(table.Insert(address, round, 1));
      truth[address] = round;
    } else {
      ASSERT_FALSE(table.Erase(address, &removed));  // Never sampled: not found.
    }
  }
  EXPECT_EQ(table.size(), truth.size());
  size_t seen = 0;
  table.ForEach([&](const SampleTable::Sample& s) {
    ++seen;
    EXPECT_EQ(truth.at(s.address), s.size);
  });
  EXPECT_EQ(seen, truth.size());
  EXPECT_LE(table.memory_bytes(), 4 * truth.size() * sizeof(SampleTable::Sample) + 65536);
}

TEST(SampleTable, IsBoundedAndCountsWhatItDrops) {
  SampleTable table(100);
  for (uint64_t i = 1; i <= 150; ++i) table.Insert(i * 16, 8, 0);
  EXPECT_EQ(table.size(), 100u);
  EXPECT_EQ(table.full_count(), 50u);
  size_t cleared = 0;
  table.Clear([&](const SampleTable::Sample&) { ++cleared; });
  EXPECT_EQ(cleared, 100u);
  SampleTable::Sample removed;
  EXPECT_FALSE(table.Erase(16, &removed));
}

TEST(StackTable, KeepsEachStackOnceAndForgetsUnusedOnesOnSweep) {
  StackTable stacks(2);
  int code_a = 0, code_b = 0, code_c = 0;
  const StackFrame a[] = {{&code_a, 10}, {&code_b, 20}};
  const StackFrame b[] = {{&code_c, 4}};
  bool added = false;
  const uint32_t id = stacks.Intern(a, &added);
  EXPECT_TRUE(added);
  EXPECT_EQ(stacks.Intern(a, &added), id);
  EXPECT_FALSE(added);
  const uint32_t other = stacks.Intern(b, &added);
  EXPECT_NE(other, id);
  EXPECT_EQ(stacks.Intern(std::span<const StackFrame>(a, 1), &added), StackTable::kNoStack);
  EXPECT_EQ(stacks.full_count(), 1u);  // Bounded at two stacks.
  stacks.Release(other);
  stacks.Release(id);  // `a` is still used once.
  std::vector<const void*> dropped;
  stacks.Sweep([&](const StackFrame& f) { dropped.push_back(f.code); });
  EXPECT_EQ(dropped, std::vector<const void*>{&code_c});
  EXPECT_EQ(stacks.size(), 1u);
  EXPECT_EQ(stacks.Frames(id).size(), 2u);
}

}  // namespace
}  // namespace tidemark::agent
