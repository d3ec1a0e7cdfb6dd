// Beyond GOST (ours, opt-in): a connection limiter whose counts hold across a fleet of instances
// through one Redis (docs/ARCHITECTURE.md "Limiters", README "running a fleet"). A service's
// `climiter` lines give the limits (`$`: the service, `$$`/IP/CIDR: each client IP); with service
// metadata `climiter.redis`, every instance counts its open connections in Redis sorted sets
// (`<key>:<service>:$`, `<key>:<service>:ip:<ip>`), one member per open connection whose score is
// when it expires: an instance refreshes its members every ttl/3, so a crashed instance's
// connections stop counting after `ttl`. Admission is one Lua script (drop the expired members,
// count, add when under every limit: atomic across instances); a closed connection removes its
// members. Redis unreachable: admitted (the local limit still applies), logged once per outage.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "source/fetch.hpp"
#include "source/outage.hpp"

namespace gost::app {

class FleetConnCounter : public std::enable_shared_from_this<FleetConnCounter> {
 public:
  struct Options {
    source::RedisOptions redis;  // addr, db, username, password; `key` is the prefix
    std::string service;
    std::chrono::milliseconds ttl{30000};
  };
  // Starts the refresh loop on the source thread; it ends with the counter.
  static std::shared_ptr<FleetConnCounter> make(Options o);

  // A place for one more connection from `client_ip` within `client_limit` and `service_limit`
  // (0 = none) across the fleet: a holder that gives it back when dropped; null when refused.
  // Runs on the caller's executor (a worker).
  awaitable<std::shared_ptr<void>> admit(std::string client_ip, std::int64_t client_limit,
                                         std::int64_t service_limit);

  explicit FleetConnCounter(Options o);

 private:
  void release(const std::string& member);
  static awaitable<void> refresh_loop(std::weak_ptr<FleetConnCounter> weak,
                                      std::chrono::milliseconds period);

  Options o_;
  std::string instance_;  // random: members of different instances never collide
  std::atomic<std::uint64_t> next_{0};
  source::OutageLog outage_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::string>> open_;  // member → its keys
};

}  // namespace gost::app
