#include "core/throttle.hpp"

#include <algorithm>

namespace gost {
namespace {

// What wait_readable() asks the budget for: the relay's largest read (core/buffer_pool).
constexpr std::size_t kReadWant = 64 * 1024;
// A throttle that asks to wait for no time would make the wait a busy loop.
constexpr auto kMinWait = std::chrono::milliseconds(1);

}  // namespace

ThrottledStream::ThrottledStream(StreamPtr inner, ThrottlePtr in, ThrottlePtr out)
    : inner_(std::move(inner)),
      in_(std::move(in)),
      out_(std::move(out)),
      read_timer_(inner_->executor()),
      write_timer_(inner_->executor()) {}

awaitable<std::size_t> ThrottledStream::read_some(asio::mutable_buffer buf, error_code& ec) {
  std::size_t allowed = buf.size();
  if (in_ && allowed > 0) {
    allowed = co_await budget(*in_, buf.size(), read_timer_, ec);
    if (ec) co_return 0;
  }
  std::size_t n = co_await inner_->read_some(asio::buffer(buf.data(), allowed), ec);
  if (in_ && n > 0) in_->charge(n, Throttle::Clock::now());
  co_return n;
}

awaitable<std::size_t> ThrottledStream::write_some(asio::const_buffer buf, error_code& ec) {
  std::size_t allowed = buf.size();
  if (out_ && allowed > 0) {
    allowed = co_await budget(*out_, buf.size(), write_timer_, ec);
    if (ec) co_return 0;
  }
  std::size_t n = co_await inner_->write_some(asio::buffer(buf.data(), allowed), ec);
  if (out_ && n > 0) out_->charge(n, Throttle::Clock::now());
  co_return n;
}

awaitable<void> ThrottledStream::wait_readable(error_code& ec) {
  if (in_) {
    co_await budget(*in_, kReadWant, read_timer_, ec);
    if (ec) co_return;
  }
  co_await inner_->wait_readable(ec);
}

void ThrottledStream::close() {
  closed_ = true;
  read_timer_.cancel();
  write_timer_.cancel();
  inner_->close();
}

awaitable<std::size_t> ThrottledStream::budget(Throttle& t, std::size_t want,
                                               asio::steady_timer& timer, error_code& ec) {
  for (;;) {
    if (closed_) {
      ec = asio::error::operation_aborted;
      co_return 0;
    }
    auto b = t.check(want, Throttle::Clock::now());
    if (b.bytes > 0) co_return std::min(b.bytes, want);
    timer.expires_after(std::max<Throttle::Clock::duration>(b.wait, kMinWait));
    auto [wec] = co_await timer.async_wait(use_nothrow);
    if (wec) {
      ec = wec;
      co_return 0;
    }
  }
}

StreamPtr throttled(StreamPtr inner, ThrottlePtr in, ThrottlePtr out) {
  if (!in && !out) return inner;
  return std::make_unique<ThrottledStream>(std::move(inner), std::move(in), std::move(out));
}

}  // namespace gost
