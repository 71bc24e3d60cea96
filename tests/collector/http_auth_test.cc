#include "collector/http_auth.h"

#include <gtest/gtest.h>

#include "collector/http_host.h"
#include "collector/rate_limiter.h"

namespace tidemark::collector {
namespace {

TEST(BearerAuth, OnlyTheExactTokenWithTheBearerSchemeIsAllowed) {
  const BearerAuth auth("s3cret-token-0123456789");
  ASSERT_TRUE(auth.Enabled());
  EXPECT_TRUE(auth.Allows("Bearer s3cret-token-0123456789"));
  EXPECT_TRUE(auth.Allows("bearer s3cret-token-0123456789"));  // The scheme's case is free.
  EXPECT_FALSE(auth.Allows("Bearer s3cret-token-012345678"));  // One character short.
  EXPECT_FALSE(auth.Allows("Bearer s3cret-token-01234567890"));
  EXPECT_FALSE(auth.Allows("Bearer S3CRET-TOKEN-0123456789"));  // The token's case is not.
  EXPECT_FALSE(auth.Allows("Basic s3cret-token-0123456789"));
  EXPECT_FALSE(auth.Allows("s3cret-token-0123456789"));
  EXPECT_FALSE(auth.Allows("Bearer "));
  EXPECT_FALSE(auth.Allows(""));
}

TEST(BearerAuth, NoTokenMeansDisabled) { EXPECT_FALSE(BearerAuth("").Enabled()); }

TEST(RateLimiter, OneEventPerKeyPerIntervalWithTheWaitSaid) {
  RateLimiter limiter(/*interval_ns=*/1000, /*max_keys=*/10);
  EXPECT_FALSE(limiter.Acquire("a", 0));
  EXPECT_EQ(limiter.Acquire("a", 400), 600);
  EXPECT_FALSE(limiter.Acquire("b", 400));  // Another key is its own.
  EXPECT_FALSE(limiter.Acquire("a", 1000));
  EXPECT_EQ(limiter.Acquire("a", 1001), 999);
}

TEST(RateLimiter, AFullTableForgetsExpiredKeysElseRefusesAndCounts) {
  RateLimiter limiter(/*interval_ns=*/1000, /*max_keys=*/2);
  EXPECT_FALSE(limiter.Acquire("a", 0));
  EXPECT_FALSE(limiter.Acquire("b", 500));
  EXPECT_TRUE(limiter.Acquire("c", 600));  // Full, and neither has expired.
  EXPECT_EQ(limiter.overflows(), 1u);
  EXPECT_FALSE(limiter.Acquire("c", 1200));  // "a" expired and was forgotten.
  EXPECT_TRUE(limiter.Acquire("b", 1300));   // "b" still remembered.
  EXPECT_EQ(limiter.overflows(), 1u);
}

TEST(RateLimiter, AnEventReleasedUsesUpNoInterval) {
  // A refused snapshot request (409: the agent has no connection) must not make the next one
  // wait the whole http.snapshot_interval.
  RateLimiter limiter(/*interval_ns=*/1000, /*max_keys=*/10);
  EXPECT_FALSE(limiter.Acquire("a", 0));
  limiter.Release("a", 0);
  EXPECT_FALSE(limiter.Acquire("a", 10));
  EXPECT_EQ(limiter.Acquire("a", 20), 990);
  limiter.Release("a", 20);  // Not the event recorded: nothing undone.
  EXPECT_EQ(limiter.Acquire("a", 30), 980);
}

TEST(HostCheck, LoopbackNamesTheListenAddressAndTheAllowedOnesOnly) {
  const HostCheck check("127.0.0.1:7879", {"tidemark.internal", "[fd00::1]"});
  for (const char* host :
       {"localhost", "LOCALHOST:7879", "localhost.", "127.0.0.1:7879", "127.1.2.3", "[::1]:80",
        "tidemark.internal", "Tidemark.Internal:8", "[fd00::1]:7879", ""}) {
    EXPECT_TRUE(check.Allows(host)) << host;
  }
  for (const char* host : {"evil.example", "evil.example:7879", "localhost.evil.example",
                           "10.0.0.1", "[::2]", "tidemark.internal.evil", "0.0.0.0"}) {
    EXPECT_FALSE(check.Allows(host)) << host;
  }
}

}  // namespace
}  // namespace tidemark::collector
