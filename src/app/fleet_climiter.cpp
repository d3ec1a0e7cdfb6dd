#include "app/fleet_climiter.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>

#include "source/loader.hpp"

namespace gost::app {
namespace {

// KEYS: the counters; ARGV: member, ttl (ms), then one limit per key. Redis' own clock, so the
// instances' clocks do not matter.
constexpr const char* kAdmit = R"(local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  if redis.call('ZCARD', k) >= tonumber(ARGV[i + 2]) then return 0 end
end
for i, k in ipairs(KEYS) do
  redis.call('ZADD', k, now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', k, ARGV[2])
end
return 1)";

// KEYS: counters; ARGV: ttl (ms), then the member for each key (XX: a member already removed
// stays removed).
constexpr const char* kRefresh = R"(local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, k in ipairs(KEYS) do
  redis.call('ZADD', k, 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call('PEXPIRE', k, ARGV[1])
end
return 1)";

constexpr const char* kRelease = R"(for i, k in ipairs(KEYS) do redis.call('ZREM', k, ARGV[1]) end
return 1)";

std::vector<std::string> script(const char* body, const std::vector<std::string>& keys) {
  std::vector<std::string> argv{"EVAL", body, std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  return argv;
}

std::string random_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

}  // namespace

FleetConnCounter::FleetConnCounter(Options o)
    : o_(std::move(o)),
      instance_(random_id()),
      outage_(log::root().with({{"kind", "climiter"}, {"service", o_.service}}),
              fmt::format("climiter.redis {}", o_.redis.addr),
              "the fleet count is not checked while it fails; the local limit still applies") {}

std::shared_ptr<FleetConnCounter> FleetConnCounter::make(Options o) {
  auto c = std::make_shared<FleetConnCounter>(std::move(o));
  const auto period =
      std::max<std::chrono::milliseconds>(c->o_.ttl / 3, std::chrono::milliseconds(100));
  asio::co_spawn(source::executor(), refresh_loop(c, period), asio::detached);
  return c;
}

awaitable<std::shared_ptr<void>> FleetConnCounter::admit(std::string client_ip,
                                                         std::int64_t client_limit,
                                                         std::int64_t service_limit) {
  const std::string prefix = fmt::format("{}:{}", o_.redis.key, o_.service);
  std::vector<std::string> keys, limits;
  if (client_limit > 0) {
    keys.push_back(fmt::format("{}:ip:{}", prefix, client_ip));
    limits.push_back(std::to_string(client_limit));
  }
  if (service_limit > 0) {
    keys.push_back(prefix + ":$");
    limits.push_back(std::to_string(service_limit));
  }
  auto self = shared_from_this();
  auto keep = std::shared_ptr<void>(self.get(), [](void*) {});  // admitted, nothing counted
  if (keys.empty()) co_return keep;
  const std::string member = fmt::format("{}:{}", instance_, next_.fetch_add(1));
  auto argv = script(kAdmit, keys);
  argv.push_back(member);
  argv.push_back(std::to_string(o_.ttl.count()));
  argv.insert(argv.end(), limits.begin(), limits.end());
  {
    std::lock_guard lock(mu_);  // refreshed from now on, even while the answer is on its way
    open_.emplace(member, keys);
  }
  std::int64_t admitted = 1;
  try {
    admitted = co_await source::redis_call(o_.redis, argv);
    outage_.ok();
  } catch (const std::exception& e) {
    outage_.failed(error_text(e));
  }
  if (!admitted) {
    std::lock_guard lock(mu_);
    open_.erase(member);
    co_return nullptr;
  }
  co_return std::shared_ptr<void>(self.get(), [self, member](void*) { self->release(member); });
}

void FleetConnCounter::release(const std::string& member) {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    auto it = open_.find(member);
    if (it == open_.end()) return;
    keys = std::move(it->second);
    open_.erase(it);
  }
  auto argv = script(kRelease, keys);
  argv.push_back(member);
  // On the source thread: a closing connection never waits for Redis.
  asio::co_spawn(
      source::executor(),
      [o = o_.redis, argv = std::move(argv)]() -> awaitable<void> {
        try {
          co_await source::redis_call(o, argv);
        } catch (const std::exception&) {  // its member expires after the ttl
        }
      },
      asio::detached);
}

awaitable<void> FleetConnCounter::refresh_loop(std::weak_ptr<FleetConnCounter> weak,
                                               std::chrono::milliseconds period) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_after(period);
    co_await timer.async_wait(use_nothrow);
    auto self = weak.lock();
    if (!self) co_return;
    std::vector<std::string> keys, members;
    {
      std::lock_guard lock(self->mu_);
      for (const auto& [member, ks] : self->open_)
        for (const auto& k : ks) {
          keys.push_back(k);
          members.push_back(member);
        }
    }
    if (keys.empty()) continue;
    auto argv = script(kRefresh, keys);
    argv.push_back(std::to_string(self->o_.ttl.count()));
    argv.insert(argv.end(), members.begin(), members.end());
    auto redis = self->o_.redis;
    self.reset();  // the counter may go while Redis answers
    try {
      co_await source::redis_call(redis, argv);
    } catch (const std::exception&) {
    }
  }
}

}  // namespace gost::app
