// The streams a listener still refuses after holding what it could, and the streams a node's server
// refused to one of our dialers (issue 16: a burst must lose nothing silently): each one is counted
// in the metrics (gost_service_refused_streams_total, gost_chain_refused_streams_total) and
// reported by a warning, at most one line per second per listener (dialer) with the number refused
// since the previous line. Thread-safe: PHT's server is shared by the workers of its service, a
// dialer by every worker.
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
  // A dialer's: the streams the server at `addr` (node `node` of chain `chain`) refused; `dialer`
  // names it in the warning ("dialer mws").
  static std::shared_ptr<Refusals> of_node(log::Logger log, std::string chain, std::string node,
                                           std::string dialer, std::string addr);
  // One stream refused, for `why` ("backlog full", "session closing", ...).
  void add(std::string_view why);
  std::uint64_t total() const { return total_.load(std::memory_order_relaxed); }

 private:
  log::Logger log_;
  std::string service_, listener_;  // a node's: chain and node
  std::string dialer_, addr_;       // a node's only
  std::atomic<std::uint64_t> total_{0};
  std::mutex mu_;
  std::uint64_t unreported_ = 0;
  std::chrono::steady_clock::time_point last_{};
};
using RefusalsPtr = std::shared_ptr<Refusals>;

}  // namespace gost
