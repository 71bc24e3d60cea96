// What a graph diff says of a leak alert: holders, what the leak is made of, the note.
#include "collector/diagnosis.h"

#include <gtest/gtest.h>

namespace tidemark::collector {
namespace {

analysis::GraphDiffResult PayloadLeak() {
  analysis::GraphDiffResult r;
  r.seconds = 2.5;
  analysis::Holder records;
  records.path = "app.RECORDS";
  records.description = "list@0x10";
  records.count = 300;
  records.bytes = 60'000;
  records.outermost_type = "app.Record";
  records.outermost_count = 300;
  records.outermost_bytes = 96'000;
  r.groups.push_back({"bytes", 300, 60'000, {records}});
  analysis::Holder self = records;
  self.outermost_type = "app.Record";
  r.groups.push_back({"app.Record", 300, 16'800, {self}});
  return r;
}

TEST(Diagnose, NamesTheHolderOfTheAlertsTypeAndWhatTheLeakIsMadeOf) {
  const Diagnosis d = Diagnose(PayloadLeak(), "bytes", true, false);
  ASSERT_EQ(d.holders.size(), 1u);
  EXPECT_EQ(d.holders[0].path, "app.RECORDS");
  EXPECT_EQ(d.type, "app.Record");
  EXPECT_NE(d.note.find("300 new bytes objects (60000 bytes) between two graph snapshots 2.5 s"),
            std::string::npos)
      << d.note;
  EXPECT_NE(d.note.find("inside 300 new app.Record objects retaining 96000 bytes"),
            std::string::npos)
      << d.note;
}

TEST(Diagnose, AnAlertOnTheOutermostTypeIsMadeOfItself) {
  const Diagnosis d = Diagnose(PayloadLeak(), "app.Record", true, false);
  EXPECT_EQ(d.type, "app.Record");
  EXPECT_EQ(d.note.find("inside"), std::string::npos) << d.note;
}

TEST(Diagnose, SaysWhenTheSummariesShowedNoGrowthOrListsWereCapped) {
  const Diagnosis step = Diagnose(PayloadLeak(), "bytes", false, true);
  EXPECT_NE(step.note.find("no growth between them (a leak in steps?)"), std::string::npos);
  EXPECT_NE(step.note.find("holders may be incomplete"), std::string::npos);
  const Diagnosis none = Diagnose({}, "bytes", false, false);
  EXPECT_TRUE(none.holders.empty());
  EXPECT_EQ(none.note,
            "no new objects between the two graph snapshots: the summaries showed no growth "
            "between them (a leak in steps?)");
}

TEST(Diagnose, AnAlertTypeWithNoNewObjectsFallsBackToTheLargestGroup) {
  const Diagnosis d = Diagnose(PayloadLeak(), "str", true, false);
  ASSERT_EQ(d.holders.size(), 1u);
  EXPECT_EQ(d.type, "app.Record");
}

}  // namespace
}  // namespace tidemark::collector
