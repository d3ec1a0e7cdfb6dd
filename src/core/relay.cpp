#include "core/relay.hpp"

#include <fcntl.h>
#include <fmt/format.h>

#include <memory>
#include <optional>
#include <utility>

#include "core/buffer_pool.hpp"
#include "core/component.hpp"
#include "core/metrics.hpp"

namespace gost {
namespace {

using Clock = std::chrono::steady_clock;

class RelayState;

// The allocator of a wait that may stay pending for as long as a tunnel idles (a splice's or a
// parked direction's): its operation gets a heap block of its own size. asio's default (also for
// std::allocator) recycles per-thread blocks of whatever size an earlier operation needed (an
// accept's, a write's), so a long-lived wait would keep a block up to three times its size
// (docs/ARCHITECTURE.md "Memory").
template <class T>
struct ExactAllocator {
  using value_type = T;
  ExactAllocator() = default;
  template <class U>
  ExactAllocator(const ExactAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p); }
  friend bool operator==(ExactAllocator, ExactAllocator) { return true; }
};

// A socket's reactor state, for wait_socket(): a protected member of asio's basic_socket, named
// through a derived class (never instantiated).
struct SocketInternals : tcp::socket {
  static constexpr auto impl = &SocketInternals::impl_;
};

// socket.async_wait(w, h) for a wait that may last as long as a tunnel idles, at half the size:
// the operation is made for the io_context's own executor, which needs no work tracking of its
// own (the scheduler counts a pending reactor operation as work anyway), instead of the socket's
// type-erased any_io_executor (120 bytes instead of 224 per wait; two per idle tunnel and
// process; docs/ARCHITECTURE.md "Memory"). The handler runs as it would through the socket's
// executor: on the io_context's thread, closing the socket cancels it. A socket whose executor
// is something else waits as usual. Relies on Boost.Asio 1.81's reactive socket service.
template <class Handler>
void wait_socket(tcp::socket& s, tcp::socket::wait_type w, Handler h) {
  auto bound = asio::bind_allocator(ExactAllocator<void>(), std::move(h));
  const auto* ex = s.get_executor().target<asio::io_context::executor_type>();
  if (!ex) return s.async_wait(w, std::move(bound));
  auto& io = s.*SocketInternals::impl;
  io.get_service().async_wait(io.get_implementation(), w, bound, *ex);
}

// One direction of a TCP→TCP relay: socket → pipe → socket with splice(2), no user-space copy.
// Callback-driven (no coroutine frame): each wait is a small reactor operation, and the object
// lives in the RelayState, so an idle spliced direction costs its pending wait and nothing else.
class SpliceDirection {
 public:
  bool active() const { return st_ != nullptr; }
  // Starts direction `i` of `st` (0: a → b, 1: b → a), from socket `src` to socket `dst`.
  void start(tcp::socket& src, tcp::socket& dst, RelayState& st, int i) {
    src_ = &src;
    dst_ = &dst;
    st_ = &st;
    i_ = i;
    wait_readable();
  }

 private:
  static constexpr std::size_t kChunk = 1 << 20;

  void wait_readable();
  void wait_writable();
  void pump();
  void finish(error_code ec);
  static error_code errno_code() { return error_code(errno, boost::system::system_category()); }

  tcp::socket* src_ = nullptr;
  tcp::socket* dst_ = nullptr;
  RelayState* st_ = nullptr;  // null until started
  std::unique_ptr<Pipe> pipe_;
  int i_ = 0;
};

// One relay, shared by both directions. No coroutine waits for the directions: each reports to
// direction_done(), and once both have, complete() hands the stats to the coroutine that awaits
// relay(). The timer is armed only while a deadline exists (idle timeout, half-close grace), so an
// idle spliced relay is this object and its two splice waits (docs/ARCHITECTURE.md "The relay",
// "Memory").
//
// Its memory is held by what may still use it (Hold): the pending waits' handlers, the copy
// coroutines, start(). The last hold deletes it, also when asio destroys the pending waits
// unrun at shutdown; the awaiting coroutine, whose handler it keeps until completion, then goes
// with it.
class RelayState {
 public:
  RelayState(Stream& sa, Stream& sb, const RelayOptions& o) : a(sa), b(sb), options(o) {}
  virtual ~RelayState() = default;
  RelayState(const RelayState&) = delete;
  RelayState& operator=(const RelayState&) = delete;

