#include "app/traffic_plugin.hpp"

#include <algorithm>
#include <vector>

namespace gost::app {

TrafficPluginLimiter::TrafficPluginLimiter(source::PluginOptions plugin, std::string service,
                                           std::string scope, std::chrono::nanoseconds refresh)
    : plugin_(std::move(plugin)), service_(std::move(service)), scope_(std::move(scope)) {
  // go-gost/x limiter/traffic/cache: 30 s by default, at least 1 s.
  if (refresh.count() == 0) refresh = std::chrono::seconds(30);
  refresh_ = std::max<std::chrono::nanoseconds>(refresh, std::chrono::seconds(1));
}

TrafficPluginLimiter::Buckets TrafficPluginLimiter::make_buckets(const source::TrafficAnswer& a) {
  // xtraffic.NewLimiter(n): rate.NewLimiter(n, n), a burst equal to the rate; <= 0 is no limit.
  Buckets b{a, nullptr, nullptr};
  if (a.in > 0) b.in = std::make_shared<policy::TokenBucket>(double(a.in), double(a.in));
  if (a.out > 0) b.out = std::make_shared<policy::TokenBucket>(double(a.out), double(a.out));
  return b;
}

awaitable<TrafficPluginLimiter::Buckets> TrafficPluginLimiter::shared_buckets(
    std::shared_ptr<Shared> e, source::TrafficQuestion q) {
  {
    // Once answered, one connection asks again when the period is over while the others keep
    // using the answer; before the first answer every connection asks (GOST's cache does too).
    std::lock_guard lock(mu_);
    e->used = policy::Clock::now();
    if (e->asked && (e->refreshing || e->used < e->expires)) co_return e->buckets;
    e->refreshing = e->asked;
  }
  auto answer = co_await source::plugin_traffic_limits(plugin_, std::move(q));
  std::lock_guard lock(mu_);
  // The cache keeps the previous limits when a question fails (go-gost/x
  // limiter/traffic/cache), and its buckets while the limits stay the same.
  if (answer && (!e->asked || !(*answer == e->buckets.limits))) e->buckets = make_buckets(*answer);
  e->asked = e->asked || answer.has_value();
  e->refreshing = false;
  e->expires = policy::Clock::now() + refresh_;
  co_return e->buckets;
}

std::shared_ptr<TrafficPluginLimiter::Shared> TrafficPluginLimiter::client_entry(
    const std::string& client) {
  std::lock_guard lock(mu_);
  auto it = clients_.find(client);
  if (it != clients_.end()) return it->second;
  if (clients_.size() >= prune_at_) {  // clients unseen for two periods are forgotten
    auto old = policy::Clock::now() - 2 * refresh_;
    std::erase_if(clients_, [&](const auto& kv) {
      return !kv.second->refreshing && kv.second->used < old && kv.second.use_count() == 1;
    });
    prune_at_ = std::max<std::size_t>(1024, clients_.size() * 2);
  }
  return clients_.emplace(client, std::make_shared<Shared>()).first->second;
}

// A connection's limits: the current buckets of both scopes, asked again once per refresh period
// (from a budget check, on the connection's worker, while the connection keeps to the old ones).
struct TrafficPluginLimiter::Conn : std::enable_shared_from_this<Conn> {
  std::shared_ptr<TrafficPluginLimiter> owner;
  asio::any_io_executor ex;
  std::string network, src, addr, client;
  Buckets shared, own;     // the service's or the client's scope; the connection's
  bool asked_own = false;  // `own` holds an answer
  ThrottlePtr in, out;     // over the buckets of both scopes; null: that direction is unlimited
  policy::Clock::time_point next;
  bool asking = false;

  void build() {
    std::vector<std::shared_ptr<policy::TokenBucket>> i, o;
    for (const auto* b : {&shared, &own}) {
      if (b->in) i.push_back(b->in);
      if (b->out) o.push_back(b->out);
    }
    in = i.empty() ? nullptr : std::make_shared<policy::BucketThrottle>(std::move(i));
    out = o.empty() ? nullptr : std::make_shared<policy::BucketThrottle>(std::move(o));
    next = policy::Clock::now() + owner->refresh_;
  }
  void refresh_if_due(policy::Clock::time_point now) {
    if (asking || now < next) return;
    asking = true;
    asio::co_spawn(
        ex,
        [](std::shared_ptr<Conn> c) -> awaitable<void> {
          co_await c->owner->ask(*c);
          c->build();
          c->asking = false;
        }(shared_from_this()),
        asio::detached);
  }
};

namespace {

// One direction of a connection limited by the plugin.
class PluginThrottle final : public Throttle {
 public:
  PluginThrottle(std::shared_ptr<TrafficPluginLimiter::Conn> c, bool in)
      : c_(std::move(c)), in_(in) {}
  Budget check(std::size_t want, Clock::time_point now) override {
    c_->refresh_if_due(now);
    auto& t = in_ ? c_->in : c_->out;
    return t ? t->check(want, now) : Budget{want, {}};
  }
  void charge(std::size_t n, Clock::time_point now) override {
    auto& t = in_ ? c_->in : c_->out;
    if (t) t->charge(n, now);
  }

 private:
  std::shared_ptr<TrafficPluginLimiter::Conn> c_;
  bool in_;
};

}  // namespace

awaitable<void> TrafficPluginLimiter::ask(Conn& c) {
  if (scope_ == "client") {
    source::TrafficQuestion q{.service = service_,
                              .scope = "client",
                              .network = c.network,
                              .addr = c.addr,
                              .client = c.client,
                              .src = c.src};
    auto entry = client_entry(c.client);
    c.shared = co_await shared_buckets(std::move(entry), std::move(q));
    co_return;
  }
  if (scope_.empty() || scope_ == "service") {
    source::TrafficQuestion q{.service = service_, .scope = "service", .network = c.network};
    auto entry = service_scope_;  // a local: nothing temporary inside the co_await (GCC 12)
    c.shared = co_await shared_buckets(std::move(entry), std::move(q));
  }
  if (scope_.empty() || scope_ == "conn") {
    source::TrafficQuestion q{
        .service = service_, .scope = "conn", .network = c.network, .src = c.src};
    auto answer = co_await source::plugin_traffic_limits(plugin_, std::move(q));
    // As the shared scopes: a failed question keeps the limits, an unchanged answer the buckets.
    if (answer && (!c.asked_own || !(*answer == c.own.limits))) c.own = make_buckets(*answer);
    c.asked_own = c.asked_own || answer.has_value();
  }
}

awaitable<policy::TrafficLimiter::Throttles> TrafficPluginLimiter::for_connection(
    std::string network, std::string src, std::string addr, std::string client) {
  auto c = std::make_shared<Conn>();
  c->owner = shared_from_this();
  c->ex = co_await asio::this_coro::executor;
  c->network = std::move(network);
  c->src = std::move(src);
  c->addr = std::move(addr);
  c->client = std::move(client);
  co_await ask(*c);
  c->build();
  policy::TrafficLimiter::Throttles t;
  if (!c->in && !c->out) co_return t;
  t.in = std::make_shared<PluginThrottle>(c, true);
  t.out = std::make_shared<PluginThrottle>(std::move(c), false);
  co_return t;
}

}  // namespace gost::app
