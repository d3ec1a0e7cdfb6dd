// A byte budget on one direction of a Stream, and the Stream wrapper that keeps to it
// (docs/ARCHITECTURE.md "Streams", "Limiters"). The budgets themselves (token buckets, GOST's
// traffic limiters) live in policy/; the data path sees only this interface.
//
// A limited stream has no raw socket (raw_tcp() is null), so the relay copies it instead of
// splicing it: every byte passes the budget. An unlimited stream is never wrapped (throttled()
// returns it as it is) and keeps the splice path at no cost.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "core/stream.hpp"

namespace gost {

class Throttle {
 public:
  using Clock = std::chrono::steady_clock;
  struct Budget {
    std::size_t bytes = 0;   // > 0: up to that many bytes (<= want) may move now
    Clock::duration wait{};  // bytes == 0: ask again after this long
  };
  virtual ~Throttle() = default;
  // How much of `want` (>= 1) may move at `now`. Never grants more than one burst, and waits
  // for a sensible quantum rather than granting a trickle of bytes.
  virtual Budget check(std::size_t want, Clock::time_point now) = 0;
  // Records that `n` bytes moved (possibly more than the last grant, when several streams share
  // a budget: the debt is paid by later waits).
  virtual void charge(std::size_t n, Clock::time_point now) = 0;
};
using ThrottlePtr = std::shared_ptr<Throttle>;

// `inner` with reads kept to `in` (what the peer sends us) and writes to `out` (what we send it):
// it waits for the budget before each read and write (an asio timer), then charges what actually
// moved. A read never takes more than the budget allows, so nothing is held beyond the caller's
// own buffer. No raw socket (docs/ARCHITECTURE.md "The relay": a limited tunnel leaves the
// splice path).
class ThrottledStream final : public Stream {
 public:
  ThrottledStream(StreamPtr inner, ThrottlePtr in, ThrottlePtr out);
  Stream& inner() { return *inner_; }

  asio::any_io_executor executor() override { return inner_->executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override;
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override;
  // Ready once the budget allows a read and the peer has sent something: a tunnel waiting for
  // its budget holds no buffer either.
  awaitable<void> wait_readable(error_code& ec) override;
  awaitable<void> shutdown_write(error_code& ec) override { return inner_->shutdown_write(ec); }
  void close() override;
  std::string remote_address() const override { return inner_->remote_address(); }
  std::string local_address() const override { return inner_->local_address(); }

 private:
  awaitable<std::size_t> budget(Throttle& t, std::size_t want, asio::steady_timer& timer,
                                error_code& ec);

  StreamPtr inner_;
  ThrottlePtr in_, out_;
  asio::steady_timer read_timer_, write_timer_;
  bool closed_ = false;
};

// A ThrottledStream over `inner`; `inner` itself when both are null (an unlimited stream is
// never wrapped).
StreamPtr throttled(StreamPtr inner, ThrottlePtr in, ThrottlePtr out);

}  // namespace gost
