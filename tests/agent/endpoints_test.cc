#include "agent/endpoints.h"

#include <gtest/gtest.h>

#include <map>

namespace tidemark::agent {
namespace {

const std::vector<std::string> kThree = {"tcp://a:7878", "tcp://b:7878", "tcp://c:7878"};

std::string Instance(int i) {
  return "api/web-" + std::to_string(i % 50) + "/" + std::to_string(1000 + i) + "@1796000000";
}

TEST(Endpoints, AListIsSplitAtCommasWithBlanksAndEmptiesDropped) {
  EXPECT_EQ(SplitEndpoints(" tcp://a:1, tcp://b:2 ,,tcp://c:3,"),
            (std::vector<std::string>{"tcp://a:1", "tcp://b:2", "tcp://c:3"}));
  EXPECT_EQ(SplitEndpoints("tcp://a:1"), (std::vector<std::string>{"tcp://a:1"}));
  EXPECT_TRUE(SplitEndpoints(" , ").empty());
}

TEST(Endpoints, EachInstanceGetsItsOwnOrderTheSameEveryTimeWhateverTheListOrder) {
  const auto order = RendezvousOrder(kThree, Instance(7));
  EXPECT_EQ(RendezvousOrder({kThree[2], kThree[0], kThree[1]}, Instance(7)), order);
  EXPECT_EQ(order.size(), 3u);
}

TEST(Endpoints, HomesSpreadEvenlyAndRemovingOneMovesOnlyItsAgents) {
  std::map<std::string, int> homes;
  int moved_elsewhere = 0;
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    const auto order = RendezvousOrder(kThree, Instance(i));
    ++homes[order[0]];
    const auto without_b = RendezvousOrder({kThree[0], kThree[2]}, Instance(i));
    // An agent whose home was not b keeps it; b's agents go to their second choice.
    if (order[0] != "tcp://b:7878" && without_b[0] != order[0]) ++moved_elsewhere;
    if (order[0] == "tcp://b:7878") {
      EXPECT_EQ(without_b[0], order[1]);
    }
  }
  EXPECT_EQ(moved_elsewhere, 0);
  for (const auto& [endpoint, count] : homes) {
    EXPECT_GT(count, n / 3 - n / 15) << endpoint;  // Within 20% of a third.
    EXPECT_LT(count, n / 3 + n / 15) << endpoint;
  }
}

}  // namespace
}  // namespace tidemark::agent