  class Hold {
   public:
    explicit Hold(RelayState& st) : st_(&st) { ++st.holds_; }
    Hold(Hold&& o) noexcept : st_(std::exchange(o.st_, nullptr)) {}
    Hold& operator=(Hold&&) = delete;
    ~Hold() {
      if (st_ && --st_->holds_ == 0) delete st_;
    }
    RelayState& state() const { return *st_; }

   private:
    RelayState* st_;
  };

  void start();

  void touch() {
    if (options.idle_timeout.count() > 0) last_activity_ = Clock::now();
  }
  bool aborted() const { return aborted_; }
  void abort() {
    if (aborted_) return;
    aborted_ = true;
    a.close();
    b.close();
  }
  // One direction ended: after EOF the destination was half-closed; an error stops everything.
  void direction_done(bool clean) {
    ++finished_;
    if (!clean)
      abort();
    else if (finished_ == 1)
      first_eof_ = Clock::now();
    watch();
  }

  // Direction i's ends (0: a → b, 1: b → a).
  Stream& source(int i) const { return i == 0 ? a : b; }
  Stream& destination(int i) const { return i == 0 ? b : a; }
  // Direction i's byte count.
  std::uint64_t& count(int i) { return i == 0 ? stats.a_to_b : stats.b_to_a; }
  // The metrics counters of the raw bytes a splice moves past a's socket: those it reads from a
  // (direction 0) or writes to a (direction 1).
  metrics::Counter* a_reads(int i) const {
    return options.a_traffic && i == 0 ? &options.a_traffic->input : nullptr;
  }
  metrics::Counter* a_writes(int i) const {
    return options.a_traffic && i == 1 ? &options.a_traffic->output : nullptr;
  }

  Stream& a;
  Stream& b;
  RelayOptions options;  // options.since: when the relay started (for the ">-<" line)
  RelayStats stats;
  // [0]: a → b, [1]: b → a; made when a direction first splices (a relay that copies holds
  // none), and each active once its direction splices.
  std::unique_ptr<SpliceDirection[]> splices;

 protected:
  // Both directions are done: hand the stats to the awaiting coroutine (once).
  virtual void complete() = 0;
  // relay_logged()'s end: the byte counts and the ">-<" line.
  void log_end();

 private:
  void start_direction(int i, Stream& src, Stream& dst);
  Clock::time_point deadline() const {
    auto d = Clock::time_point::max();
    if (aborted_) return d;
    if (options.idle_timeout.count() > 0) d = last_activity_ + options.idle_timeout;
    if (finished_ == 1) d = std::min(d, first_eof_ + options.half_close_grace);
    return d;
  }
  // Completes the relay once both directions are done, else (re)arms the timer for the current
  // deadline. One wait at most is ever pending: a wait for a later deadline is cancelled, and its
  // handler arms the timer again.
  void watch() {
    if (finished_ == 2 || deadline() == Clock::time_point::max()) {
      if (timer_pending_) timer_->cancel();
      if (finished_ == 2 && !completed_) {
        completed_ = true;
        complete();
      }
      return;
    }
    if (timer_pending_) {
      if (timer_->expiry() > deadline()) timer_->cancel();
      return;
    }
    if (!timer_) timer_ = std::make_unique<asio::steady_timer>(a.executor());
    timer_pending_ = true;
    timer_->expires_at(deadline());
    timer_->async_wait([this, hold = Hold(*this)](error_code) {
      timer_pending_ = false;
      if (finished_ < 2 && Clock::now() >= deadline()) abort();
      watch();
    });
  }

