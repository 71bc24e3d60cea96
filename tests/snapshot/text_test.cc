#include "snapshot/text.h"

#include <gtest/gtest.h>

namespace tidemark::snapshot {
namespace {

TEST(Text, Utf8IsTellsWellFormedFromEveryKindOfMalformed) {
  EXPECT_TRUE(IsUtf8(""));
  EXPECT_TRUE(IsUtf8("dict"));
  EXPECT_TRUE(IsUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d"));  // é € 🐍
  EXPECT_FALSE(IsUtf8("bad\xff\xfename"));
  EXPECT_FALSE(IsUtf8("\xc3"));              // Truncated.
  EXPECT_FALSE(IsUtf8("\xc0\xaf"));          // Overlong '/'.
  EXPECT_FALSE(IsUtf8("\xed\xa0\x80"));      // A surrogate.
  EXPECT_FALSE(IsUtf8("\xf4\x90\x80\x80"));  // Past U+10FFFF.
  EXPECT_FALSE(IsUtf8("\xe2\x28\xa1"));      // A continuation byte missing.
}

TEST(Text, AnAgentNamePartHasNoSeparatorAndIsNamedWhenWrong) {
  EXPECT_EQ(WhyNotAName("checkout"), "");
  EXPECT_EQ(WhyNotAName("caf\xc3\xa9"), "");
  EXPECT_EQ(WhyNotAName("pay/eu"), "holds '/' (a separator of agent names)");
  EXPECT_EQ(WhyNotAName("web@1"), "holds '@' (a separator of agent names)");
  EXPECT_EQ(WhyNotAName(""), "is empty");
  EXPECT_EQ(WhyNotAName("a\nb"), "holds a control character");
  EXPECT_EQ(WhyNotAName("bad\xff"), "is not valid UTF-8");
  EXPECT_EQ(WhyNotAName(std::string(256, 'x')), "is longer than 255 bytes");
}

}  // namespace
}  // namespace tidemark::snapshot
