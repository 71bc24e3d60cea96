#include "collector/rate_limiter.h"

#include <algorithm>

namespace tidemark::collector {

RateLimiter::RateLimiter(int64_t interval_ns, size_t max_keys)
    : interval_ns_(interval_ns), max_keys_(std::max<size_t>(max_keys, 1)) {}

std::optional<int64_t> RateLimiter::Acquire(const std::string& key, int64_t now_ns) {
  std::lock_guard lock(mutex_);
  auto found = last_ns_.find(key);
  if (found != last_ns_.end()) {
    const int64_t wait = found->second + interval_ns_ - now_ns;
    if (wait > 0) return wait;
    found->second = now_ns;
    return std::nullopt;
  }
  if (last_ns_.size() >= max_keys_) {
    std::erase_if(last_ns_, [&](const auto& e) { return e.second + interval_ns_ <= now_ns; });
    if (last_ns_.size() >= max_keys_) {
      ++overflows_;
      return interval_ns_;
    }
  }
  last_ns_.emplace(key, now_ns);
  return std::nullopt;
}

void RateLimiter::Release(const std::string& key, int64_t now_ns) {
  std::lock_guard lock(mutex_);
  // An earlier event it replaced had passed its interval already: forgetting the key is
  // the same as putting that one back.
  if (auto found = last_ns_.find(key); found != last_ns_.end() && found->second == now_ns) {
    last_ns_.erase(found);
  }
}

uint64_t RateLimiter::overflows() const {
  std::lock_guard lock(mutex_);
  return overflows_;
}

}  // namespace tidemark::collector