  int holds_ = 0;
  int finished_ = 0;
  bool aborted_ = false;
  bool completed_ = false;
  bool timer_pending_ = false;
  std::unique_ptr<asio::steady_timer> timer_;  // made when a deadline first exists
  Clock::time_point first_eof_{};
  Clock::time_point last_activity_ = Clock::now();
};

// The RelayState of one awaiting coroutine: `Handler` resumes it.
template <class Handler>
class RelayOp final : public RelayState {
 public:
  using RelayState::RelayState;

  // From here on the relay's holds own it.
  static void start(std::unique_ptr<RelayOp> op, Handler h) {
    op->handler_.emplace(std::move(h));
    op.release()->RelayState::start();
  }

 private:
  void complete() override {
    log_end();
    auto ex = asio::get_associated_executor(*handler_, a.executor());
    asio::post(ex, [h = std::move(*handler_), s = stats]() mutable { std::move(h)(s); });
    handler_.reset();
  }

  std::optional<Handler> handler_;
};

// The RelayState nobody awaits: it owns what the relay uses and ends the connection itself.
class DetachedRelay final : public RelayState {
 public:
  DetachedRelay(StreamPtr a, StreamPtr b, std::string target, ConnInfo&& conn,
                const RelayOptions& o)
      : RelayState(*a, *b, o),
        a_(std::move(a)),
        b_(std::move(b)),
        target_(std::move(target)),
        conn_(std::move(conn)) {
    options.conn = &conn_;
    options.target = target_;
  }

 private:
  void complete() override {
    log_end();
    // Nothing uses the streams any more (both directions are done): they close now, as the
    // handler's return closes them after an awaited relay, before the connection's end.
    a_.reset();
    b_.reset();
    if (conn_.end) conn_.end->finish(conn_);
    conn_.end.reset();  // the connection's metrics and limiter slot
  }

