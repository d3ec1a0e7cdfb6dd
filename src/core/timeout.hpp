// Time limits for waits (docs/ARCHITECTURE.md "Errors, limits and logs": every wait has a timeout).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <variant>

#include "core/asio.hpp"

namespace gost {

// Runs `on_expire` (typically stream.close()) if still alive when the duration elapses. A zero or
// negative duration disables it. Destroying the Deadline disarms it.
class Deadline {
 public:
  Deadline(asio::any_io_executor ex, std::chrono::nanoseconds d, std::function<void()> on_expire)
      : timer_(ex), alive_(std::make_shared<bool>(true)) {
    if (d.count() <= 0) return;
    timer_.expires_after(d);
    timer_.async_wait([alive = alive_, f = std::move(on_expire)](error_code ec) {
      if (!ec && *alive) f();
    });
  }
  ~Deadline() {
    *alive_ = false;
    timer_.cancel();
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

 private:
  asio::steady_timer timer_;
  std::shared_ptr<bool> alive_;
};

// Awaits `op`, cancelling it and throwing timed_out when `d` elapses first (d <= 0: no limit).
template <class T>
awaitable<T> with_timeout(awaitable<T> op, std::chrono::nanoseconds d) {
  if (d.count() <= 0) co_return co_await std::move(op);
  auto ex = co_await asio::this_coro::executor;
  asio::cancellation_signal cancel;
  auto fired = std::make_shared<bool>(false);
  asio::steady_timer timer(ex, d);
  timer.async_wait([&cancel, fired](error_code ec) {
    if (ec) return;
    *fired = true;
    cancel.emit(asio::cancellation_type::terminal);
  });
  try {
    T result = co_await asio::co_spawn(
        ex, std::move(op), asio::bind_cancellation_slot(cancel.slot(), asio::use_awaitable));
    timer.cancel();
    co_return result;
  } catch (const system_error&) {
    if (!*fired) throw;
  }
  throw system_error(asio::error::timed_out);
}

}  // namespace gost
