#include "core/relay.hpp"

#include <fcntl.h>

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "core/buffer_pool.hpp"

namespace gost {
namespace {

using Clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;

struct RelayState {
  Stream& a;
  Stream& b;
  RelayOptions options;
  asio::steady_timer watchdog;
  int finished = 0;
  bool aborted = false;
  Clock::time_point first_eof{};
  Clock::time_point last_activity = Clock::now();

  RelayState(Stream& sa, Stream& sb, RelayOptions o)
      : a(sa), b(sb), options(o), watchdog(sa.executor()) {}

  void touch() {
    if (options.idle_timeout.count() > 0) last_activity = Clock::now();
  }
  void abort() {
    if (aborted) return;
    aborted = true;
    a.close();
    b.close();
    watchdog.cancel();
  }
  // One direction ended: on EOF the destination was half-closed; on error everything stops.
  void direction_done(bool clean) {
    ++finished;
    if (!clean) return abort();
    if (finished == 1) first_eof = Clock::now();
    watchdog.cancel();  // let the watchdog recompute its deadline (or exit)
  }
};

awaitable<void> copy_direction(Stream& src, Stream& dst, RelayState& st, std::uint64_t& count) {
  error_code ec;
  bool may_have_more = false;
  for (;;) {
    if (!may_have_more) {
      co_await src.wait_readable(ec);
      if (ec) break;
    }
    RelayBuffer buf;
    std::size_t n = co_await src.read_some(asio::buffer(buf.data(), buf.size()), ec);
    if (ec) break;
    st.touch();
    co_await write_all(dst, asio::buffer(buf.data(), n), ec);
    if (ec) break;
    count += n;
    may_have_more = n == buf.size();
  }
  bool clean = ec == asio::error::eof;
  if (clean && !st.aborted) {
    error_code ignored;
    co_await dst.shutdown_write(ignored);
  }
  st.direction_done(clean);
}

// Moves bytes socket → pipe → socket without copying them through user space.
awaitable<void> splice_direction(tcp::socket& src, tcp::socket& dst, RelayState& st,
                                 std::uint64_t& count) {
  constexpr std::size_t kChunk = 1 << 20;
  const int in = src.native_handle(), out = dst.native_handle();
  error_code ec;
  for (;;) {
    auto pipe = acquire_pipe();
    if (!pipe) {
      ec = asio::error::no_descriptors;
      break;
    }
    ssize_t n = ::splice(in, nullptr, pipe->write_fd(), nullptr, kChunk,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) {
      ec = asio::error::eof;
      release_pipe(std::move(pipe));
      break;
    }
    if (n < 0) {
      int err = errno;
      release_pipe(std::move(pipe));
      if (err == EINTR) continue;
      if (err != EAGAIN) {
        ec = error_code(err, boost::system::system_category());
        break;
      }
      auto [e] = co_await src.async_wait(tcp::socket::wait_read, use_nothrow);
      if (e) {
        ec = e;
        break;
      }
      continue;
    }
    st.touch();
    pipe->pending = static_cast<std::size_t>(n);
    while (pipe->pending > 0) {
      ssize_t m = ::splice(pipe->read_fd(), nullptr, out, nullptr, pipe->pending,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m > 0) {
        pipe->pending -= static_cast<std::size_t>(m);
        count += static_cast<std::uint64_t>(m);
        continue;
      }
      if (m < 0 && errno == EINTR) continue;
      if (m < 0 && errno != EAGAIN) {
        ec = error_code(errno, boost::system::system_category());
        break;
      }
      auto [e] = co_await dst.async_wait(tcp::socket::wait_write, use_nothrow);
      if (e) {
        ec = e;
        break;
      }
    }
    if (ec) break;  // the pipe still holds bytes: it is destroyed, not pooled
    release_pipe(std::move(pipe));
  }
  bool clean = ec == asio::error::eof;
  if (clean && !st.aborted) {
    error_code ignored;
    dst.shutdown(tcp::socket::shutdown_send, ignored);
  }
  st.direction_done(clean);
}

// Ends the relay when the half-close grace period or the idle timeout runs out.
awaitable<void> watchdog(RelayState& st) {
  while (st.finished < 2 && !st.aborted) {
    auto deadline = Clock::time_point::max();
    if (st.options.idle_timeout.count() > 0)
      deadline = st.last_activity + st.options.idle_timeout;
    if (st.finished == 1) deadline = std::min(deadline, st.first_eof + st.options.half_close_grace);
    st.watchdog.expires_at(deadline);
    co_await st.watchdog.async_wait(use_nothrow);
    if (st.finished >= 2 || st.aborted) break;
    auto now = Clock::now();
    bool idle = st.options.idle_timeout.count() > 0 &&
                now >= st.last_activity + st.options.idle_timeout;
    bool grace_over = st.finished == 1 && now >= st.first_eof + st.options.half_close_grace;
    if (idle || grace_over) st.abort();
  }
}

bool prepare_for_splice(tcp::socket* s) {
  error_code ec;
  s->native_non_blocking(true, ec);
  return !ec;
}

}  // namespace

awaitable<RelayStats> relay(Stream& a, Stream& b, RelayOptions options) {
  RelayState st(a, b, options);
  RelayStats stats;
  tcp::socket* ta = a.raw_tcp();
  tcp::socket* tb = b.raw_tcp();
  if (ta && tb && prepare_for_splice(ta) && prepare_for_splice(tb)) {
    stats.spliced = true;
    co_await (splice_direction(*ta, *tb, st, stats.a_to_b) &&
              splice_direction(*tb, *ta, st, stats.b_to_a) && watchdog(st));
  } else {
    co_await (copy_direction(a, b, st, stats.a_to_b) && copy_direction(b, a, st, stats.b_to_a) &&
              watchdog(st));
  }
  co_return stats;
}

}  // namespace gost