  StreamPtr a_;
  StreamPtr b_;
  std::string target_;
  ConnInfo conn_;
};

bool prepare_for_splice(tcp::socket* s) {
  error_code ec;
  s->native_non_blocking(true, ec);
  return !ec;
}

// Starts direction `i` (src → dst) as a SpliceDirection when both ends are plain TCP sockets for
// it now; false when it has to copy (for now).
bool try_splice(RelayState& st, int i, Stream& src, Stream& dst) {
  tcp::socket* s = src.raw_tcp();
  tcp::socket* d = dst.raw_tcp_write();
  if (!s || !d || st.aborted() || !prepare_for_splice(s) || !prepare_for_splice(d)) return false;
  if (!st.splices) st.splices = std::make_unique<SpliceDirection[]>(2);
  st.splices[i].start(*s, *d, st, i);
  return true;
}

void SpliceDirection::wait_readable() {
  wait_socket(*src_, tcp::socket::wait_read, [this, hold = RelayState::Hold(*st_)](error_code ec) {
    if (ec) return finish(ec);
    pump();
  });
}

void SpliceDirection::wait_writable() {
  wait_socket(*dst_, tcp::socket::wait_write, [this, hold = RelayState::Hold(*st_)](error_code ec) {
    if (ec) return finish(ec);
    pump();
  });
}

// Moves as much as possible now; returns to the reactor only when a side would block.
void SpliceDirection::pump() {
  for (;;) {
    if (pipe_ && pipe_->pending > 0) {
      ssize_t m = ::splice(pipe_->read_fd(), nullptr, dst_->native_handle(), nullptr,
                           pipe_->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m > 0) {
        pipe_->pending -= static_cast<std::size_t>(m);
        st_->count(i_) += static_cast<std::uint64_t>(m);
        if (auto* c = st_->a_writes(i_)) c->add(static_cast<std::uint64_t>(m));
        continue;
      }
      if (m < 0 && errno == EINTR) continue;
      if (m < 0 && errno == EAGAIN) return wait_writable();
      return finish(errno_code());
    }
    if (pipe_) release_pipe(std::move(pipe_));  // empty: back to the per-thread pool
    pipe_ = acquire_pipe();
    if (!pipe_) return finish(asio::error::no_descriptors);
    ssize_t n = ::splice(src_->native_handle(), nullptr, pipe_->write_fd(), nullptr, kChunk,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      pipe_->pending = static_cast<std::size_t>(n);
      if (auto* c = st_->a_reads(i_)) c->add(static_cast<std::uint64_t>(n));
      st_->touch();
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

void SpliceDirection::finish(error_code ec) {
  release_pipe(std::move(pipe_));  // destroyed instead when it still holds bytes
  bool clean = ec == asio::error::eof;
  if (clean && !st_->aborted()) {
    error_code ignored;
    dst_->shutdown(tcp::socket::shutdown_send, ignored);
  }
  st_->direction_done(clean);
}

// What a copy direction reads into until a read fills it: from the heap, not the buffer pool.
// Short exchanges (a request, a handshake, an echo, keystrokes) then never take a pooled buffer,
// which the pool would keep: a burst of new tunnels each taking one left up to 32 SmallBuffers per
// worker behind (0.5 MiB, 0.8 KiB per tunnel of 1,000; issue 16 §5).
class TinyBuffer {
 public:
  TinyBuffer() : data_(new char[kSize]) {}
  char* data() { return data_.get(); }
  static constexpr std::size_t size() { return kSize; }

 private:
  static constexpr std::size_t kSize = 2048;
  std::unique_ptr<char[]> data_;
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

// How a copy direction sizes its reads (kept while it is parked): a TinyBuffer until a read fills
// one; from then on a SmallBuffer, or a RelayBuffer while reads fill a SmallBuffer (bulk).
struct Growth {
  bool grown = false;      // a read has filled a TinyBuffer
  std::uint32_t last = 0;  // bytes of the last read (at most a RelayBuffer's)
};

awaitable<void> copy_direction(RelayState& st, int i, Stream& src, Stream& dst, bool readable,
                               Growth g);

// src.poll_readable(), and a stream that cannot tell but reads a socket exactly (raw_tcp()) waits
// for that socket.
Stream::Poll poll(Stream& src) {
  Stream::Poll p = src.poll_readable();
  if (p.kind == Stream::Poll::unknown)
    if (tcp::socket* s = src.raw_tcp()) p = {Stream::Poll::idle, s};
  return p;
}

// Direction `i` while src has nothing to read and waits for socket `s` only: a reactor wait and
// no coroutine (docs/ARCHITECTURE.md "The relay"). Once `s` is readable the direction splices
// when both ends allow it now, else a copy loop starts again. The wait holds what it needs and
// no more (the streams are the relay's): it may last as long as the tunnel idles.
void park(RelayState& st, int i, tcp::socket& s, Growth g) {
  wait_socket(s, tcp::socket::wait_read, [hold = RelayState::Hold(st), &s, g, i](error_code ec) {
    RelayState& rs = hold.state();
    if (ec) return rs.direction_done(false);  // as a copy loop whose wait fails
    Stream& src = rs.source(i);
    Stream& dst = rs.destination(i);
    if (try_splice(rs, i, src, dst)) return;
    // Readable for sure only when src reads `s` itself (a TLS stream's may have
    // been a record without data).
    asio::co_spawn(src.executor(), copy_direction(rs, i, src, dst, src.raw_tcp() == &s, g),
                   asio::detached);
  });
}

// `readable`: src is known to be readable (no wait before the first read).
awaitable<void> copy_direction(RelayState& st, int i, Stream& src, Stream& dst, bool readable,
                               Growth g) {
  RelayState::Hold hold(st);
  error_code ec;
  for (;;) {
    // Once both ends are plain TCP sockets (e.g. a protocol wrapper has finished its handshake),
    // the rest of this direction moves with splice(2), without this coroutine.
    if (try_splice(st, i, src, dst)) co_return;
    // Before every read, also after a full one: a read that blocks would hold its buffer for as
    // long as the tunnel then stays idle. Streams answer at once when bytes are there
    // (TcpStream peeks first); one that has nothing and waits for a socket only is parked, and
    // this coroutine ends.
    if (!readable) {
      const Stream::Poll p = poll(src);
      if (p.kind == Stream::Poll::idle) {
        park(st, i, *p.socket, g);
        co_return;
      }
      readable = p.kind == Stream::Poll::ready;
      if (!readable) {
        co_await src.wait_readable(ec);
        if (ec) break;
      }
    }
    // A destination whose writes wait their turn (PHT pushes) is waited for before the read, so
    // that the tunnel holds no buffer while it waits — when the read is sure not to wait
    // (wait_readable() of some streams answers at once): what wait_writable() takes is then
    // held only for this read and its write.
    const bool wait_dst = readable && !dst.writable_now();
    readable = false;
    if (wait_dst) {
      co_await dst.wait_writable(ec);
      if (ec) break;
    }
    std::size_t n = 0;
    if (g.last >= SmallBuffer::size())
      n = co_await move_chunk<RelayBuffer>(src, dst, st, ec);
    else if (g.grown)
      n = co_await move_chunk<SmallBuffer>(src, dst, st, ec);
    else
      n = co_await move_chunk<TinyBuffer>(src, dst, st, ec);
    if (ec) break;
    st.count(i) += n;
    g.grown = g.grown || n == TinyBuffer::size();
    g.last = static_cast<std::uint32_t>(n);
  }
  bool clean = ec == asio::error::eof;
  if (clean && !st.aborted()) {
    error_code ignored;
    co_await dst.shutdown_write(ignored);
  }
  st.direction_done(clean);
}

// Direction `i`: spliced from the start when it can be, else parked until src has something to
// read when it waits for a socket (a tunnel whose target has not spoken yet holds a reactor wait,
// not a coroutine), else a copy loop of its own.
void RelayState::start_direction(int i, Stream& src, Stream& dst) {
  if (try_splice(*this, i, src, dst)) return;
  const Stream::Poll p = poll(src);
  if (p.kind == Stream::Poll::idle) return park(*this, i, *p.socket, {});
  asio::co_spawn(src.executor(),
                 copy_direction(*this, i, src, dst, p.kind == Stream::Poll::ready, {}),
                 asio::detached);
}

void RelayState::start() {
  if (options.conn && options.since == Clock::time_point{}) {
    options.since = Clock::now();
    options.conn->log.info(fmt::format("{} <-> {}", options.conn->remote, options.target));
  }
  Hold hold(*this);  // a direction may end before start() returns (a stream already at its end)
  start_direction(0, a, b);
  start_direction(1, b, a);
  stats.spliced = splices && splices[0].active() && splices[1].active();
  watch();
}

void RelayState::log_end() {
  auto* conn = options.conn;
  if (!conn) return;
  conn->input_bytes += stats.a_to_b;
  conn->output_bytes += stats.b_to_a;
  conn->log.info(fmt::format("{} >-< {}", conn->remote, options.target),
                 {{"duration", (Clock::now() - options.since).count()}});
}

}  // namespace

awaitable<RelayStats> relay(Stream& a, Stream& b, RelayOptions options) {
  using Handler = asio::async_result<asio::use_awaitable_t<>, void(RelayStats)>::handler_type;
  // Made now: until it is awaited, the awaitable (whose frame lasts as long as the relay) keeps a
  // pointer rather than the arguments. Freed with the awaitable if it never is.
  auto op = std::make_unique<RelayOp<Handler>>(a, b, options);
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(RelayStats)>(
      [op = std::move(op)](Handler handler) mutable {
        RelayOp<Handler>::start(std::move(op), std::move(handler));
      },
      asio::use_awaitable);
}

void relay_detached(StreamPtr a, StreamPtr b, std::string target, ConnInfo&& conn,
                    RelayOptions options) {
  // From here on the relay's holds own it (RelayState::Hold).
  auto* st =
      new DetachedRelay(std::move(a), std::move(b), std::move(target), std::move(conn), options);
  st->start();
}

}  // namespace gost
