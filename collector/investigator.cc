#include "collector/investigator.h"

namespace tidemark::collector {
namespace {

constexpr int64_t kMsToNs = 1'000'000;

}  // namespace

void Investigator::Start(const diff::Alert& alert, int64_t now, const Ask& ask) {
  auto [it, inserted] = investigations_.try_emplace(alert.id);
  if (!inserted) return;
  Investigation& inv = it->second;
  inv.agent = alert.agents.front();
  inv.type = alert.type;
  inv.started_ns = now;
  Request(alert.id, inv, now, ask);
}

void Investigator::Request(const std::string& alert_id, Investigation& inv, int64_t now,
                           const Ask& ask) {
  const bool second = inv.stage == Stage::kAwaitSecond;
  if (!second) {
    // Between investigations, not between the two graphs of one.
    auto last = last_request_.find(inv.agent);
    if (last != last_request_.end() && now - last->second < settings_.min_interval_ms * kMsToNs) {
      return;  // Asked again at a later Advance().
    }
  }
  if (!ask || !ask({inv.agent, alert_id, second, settings_.values})) {
    GiveUp(inv, "agent " + inv.agent + " has no open connection to this collector");
    return;
  }
  ++requests_;
  last_request_[inv.agent] = now;
  inv.requested_ns = now;
}

void Investigator::GiveUp(Investigation& inv, std::string why) {
  inv.stage = Stage::kDone;
  inv.first.clear();
  inv.failure = std::move(why);
  ++failures_;
}

bool Investigator::HoldFiring(const diff::Alert& alert) {
  auto inv = investigations_.find(alert.id);
  if (inv == investigations_.end() || inv->second.stage == Stage::kDone) return false;
  held_[alert.id] = alert;
  return true;
}

bool Investigator::Resolved(const std::string& alert_id) {
  investigations_.erase(alert_id);
  held_.erase(alert_id);
  return notified_.erase(alert_id) > 0;
}

void Investigator::Retain(const std::set<std::string>& active) {
  std::erase_if(investigations_, [&](const auto& e) { return !active.count(e.first); });
}

std::vector<Investigator::GraphPair> Investigator::OnGraph(const std::string& agent,
                                                           int64_t taken_ns,
                                                           const std::string& reference,
                                                           std::string_view message,
                                                           int64_t received_ns) {
  std::vector<GraphPair> pairs;
  for (auto& [id, inv] : investigations_) {
    if (inv.agent != agent) continue;
    if (inv.stage == Stage::kAwaitFirst && inv.requested_ns > 0) {
      inv.first = std::string(message);
      inv.first_reference = reference;
      inv.first_taken_ns = taken_ns;
      inv.first_received_ns = received_ns;
      inv.stage = Stage::kAwaitSecond;
      inv.requested_ns = 0;
      inv.second_due_ns = received_ns + settings_.gap_ms * kMsToNs;
    } else if (inv.stage == Stage::kAwaitSecond && inv.requested_ns > 0 &&
               taken_ns > inv.first_taken_ns) {
      inv.stage = Stage::kDiffing;
      pairs.push_back({id,
                       inv.type,
                       std::move(inv.first),
                       std::string(message),
                       {inv.first_reference, reference},
                       inv.grew});
      inv.first.clear();
    }
  }
  return pairs;
}

Investigator::Progress Investigator::Advance(int64_t now, const Ask& ask, const Grew& grew) {
  Progress progress;
  const int64_t wait = settings_.wait_ms * kMsToNs;
  for (auto& [id, inv] : investigations_) {
    const bool waiting = inv.stage == Stage::kAwaitFirst || inv.stage == Stage::kAwaitSecond;
    if (waiting && inv.requested_ns == 0) {
      if (inv.stage == Stage::kAwaitFirst) {
        Request(id, inv, now, ask);
      } else if (now >= inv.second_due_ns) {
        inv.grew = grew && grew(inv.agent, inv.type, inv.first_received_ns);
        if (inv.grew || now - inv.first_received_ns >= wait) Request(id, inv, now, ask);
      }
    } else if (waiting && now - inv.requested_ns > wait) {
      GiveUp(inv, "agent " + inv.agent + " sent no graph snapshot within " +
                      diff::HumanSeconds(wait / 1e9) + " of the request");
    }
    if (!inv.failure.empty()) {
      progress.failed.push_back({id, std::move(inv.failure)});
      inv.failure.clear();
    }
  }
  // Bounded by the agents asked within min_interval.
  const int64_t min_interval = settings_.min_interval_ms * kMsToNs;
  std::erase_if(last_request_, [&](const auto& e) { return now - e.second >= min_interval; });
  // Firing alerts held back for their holders go out at the deadline at the latest.
  for (auto it = held_.begin(); it != held_.end();) {
    auto inv = investigations_.find(it->first);
    if (inv == investigations_.end() || now - inv->second.started_ns > wait) {
      progress.release.push_back(std::move(it->second));
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  return progress;
}

Investigator::Finished Investigator::Finish(const std::string& alert_id) {
  if (auto inv = investigations_.find(alert_id); inv != investigations_.end()) {
    inv->second.stage = Stage::kDone;
    inv->second.first.clear();
  }
  return {held_.erase(alert_id) > 0, notified_.count(alert_id) > 0};
}

}  // namespace tidemark::collector
