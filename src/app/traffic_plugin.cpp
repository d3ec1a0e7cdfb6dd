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

awaitable<TrafficPluginLimiter::Buckets> TrafficPluginLimiter::service_buckets(
    const std::string& network) {
  {
    // Once answered, one connection asks again when the period is over while the others keep
    // using the answer; before the first answer every connection asks (GOST's cache does too).
    std::lock_guard lock(mu_);
    if (asked_ && (refreshing_ || policy::Clock::now() < expires_)) co_return shared_;
    refreshing_ = asked_;
  }
  source::TrafficQuestion q{.service = service_, .scope = "service", .network = network};
  auto answer = co_await source::plugin_traffic_limits(plugin_, std::move(q));
  std::lock_guard lock(mu_);
  // The cache keeps the previous limits when a question fails (go-gost/x
  // limiter/traffic/cache), and its buckets while the limits stay the same.
  if (answer && (!asked_ || !(*answer == shared_.limits))) shared_ = make_buckets(*answer);
  asked_ = asked_ || answer.has_value();
  refreshing_ = false;
  expires_ = policy::Clock::now() + refresh_;
  co_return shared_;
}

awaitable<policy::TrafficLimiter::Throttles> TrafficPluginLimiter::for_connection(
    std::string network, std::string src) {
  std::vector<std::shared_ptr<policy::TokenBucket>> in, out;
  if (scope_.empty() || scope_ == "service") {
    auto shared = co_await service_buckets(network);
    if (shared.in) in.push_back(shared.in);
    if (shared.out) out.push_back(shared.out);
  }
  if (scope_.empty() || scope_ == "conn") {
    source::TrafficQuestion q{.service = service_, .scope = "conn", .network = network, .src = src};
    auto answer = co_await source::plugin_traffic_limits(plugin_, std::move(q));
    if (answer) {
      auto own = make_buckets(*answer);
      if (own.in) in.push_back(own.in);
      if (own.out) out.push_back(own.out);
    }
  }
  policy::TrafficLimiter::Throttles t;
  if (!in.empty()) t.in = std::make_shared<policy::BucketThrottle>(std::move(in));
  if (!out.empty()) t.out = std::make_shared<policy::BucketThrottle>(std::move(out));
  co_return t;
}

}  // namespace gost::app
