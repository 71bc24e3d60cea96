// RateLimiter: at most one event per key per interval (the query API's "graph snapshot now",
// per agent). The table of keys is bounded: past max_keys, keys whose interval has passed are
// forgotten; if none has, the event is refused and counted (overflows()) rather than the table
// growing.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace tidemark::collector {

class RateLimiter {
 public:
  RateLimiter(int64_t interval_ns, size_t max_keys);

  // nullopt: allowed (and recorded at now_ns). Otherwise the ns to wait before the next one.
  std::optional<int64_t> Acquire(const std::string& key, int64_t now_ns);

  // Undoes the event Acquire recorded at now_ns for `key` (it did not happen after all: the
  // agent could not be asked), so that it uses up no interval.
  void Release(const std::string& key, int64_t now_ns);

  uint64_t overflows() const;

 private:
  const int64_t interval_ns_;
  const size_t max_keys_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, int64_t> last_ns_;  // Guarded by mutex_.
  uint64_t overflows_ = 0;                            // Guarded by mutex_.
};

}  // namespace tidemark::collector
