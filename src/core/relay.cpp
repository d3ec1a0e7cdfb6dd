#include "core/relay.hpp"

#include <fcntl.h>

#include "core/buffer_pool.hpp"
#include "core/metrics.hpp"

namespace gost {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kFullRead = 16 * 1024;

// Shared by both directions. The relay coroutine waits on `signal`: it doubles as the watchdog
// (half-close grace, idle timeout) and as the completion event (cancel() wakes the coroutine,
// which then re-reads the state). An idle relay holds this object and two pending waits, nothing
// more.
struct RelayState {
  Stream& a;
  Stream& b;
  RelayOptions options;
  asio::steady_timer signal;
  int finished = 0;
  bool aborted = false;
  Clock::time_point first_eof{};
  Clock::time_point last_activity = Clock::now();

  RelayState(Stream& sa, Stream& sb, RelayOptions o)
      : a(sa), b(sb), options(o), signal(sa.executor()) {}

  void touch() {
    if (options.idle_timeout.count() > 0) last_activity = Clock::now();
  }
  void abort() {
    if (aborted) return;
    aborted = true;
    a.close();
    b.close();
  }
  // One direction ended: after EOF the destination was half-closed; an error stops everything.
  void direction_done(bool clean) {
    ++finished;
    if (!clean)
      abort();
    else if (finished == 1)
      first_eof = Clock::now();
    signal.cancel();
  }
  Clock::time_point deadline() const {
    auto d = Clock::time_point::max();
    if (options.idle_timeout.count() > 0) d = last_activity + options.idle_timeout;
    if (finished == 1) d = std::min(d, first_eof + options.half_close_grace);
    return d;
  }
};

// Waits until both directions are done, aborting the relay when a deadline passes.
awaitable<void> supervise(RelayState& st) {
  while (st.finished < 2) {
    auto deadline = st.aborted ? Clock::time_point::max() : st.deadline();
    st.signal.expires_at(deadline);
    co_await st.signal.async_wait(use_nothrow);
    if (st.finished < 2 && !st.aborted && Clock::now() >= st.deadline()) st.abort();
  }
}

bool prepare_for_splice(tcp::socket* s) {
  error_code ec;
  s->native_non_blocking(true, ec);
  return !ec;
}

// One direction of a TCP→TCP relay: socket → pipe → socket with splice(2), no user-space copy.
// Callback-driven (no coroutine frame): each wait is a small reactor operation.
class SpliceDirection {
 public:
  // `finished` (optional) is cancelled when the direction is done.
  // `src_reads` / `dst_writes` (optional): metrics counters of the sockets' raw bytes.
  SpliceDirection(tcp::socket& src, tcp::socket& dst, RelayState& st, std::uint64_t& count,
                  metrics::Counter* src_reads, metrics::Counter* dst_writes,
                  asio::steady_timer* finished = nullptr)
      : src_(src),
        dst_(dst),
        st_(st),
        count_(count),
        src_reads_(src_reads),
        dst_writes_(dst_writes),
        finished_(finished) {}

  void start() { wait_readable(); }

 private:
  static constexpr std::size_t kChunk = 1 << 20;

  void wait_readable() {
    src_.async_wait(tcp::socket::wait_read, [this](error_code ec) {
      if (ec) return finish(ec);
      pump();
    });
  }
  void wait_writable() {
    dst_.async_wait(tcp::socket::wait_write, [this](error_code ec) {
      if (ec) return finish(ec);
      pump();
    });
  }

