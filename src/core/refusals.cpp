#include "core/refusals.hpp"

#include <fmt/format.h>

#include "core/metrics.hpp"

namespace gost {

Refusals::Refusals(log::Logger log, std::string service, std::string listener)
    : log_(std::move(log)), service_(std::move(service)), listener_(std::move(listener)) {}

void Refusals::add(std::string_view why) {
  total_.fetch_add(1, std::memory_order_relaxed);
  if (auto* m = metrics::global()) m->stream_refused(service_, listener_);
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
  log_.warn(fmt::format("{}: {} stream{} refused ({}); clients may retry", listener_, n,
                        n == 1 ? "" : "s", why));
}

}  // namespace gost
