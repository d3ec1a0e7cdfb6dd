// A traffic limiter whose limits come from GOST's HTTP plugin (go-gost/x limiter/traffic/plugin
// and limiter/traffic/cache; docs/ARCHITECTURE.md "Limiters"). On a service: the service scope
// (one pair of buckets shared by the service's connections, asked at most once per refresh
// period) and the connection scope (a connection's own buckets). On a handler: GOST's client
// scope (one pair of buckets per authenticated client, shared by its tunnels, asked at most once
// per refresh period), which limits the tunnels the router dials. As GOST's cache, which its
// connections consult on every read and write, a limited connection asks again once per refresh
// period while it lasts and keeps to the new limits.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/asio.hpp"
#include "policy/limiter.hpp"
#include "source/plugin.hpp"

namespace gost::app {

class TrafficPluginLimiter : public std::enable_shared_from_this<TrafficPluginLimiter> {
 public:
  // `scope`: GOST's `limiter.scope` on a service ("" both, "service", "conn"), or "client" for a
  // handler's limiter. `refresh`: `limiter.refreshInterval` (0: 30 s; at least 1 s), how long an
  // answer is used before it is asked again.
  TrafficPluginLimiter(source::PluginOptions plugin, std::string service, std::string scope,
                       std::chrono::nanoseconds refresh);

  // The budgets of a connection from `src` ("ip:port") over `network` (scope "", "service" or
  // "conn"), or of a tunnel of `client` to `addr` (scope "client"): both null when nothing limits
  // it (the stream is then not wrapped and keeps the splice path, also when a later answer would
  // limit it). Runs on the connection's worker; the plugin is asked there, asynchronously, and
  // again there once per refresh period while a budget is used.
  awaitable<policy::TrafficLimiter::Throttles> for_connection(std::string network, std::string src,
                                                              std::string addr = {},
                                                              std::string client = {});

  struct Buckets {
    source::TrafficAnswer limits;
    std::shared_ptr<policy::TokenBucket> in, out;
  };
  struct Conn;

 private:
  // An answer shared by connections (the service scope, or one client's), and its age.
  struct Shared {
    bool asked = false;       // an answer came
    bool refreshing = false;  // a connection is asking again
    policy::Clock::time_point expires{}, used{};
    Buckets buckets;
  };
  static Buckets make_buckets(const source::TrafficAnswer& a);
  awaitable<Buckets> shared_buckets(std::shared_ptr<Shared> e, source::TrafficQuestion q);
  std::shared_ptr<Shared> client_entry(const std::string& client);
  // Asks for a connection's limits: the shared scope's buckets and its own (kept from `c` while
  // the answer is unchanged).
  awaitable<void> ask(Conn& c);

  source::PluginOptions plugin_;
  std::string service_, scope_;
  std::chrono::nanoseconds refresh_;
  std::mutex mu_;  // the shared answers, shared by the workers
  std::shared_ptr<Shared> service_scope_ = std::make_shared<Shared>();
  std::map<std::string, std::shared_ptr<Shared>> clients_;  // scope "client"
  std::size_t prune_at_ = 1024;
};

}  // namespace gost::app
