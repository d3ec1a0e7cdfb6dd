// The streams a listener still refuses after holding what it could (issue 16: a burst must lose
// nothing silently): each one is counted in the metrics (gost_service_refused_streams_total) and
// reported by a warning, at most one line per second per listener with the number refused since
// the previous line. Thread-safe: PHT's server is shared by the workers of its service.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/log.hpp"

namespace gost {

class Refusals {
 public:
  // `service`: the metrics label (the listener's service); `listener`: its type ("h2", "pht"...).
  Refusals(log::Logger log, std::string service, std::string listener);
  // One stream refused, for `why` ("backlog full", "session closing", ...).
  void add(std::string_view why);
  std::uint64_t total() const { return total_.load(std::memory_order_relaxed); }

 private:
  log::Logger log_;
  std::string service_, listener_;
  std::atomic<std::uint64_t> total_{0};
  std::mutex mu_;
  std::uint64_t unreported_ = 0;
  std::chrono::steady_clock::time_point last_{};
};
using RefusalsPtr = std::shared_ptr<Refusals>;

}  // namespace gost
