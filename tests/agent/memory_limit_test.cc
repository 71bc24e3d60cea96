#include "agent/memory_limit.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agent/process_memory.h"

namespace tidemark::agent {
namespace {

namespace fs = std::filesystem;

// A fake cgroup tree under a fresh temporary directory, as the kernel lays it out.
class FakeCgroups : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("tidemark_cgroup_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void Write(const fs::path& relative, const std::string& text) {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
  }
  MemoryLimitOptions Options() const {
    MemoryLimitOptions o;
    o.proc_self_cgroup = (root_ / "proc_self_cgroup").string();
    o.cgroup_mount = (root_ / "sys").string();
    return o;
  }
  fs::path root_;
};

TEST_F(FakeCgroups, Version2CountsTheWorkingSetAgainstMemoryMax) {
  Write("cg/memory.current", "1000\n");
  Write("cg/memory.max", "2000\n");
  Write("cg/memory.stat", "anon 700\nfile 300\ninactive_file 200\nactive_file 100\n");
  Write("cg/memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n");
  MemoryLimitOptions o = Options();
  o.cgroup_dir = (root_ / "cg").string();
  auto r = MemorySource::Discover(o).Read();
  ASSERT_TRUE(r);
  EXPECT_STREQ(r->source, "cgroup2");
  EXPECT_EQ(r->current, 800u);  // 1000 - inactive_file 200.
  EXPECT_EQ(r->limit, 2000u);
  EXPECT_EQ(r->limit_hits, 7u);
  EXPECT_EQ(r->oom_kills, 1u);
}

TEST_F(FakeCgroups, Version2WithoutALimitReadsNothing) {
  Write("cg/memory.current", "1000\n");
  Write("cg/memory.max", "max\n");
  MemoryLimitOptions o = Options();
  o.cgroup_dir = (root_ / "cg").string();
  EXPECT_FALSE(MemorySource::Discover(o).Read());
}

TEST_F(FakeCgroups, Version1CountsUsageLessInactiveFileAgainstTheLimit) {
  Write("cg/memory.usage_in_bytes", "5000\n");
  Write("cg/memory.limit_in_bytes", "10000\n");
  Write("cg/memory.failcnt", "3\n");
  Write("cg/memory.stat", "cache 900\ntotal_cache 900\ntotal_inactive_file 1000\n");
  MemoryLimitOptions o = Options();
  o.cgroup_dir = (root_ / "cg").string();
  auto r = MemorySource::Discover(o).Read();
  ASSERT_TRUE(r);
  EXPECT_STREQ(r->source, "cgroup1");
  EXPECT_EQ(r->current, 4000u);
  EXPECT_EQ(r->limit, 10000u);
  EXPECT_EQ(r->limit_hits, 3u);
}

TEST_F(FakeCgroups, Version1UnlimitedIsNoLimit) {
  Write("cg/memory.usage_in_bytes", "5000\n");
  Write("cg/memory.limit_in_bytes", "9223372036854771712\n");
  MemoryLimitOptions o = Options();
  o.cgroup_dir = (root_ / "cg").string();
  EXPECT_FALSE(MemorySource::Discover(o).Read());
}

TEST_F(FakeCgroups, Version2FromProcSelfCgroupTheAncestorClosestToItsLimitCounts) {
  // The container's own cgroup has no limit; its pod's has (the kubelet's layout).
  Write("proc_self_cgroup", "0::/kubepods/pod1/ctr\n");
  Write("sys/cgroup.controllers", "cpu memory\n");
  Write("sys/kubepods/pod1/ctr/memory.current", "300\n");
  Write("sys/kubepods/pod1/ctr/memory.max", "max\n");
  Write("sys/kubepods/pod1/memory.current", "900\n");
  Write("sys/kubepods/pod1/memory.max", "1000\n");
  Write("sys/kubepods/memory.current", "5000\n");
  Write("sys/kubepods/memory.max", "100000\n");
  const MemorySource source = MemorySource::Discover(Options());
  EXPECT_NE(source.Describe().find("and 3 ancestors"), std::string::npos) << source.Describe();
  auto r = source.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->current, 900u);
  EXPECT_EQ(r->limit, 1000u);
}

