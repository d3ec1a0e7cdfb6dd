// A service's traffic limiter whose limits come from GOST's HTTP plugin (go-gost/x
// limiter/traffic/plugin and limiter/traffic/cache; docs/ARCHITECTURE.md "Limiters"): the
// service scope (one pair of buckets shared by the service's connections, asked at most once per
// refresh period) and the connection scope (a connection's own buckets). As GOST's cache, which
// its connections consult on every read and write, a limited connection asks again once per
// refresh period while it lasts and keeps to the new limits.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "core/asio.hpp"
#include "policy/limiter.hpp"
#include "source/plugin.hpp"

namespace gost::app {

class TrafficPluginLimiter : public std::enable_shared_from_this<TrafficPluginLimiter> {
 public:
  // `scope`: GOST's `limiter.scope` ("" both, "service", "conn"; "client" asks nothing here).
  // `refresh`: `limiter.refreshInterval` (0: 30 s; at least 1 s), how long an answer of the
  // service scope is used before it is asked again.
  TrafficPluginLimiter(source::PluginOptions plugin, std::string service, std::string scope,
                       std::chrono::nanoseconds refresh);

  // The budgets of a connection from `src` ("ip:port") over `network`: both null when nothing
  // limits it (the stream is then not wrapped and keeps the splice path, also when a later answer
  // would limit it). Runs on the connection's worker; the plugin is asked there, asynchronously,
  // and again there once per refresh period while a budget is used.
  awaitable<policy::TrafficLimiter::Throttles> for_connection(std::string network, std::string src);

  struct Buckets {
    source::TrafficAnswer limits;
    std::shared_ptr<policy::TokenBucket> in, out;
  };
  struct Conn;

 private:
  static Buckets make_buckets(const source::TrafficAnswer& a);
  awaitable<Buckets> service_buckets(const std::string& network);
  // Asks for a connection's limits: the service scope's buckets and its own (kept from `c` while
  // the answer is unchanged).
  awaitable<void> ask(Conn& c);

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
