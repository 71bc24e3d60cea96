// What one graph diff says of a leak alert: the holders of its type's new objects, what the
// leak is made of (the outermost new type under the holder), and a note for people.
//
// Pure. Thread-safety: reentrant.
#pragma once

#include <string>
#include <vector>

#include "analysis/graph_diff.h"
#include "diff/detector.h"

namespace tidemark::collector {

struct Diagnosis {
  std::vector<diff::HeldBy> holders;
  std::string type;  // What the leak is made of (Alert::holders_type); "" if nothing is new.
  std::string note;
  std::string site;  // Where the new objects were allocated (diff::GrowthSiteLine), or "".
};

// `alert_type`'s group of new objects (else the largest group) and its holders. `grew`: the
// summaries showed growth between the two graphs; `capped`: an agent capped reference lists.
Diagnosis Diagnose(const analysis::GraphDiffResult& diff, const std::string& alert_type, bool grew,
                   bool capped);

// What holds each group of new objects, as the detector's causes (diff::Detector::SetCauses):
// one per group with a holder; `graphs` are the two snapshots diffed.
std::vector<diff::Cause> Causes(const analysis::GraphDiffResult& diff,
                                const std::vector<std::string>& graphs, bool grew, bool capped);

}  // namespace tidemark::collector