TEST_F(FakeCgroups, Version1FromProcSelfCgroupFindsTheMemoryHierarchy) {
  Write("proc_self_cgroup", "5:devices:/x\n4:cpuacct,memory:/svc/a\n0::/\n");
  Write("sys/memory/memory.limit_in_bytes", "9223372036854771712\n");
  Write("sys/memory/memory.usage_in_bytes", "50000\n");
  Write("sys/memory/svc/a/memory.limit_in_bytes", "4096\n");
  Write("sys/memory/svc/a/memory.usage_in_bytes", "2048\n");
  auto r = MemorySource::Discover(Options()).Read();
  ASSERT_TRUE(r);
  EXPECT_STREQ(r->source, "cgroup1");
  EXPECT_EQ(r->current, 2048u);
  EXPECT_EQ(r->limit, 4096u);
}

TEST_F(FakeCgroups, InsideACgroupNamespaceTheMountIsTheProcessCgroup) {
  Write("proc_self_cgroup", "0::/\n");
  Write("sys/cgroup.controllers", "memory\n");
  Write("sys/memory.current", "10\n");
  Write("sys/memory.max", "100\n");
  auto r = MemorySource::Discover(Options()).Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->limit, 100u);
}

TEST_F(FakeCgroups, NoCgroupAndNoRssLimitReadsNothing) {
  EXPECT_FALSE(MemorySource::Discover(Options()).Read());
  EXPECT_EQ(MemorySource::Discover(Options()).Describe(), "none");
}

TEST_F(FakeCgroups, AnRssLimitIsCheckedAgainstTheResidentSetAndTheCloserOneWins) {
  Write("cg/memory.current", "10\n");
  Write("cg/memory.max", "1000000000000\n");
  MemoryLimitOptions o = Options();
  o.cgroup_dir = (root_ / "cg").string();
  o.rss_limit = ResidentBytes() * 2;
  auto r = MemorySource::Discover(o).Read();
  ASSERT_TRUE(r);
  EXPECT_STREQ(r->source, "rss");
  EXPECT_NEAR(r->share(), 0.5, 0.1);
}

TEST(PressureThresholds, EachFiresOnceUntilMemoryFallsBackBelowIt) {
  PressureThresholds t({90, 80});
  EXPECT_EQ(t.Cross(0.70), 0u);
  EXPECT_EQ(t.Cross(0.81), 80u);
  EXPECT_EQ(t.Cross(0.85), 0u);
  EXPECT_EQ(t.Cross(0.79), 0u);  // Within the re-arm band: still crossed.
  EXPECT_EQ(t.Cross(0.82), 0u);
  EXPECT_EQ(t.Cross(0.91), 90u);
  EXPECT_EQ(t.Cross(0.99), 0u);
  EXPECT_EQ(t.Cross(0.60), 0u);  // Far below both: re-armed.
  EXPECT_EQ(t.Cross(0.80), 80u);
}

TEST(PressureThresholds, AJumpPastSeveralFiresOnceWithTheHighest) {
  PressureThresholds t({80, 90});
  EXPECT_EQ(t.Cross(0.95), 90u);
  EXPECT_EQ(t.Cross(0.85), 0u);  // 80 counted as crossed by the jump.
}

TEST(PressureThresholds, ParsesPercentagesAndNamesWhatIsWrong) {
  std::string error;
  EXPECT_EQ(ParseThresholds("80, 90%", &error), (std::vector<uint32_t>{80, 90}));
  EXPECT_FALSE(ParseThresholds("80,abc", &error));
  EXPECT_NE(error.find("'abc'"), std::string::npos);
  EXPECT_FALSE(ParseThresholds("0", &error));
  EXPECT_FALSE(ParseThresholds("101", &error));
  EXPECT_FALSE(ParseThresholds("", &error));
}

}  // namespace
}  // namespace tidemark::agent