  // Moves as much as possible now; returns to the reactor only when a side would block.
  void pump() {
    for (;;) {
      if (pipe_ && pipe_->pending > 0) {
        ssize_t m = ::splice(pipe_->read_fd(), nullptr, dst_.native_handle(), nullptr,
                             pipe_->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (m > 0) {
          pipe_->pending -= static_cast<std::size_t>(m);
          count_ += static_cast<std::uint64_t>(m);
          if (dst_writes_) dst_writes_->add(static_cast<std::uint64_t>(m));
          continue;
        }
        if (m < 0 && errno == EINTR) continue;
        if (m < 0 && errno == EAGAIN) return wait_writable();
        return finish(errno_code());
      }
      if (pipe_) release_pipe(std::move(pipe_));  // empty: back to the per-thread pool
      pipe_ = acquire_pipe();
      if (!pipe_) return finish(asio::error::no_descriptors);
      ssize_t n = ::splice(src_.native_handle(), nullptr, pipe_->write_fd(), nullptr, kChunk,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        pipe_->pending = static_cast<std::size_t>(n);
        if (src_reads_) src_reads_->add(static_cast<std::uint64_t>(n));
        st_.touch();
        continue;
      }
      if (n == 0) return finish(asio::error::eof);
      if (errno == EINTR) continue;
      int err = errno;
      release_pipe(std::move(pipe_));
      if (err == EAGAIN) return wait_readable();
      return finish(error_code(err, boost::system::system_category()));
    }
  }

  static error_code errno_code() { return error_code(errno, boost::system::system_category()); }

  void finish(error_code ec) {
    release_pipe(std::move(pipe_));  // destroyed instead when it still holds bytes
    bool clean = ec == asio::error::eof;
    if (clean && !st_.aborted) {
      error_code ignored;
      dst_.shutdown(tcp::socket::shutdown_send, ignored);
    }
    st_.direction_done(clean);
    if (finished_) finished_->cancel();
  }

  tcp::socket& src_;
  tcp::socket& dst_;
  RelayState& st_;
  std::uint64_t& count_;
  metrics::Counter* src_reads_;
  metrics::Counter* dst_writes_;
  std::unique_ptr<Pipe> pipe_;
  asio::steady_timer* finished_;
};

// Reads once into a Buffer (held only while its bytes are in flight) and writes it all.
template <class Buffer>
awaitable<std::size_t> move_chunk(Stream& src, Stream& dst, RelayState& st, error_code& ec) {
  Buffer buf;
  std::size_t n = co_await src.read_some(asio::buffer(buf.data(), buf.size()), ec);
  if (ec) co_return 0;
  st.touch();
  co_await write_all(dst, asio::buffer(buf.data(), n), ec);
  co_return n;
}

awaitable<void> copy_direction(Stream& src, Stream& dst, RelayState& st, std::uint64_t& count,
                               metrics::Counter* src_reads, metrics::Counter* dst_writes) {
  error_code ec;
  bool may_have_more = false;
  bool bulk = false;
  for (;;) {
    // Once both ends are plain TCP sockets (e.g. a protocol wrapper has finished its handshake),
    // the rest of this direction moves with splice(2).
    tcp::socket* s = src.raw_tcp();
    tcp::socket* d = dst.raw_tcp_write();
    if (s && d && !st.aborted && prepare_for_splice(s) && prepare_for_splice(d)) {
      asio::steady_timer finished(src.executor(), asio::steady_timer::time_point::max());
      SpliceDirection splice(*s, *d, st, count, src_reads, dst_writes, &finished);
      splice.start();
      co_await finished.async_wait(use_nothrow);
      co_return;
    }
    if (!may_have_more) {
      co_await src.wait_readable(ec);
      if (ec) break;
    }
    // A small buffer until a read fills it (bulk), then a RelayBuffer while reads stay large.
    std::size_t n = 0;
    if (bulk)
      n = co_await move_chunk<RelayBuffer>(src, dst, st, ec);
    else
      n = co_await move_chunk<SmallBuffer>(src, dst, st, ec);
    if (ec) break;
    count += n;
    // A full read (a whole TLS record counts) suggests more is queued: read again without first
    // waiting for readiness.
    may_have_more = n >= kFullRead;
    bulk = n >= SmallBuffer::size();
  }
  bool clean = ec == asio::error::eof;
  if (clean && !st.aborted) {
    error_code ignored;
    co_await dst.shutdown_write(ignored);
  }
  st.direction_done(clean);
}

}  // namespace

awaitable<RelayStats> relay(Stream& a, Stream& b, RelayOptions options) {
  RelayState st(a, b, options);
  RelayStats stats;
  metrics::Counter* a_reads = options.a_traffic ? &options.a_traffic->input : nullptr;
  metrics::Counter* a_writes = options.a_traffic ? &options.a_traffic->output : nullptr;
  tcp::socket* ta = a.raw_tcp();
  tcp::socket* tb = b.raw_tcp();
  if (ta && tb && a.raw_tcp_write() == ta && b.raw_tcp_write() == tb && prepare_for_splice(ta) &&
      prepare_for_splice(tb)) {
    stats.spliced = true;
    SpliceDirection forward(*ta, *tb, st, stats.a_to_b, a_reads, nullptr);
    SpliceDirection backward(*tb, *ta, st, stats.b_to_a, nullptr, a_writes);
    forward.start();
    backward.start();
    co_await supervise(st);
  } else {
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, copy_direction(a, b, st, stats.a_to_b, a_reads, nullptr), asio::detached);
    asio::co_spawn(ex, copy_direction(b, a, st, stats.b_to_a, nullptr, a_writes), asio::detached);
    co_await supervise(st);
  }
  co_return stats;
}

}  // namespace gost
