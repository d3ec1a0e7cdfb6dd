// A service's traffic limiter whose limits come from GOST's HTTP plugin (go-gost/x
// limiter/traffic/plugin and limiter/traffic/cache; docs/ARCHITECTURE.md "Limiters"): the
// service scope (one pair of buckets shared by the service's connections, asked at most once per
// refresh period) and the connection scope (a connection's own buckets, asked when it opens).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "core/asio.hpp"
#include "policy/limiter.hpp"
#include "source/plugin.hpp"

namespace gost::app {

class TrafficPluginLimiter {
 public:
  // `scope`: GOST's `limiter.scope` ("" both, "service", "conn"; "client" asks nothing here).
  // `refresh`: `limiter.refreshInterval` (0: 30 s; at least 1 s), how long an answer of the
  // service scope is used before it is asked again.
  TrafficPluginLimiter(source::PluginOptions plugin, std::string service, std::string scope,
                       std::chrono::nanoseconds refresh);

  // The budgets of a connection from `src` ("ip:port") over `network`: null for a direction
  // without a limit (the stream is then not wrapped and keeps the splice path). Runs on the
  // connection's worker; the plugin is asked there, asynchronously.
  awaitable<policy::TrafficLimiter::Throttles> for_connection(std::string network, std::string src);

 private:
  struct Buckets {
    source::TrafficAnswer limits;
    std::shared_ptr<policy::TokenBucket> in, out;
  };
  static Buckets make_buckets(const source::TrafficAnswer& a);
  awaitable<Buckets> service_buckets(const std::string& network);

  source::PluginOptions plugin_;
  std::string service_, scope_;
  std::chrono::nanoseconds refresh_;
  std::mutex mu_;            // the service scope's answer, shared by the workers
  bool asked_ = false;       // an answer came
  bool refreshing_ = false;  // a connection is asking again
  policy::Clock::time_point expires_{};
  Buckets shared_;
};

}  // namespace gost::app
