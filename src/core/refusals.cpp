#include "core/refusals.hpp"

#include <fmt/format.h>

#include "core/metrics.hpp"

namespace gost {

Refusals::Refusals(log::Logger log, std::string service, std::string listener)
    : log_(std::move(log)), service_(std::move(service)), listener_(std::move(listener)) {}

std::shared_ptr<Refusals> Refusals::of_node(log::Logger log, std::string chain, std::string node,
                                            std::string dialer, std::string addr) {
  auto r = std::make_shared<Refusals>(std::move(log), std::move(chain), std::move(node));
  r->dialer_ = std::move(dialer);
  r->addr_ = std::move(addr);
  return r;
}

void Refusals::add(std::string_view why) {
  total_.fetch_add(1, std::memory_order_relaxed);
  const bool node = !dialer_.empty();
  if (auto* m = metrics::global()) {
    if (node)
      m->node_stream_refused(service_, listener_);
    else
      m->stream_refused(service_, listener_);
  }
  std::uint64_t n = 0;
  {
    std::lock_guard lock(mu_);
    ++unreported_;
    auto now = std::chrono::steady_clock::now();
    if (last_ != std::chrono::steady_clock::time_point{} && now - last_ < std::chrono::seconds(1))
      return;
    last_ = now;
    n = unreported_;
    unreported_ = 0;
  }
  if (node)
    log_.warn(fmt::format("{}: {} stream{} refused by {} ({})", dialer_, n, n == 1 ? "" : "s",
                          addr_, why));
  else
    log_.warn(fmt::format("{}: {} stream{} refused ({}); clients may retry", listener_, n,
                          n == 1 ? "" : "s", why));
}

}  // namespace gost
