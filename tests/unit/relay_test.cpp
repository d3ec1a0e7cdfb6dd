// core/relay: both directions, half-close, the grace and idle deadlines, aborts, the switch from
// copying to splice(2), metrics on the splice path, and a relay pending when its io_context goes
// (docs/ARCHITECTURE.md "The relay").
#include "core/relay.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <tuple>

#include "core/metrics.hpp"
#include "core/tcp_stream.hpp"

namespace gost {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// `on_strand`: the sockets' executor is a strand, not the io_context's own.
std::pair<tcp::socket, tcp::socket> socket_pair(asio::io_context& io, bool on_strand = false) {
  tcp::acceptor acc(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::any_io_executor ex = io.get_executor();
  if (on_strand) ex = asio::make_strand(io);
  tcp::socket x(ex), y(ex);
  x.connect(acc.local_endpoint());
  acc.accept(y);
  return {std::move(x), std::move(y)};
}

std::string random_bytes(std::size_t n) {
  std::mt19937 rng(static_cast<unsigned>(n));
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// A wrapper around a TcpStream. `opaque`: never shows its socket (every byte is copied);
// `hide_read` / `hide_write`: shows it for reading only after its first read / for writing only
// after its first write (as the relay protocol's wrappers do); `polls`: answers poll_readable()
// with its socket (as TLS over TCP does), else only wait_readable() waits for it. Counts live
// instances, and its waits in wait_readable() (`waiting`).
class Wrapped final : public Stream {
 public:
  Wrapped(tcp::socket s, int* alive) : inner_(std::move(s)), alive_(alive) { ++*alive_; }
  ~Wrapped() override { --*alive_; }
  bool opaque = false, hide_read = false, hide_write = false, polls = false;
  int waiting = 0;
  bool gated = false;  // not writable (as a PHT stream without a push slot) while set
  int reads = 0;

  asio::any_io_executor executor() override { return inner_.executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    hide_read = false;
    ++reads;
    co_return co_await inner_.read_some(buf, ec);
  }
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    hide_write = false;
    co_return co_await inner_.write_some(buf, ec);
  }
  awaitable<void> wait_readable(error_code& ec) override {
    ++waiting;
    co_await inner_.wait_readable(ec);
    --waiting;
  }
  Poll poll_readable() override { return polls ? inner_.poll_readable() : Poll{}; }
  bool writable_now() override { return !gated; }
  awaitable<void> wait_writable(error_code& ec) override {
    asio::steady_timer t(inner_.executor());
    while (gated) {
      t.expires_after(std::chrono::milliseconds(5));
      co_await t.async_wait(use_nothrow);
    }
    ec = {};
  }
  awaitable<void> shutdown_write(error_code& ec) override { return inner_.shutdown_write(ec); }
  void close() override { inner_.close(); }
  tcp::socket* raw_tcp() override { return opaque || hide_read ? nullptr : inner_.raw_tcp(); }
  tcp::socket* raw_tcp_write() override {
    return opaque || hide_write ? nullptr : inner_.raw_tcp();
  }

 private:
  TcpStream inner_;
  int* alive_;
};

// copy: a → b copies, through wait_readable(); parked: both copy, idle directions parked on
// their sockets (poll_readable()).
enum class Mode { splice, copy, switching, parked };

// client socket `c` ↔ a … relay … b ↔ target socket `t`.
struct Tunnel {
  asio::io_context io;
  int alive = 0;
  std::optional<tcp::socket> c, t;
  std::unique_ptr<Wrapped> a, b;

  explicit Tunnel(Mode mode, bool on_strand = false) {
    auto [c0, a0] = socket_pair(io, on_strand);
    auto [b0, t0] = socket_pair(io, on_strand);
    c.emplace(std::move(c0));
    t.emplace(std::move(t0));
    a = std::make_unique<Wrapped>(std::move(a0), &alive);
    b = std::make_unique<Wrapped>(std::move(b0), &alive);
    if (mode == Mode::copy) a->opaque = true;
    if (mode == Mode::parked) a->opaque = b->opaque = a->polls = b->polls = true;
    if (mode == Mode::switching) {
      a->hide_write = true;  // b → a copies until its first write (ReplyOnFirstWrite)
      b->hide_read = true;   // and reads b until its first read (the relay connector)
    }
  }
};

awaitable<std::string> read_exactly(tcp::socket& s, std::size_t n) {
  std::string got(n, '\0');
  auto [ec, m] = co_await asio::async_read(s, asio::buffer(got), use_nothrow);
  got.resize(m);
  co_return got;
}

awaitable<error_code> read_end(tcp::socket& s) {
  char c;
  auto [ec, n] = co_await s.async_read_some(asio::buffer(&c, 1), use_nothrow);
  co_return n ? error_code() : ec;
}

void run(asio::io_context& io, awaitable<void> body, std::chrono::seconds limit = 20s) {
  bool done = false;
  asio::co_spawn(io, std::move(body), [&](std::exception_ptr e) {
    done = true;
    if (e) std::rethrow_exception(e);
  });
  io.run_for(limit);
  EXPECT_TRUE(done);
}

// Each mode also with the sockets on a strand: the relay's long-lived waits are made for the
// io_context's own executor (core/relay.cpp wait_socket()), and sockets on another executor wait
// through their own, with the same outcome.
class RelayModes : public ::testing::TestWithParam<std::tuple<Mode, bool>> {
 protected:
  Mode mode() const { return std::get<0>(GetParam()); }
  bool on_strand() const { return std::get<1>(GetParam()); }
};

// Bytes in both directions arrive intact, a FIN travels through, the counts are right, and the
// relay ends once both directions have.
TEST_P(RelayModes, BothDirectionsAndHalfClose) {
  Tunnel s(mode(), on_strand());
  metrics::Traffic traffic;
  const std::string up = random_bytes(3 << 20), down = random_bytes(300 << 10);
  std::optional<RelayStats> stats;
  auto relaying = [&]() -> awaitable<void> {
    RelayOptions o;
    o.a_traffic = &traffic;
    stats = co_await relay(*s.a, *s.b, o);
  };
  asio::co_spawn(s.io, relaying(), asio::detached);
  run(s.io, [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, asio::async_write(*s.c, asio::buffer(up), use_nothrow), asio::detached);
    EXPECT_TRUE(co_await read_exactly(*s.t, up.size()) == up);
    // the first bytes back (after the target has read) switch b → a to splice in Mode::switching
    co_await asio::async_write(*s.t, asio::buffer(down), use_nothrow);
    EXPECT_TRUE(co_await read_exactly(*s.c, down.size()) == down);
    s.c->shutdown(tcp::socket::shutdown_send);
    EXPECT_EQ(co_await read_end(*s.t), asio::error::eof);
    // half-closed: the reverse direction still flows
    co_await asio::async_write(*s.t, asio::buffer(std::string_view("late")), use_nothrow);
    EXPECT_EQ(co_await read_exactly(*s.c, 4), "late");
    EXPECT_FALSE(stats);
    s.t->shutdown(tcp::socket::shutdown_send);
    EXPECT_EQ(co_await read_end(*s.c), asio::error::eof);
    asio::steady_timer wait(ex);
    for (int i = 0; i < 100 && !stats; ++i) {
      wait.expires_after(10ms);
      co_await wait.async_wait(use_nothrow);
    }
  }());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->a_to_b, up.size());
  EXPECT_EQ(stats->b_to_a, down.size() + 4);
  EXPECT_EQ(stats->spliced, mode() == Mode::splice);
  if (mode() == Mode::splice) {  // a's own Stream counts the rest (here: nothing)
    EXPECT_EQ(traffic.input.get(), up.size());
    EXPECT_EQ(traffic.output.get(), down.size() + 4);
  } else if (mode() == Mode::copy) {
    EXPECT_EQ(traffic.input.get(), 0u);
    EXPECT_EQ(traffic.output.get(), 0u);
  }
}

// A silent relay ends after the idle timeout; traffic postpones it; both ends are closed.
TEST_P(RelayModes, IdleTimeout) {
  Tunnel s(mode(), on_strand());
  Clock::time_point ended{};
  auto relaying = [&]() -> awaitable<void> {
    RelayOptions o;
    o.idle_timeout = 300ms;
    co_await relay(*s.a, *s.b, o);
    ended = Clock::now();
  };
  auto start = Clock::now();
  asio::co_spawn(s.io, relaying(), asio::detached);
  run(s.io, [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer wait(ex);
    for (int i = 0; i < 5; ++i) {  // 1 s of traffic every 200 ms
      wait.expires_after(200ms);
      co_await wait.async_wait(use_nothrow);
      co_await asio::async_write(*s.c, asio::buffer(std::string_view("x")), use_nothrow);
      EXPECT_EQ(co_await read_exactly(*s.t, 1), "x");
    }
    EXPECT_EQ(ended, Clock::time_point{});
    EXPECT_TRUE(co_await read_end(*s.c));
    EXPECT_TRUE(co_await read_end(*s.t));
  }());
  ASSERT_NE(ended, Clock::time_point{});
  EXPECT_GE(ended - start, 1000ms + 300ms);
  EXPECT_LT(ended - start, 1000ms + 1500ms);
}

// After one direction's EOF the other gets the grace period, then the relay is aborted.
TEST_P(RelayModes, HalfCloseGrace) {
  Tunnel s(mode(), on_strand());
  Clock::time_point eof{}, ended{};
  auto relaying = [&]() -> awaitable<void> {
    RelayOptions o;
    o.half_close_grace = 400ms;
    o.idle_timeout = 10s;  // a later deadline does not hide the earlier one
    co_await relay(*s.a, *s.b, o);
    ended = Clock::now();
  };
  asio::co_spawn(s.io, relaying(), asio::detached);
  run(s.io, [&]() -> awaitable<void> {
    s.t->shutdown(tcp::socket::shutdown_send);
    eof = Clock::now();
    EXPECT_EQ(co_await read_end(*s.c), asio::error::eof);
    co_await asio::async_write(*s.c, asio::buffer(std::string_view("ok")), use_nothrow);
    EXPECT_EQ(co_await read_exactly(*s.t, 2), "ok");
    auto e = co_await read_end(*s.t);  // the abort closes b
    EXPECT_TRUE(e == asio::error::eof || e == asio::error::connection_reset) << e.message();
  }());
  ASSERT_NE(ended, Clock::time_point{});
  EXPECT_GE(ended - eof, 400ms);
  EXPECT_LT(ended - eof, 3s);
}

// A reset on one side aborts the relay: the other side is closed at once.
TEST_P(RelayModes, ResetAborts) {
  Tunnel s(mode(), on_strand());
  bool ended = false;
  auto relaying = [&]() -> awaitable<void> {
    co_await relay(*s.a, *s.b, {});
    ended = true;
  };
  asio::co_spawn(s.io, relaying(), asio::detached);
  auto start = Clock::now();
  run(s.io, [&]() -> awaitable<void> {
    co_await asio::async_write(*s.c, asio::buffer(std::string_view("hi")), use_nothrow);
    EXPECT_EQ(co_await read_exactly(*s.t, 2), "hi");
    s.c->set_option(asio::socket_base::linger(true, 0));
    s.c->close();  // RST
    auto e = co_await read_end(*s.t);
    EXPECT_TRUE(e == asio::error::eof || e == asio::error::connection_reset) << e.message();
  }());
  EXPECT_TRUE(ended);
  EXPECT_LT(Clock::now() - start, 5s);
}

// The io_context goes while relays wait (a server's shutdown): the relay's state, its handler and
// the coroutines that own the streams are destroyed with it (ASan/LSan: nothing leaks).
TEST_P(RelayModes, DestroyedWhilePending) {
  int alive = 0;
  bool ended = false;
  {
    asio::io_context io;
    std::vector<tcp::socket> peers;
    for (int i = 0; i < 4; ++i) {
      auto [c0, a0] = socket_pair(io, on_strand());
      auto [b0, t0] = socket_pair(io, on_strand());
      peers.push_back(std::move(c0));
      peers.push_back(std::move(t0));
      auto a = std::make_unique<Wrapped>(std::move(a0), &alive);
      auto b = std::make_unique<Wrapped>(std::move(b0), &alive);
      if (mode() == Mode::copy) a->opaque = true;
      if (mode() == Mode::parked) a->opaque = b->opaque = a->polls = b->polls = true;
      if (mode() == Mode::switching) a->hide_write = b->hide_read = true;
      RelayOptions o;
      if (i % 2) o.idle_timeout = 1h;  // with a pending timer too
      auto owner = [](std::unique_ptr<Wrapped> x, std::unique_ptr<Wrapped> y, RelayOptions opt,
                      bool& done) -> awaitable<void> {
        co_await relay(*x, *y, opt);
        done = true;
      };
      asio::co_spawn(io, owner(std::move(a), std::move(b), o, ended), asio::detached);
    }
    EXPECT_EQ(alive, 8);
    // one tunnel half-closed and in its grace period
    peers[1].shutdown(tcp::socket::shutdown_send);
    io.run_for(200ms);
    EXPECT_EQ(alive, 8);
    peers.clear();  // closed, but nothing runs any more to see it
  }
  EXPECT_EQ(alive, 0);
  EXPECT_FALSE(ended);
}

INSTANTIATE_TEST_SUITE_P(Relay, RelayModes,
                         ::testing::Combine(::testing::Values(Mode::splice, Mode::copy,
                                                              Mode::switching, Mode::parked),
                                            ::testing::Bool()),
                         [](const auto& p) {
                           std::string name;
                           switch (std::get<0>(p.param)) {
                             case Mode::splice:
                               name = "Splice";
                               break;
                             case Mode::copy:
                               name = "Copy";
                               break;
                             case Mode::parked:
                               name = "Parked";
                               break;
                             default:
                               name = "Switching";
                           }
                           return std::get<1>(p.param) ? name + "OnAStrand" : name;
                         });

// Between exchanges, a copying relay whose streams answer poll_readable() with their socket waits
// in no coroutine (docs/ARCHITECTURE.md "The relay"); one whose streams cannot waits in both
// directions' wait_readable().
TEST(Relay, AnIdleCopyingRelayWaitsWithoutCoroutines) {
  for (bool polls : {true, false}) {
    Tunnel s(Mode::copy);
    s.a->opaque = s.b->opaque = true;
    s.a->polls = s.b->polls = polls;
    bool ended = false;
    auto relaying = [&]() -> awaitable<void> {
      co_await relay(*s.a, *s.b, {});
      ended = true;
    };
    asio::co_spawn(s.io, relaying(), asio::detached);
    run(s.io, [&]() -> awaitable<void> {
      auto ex = co_await asio::this_coro::executor;
      asio::steady_timer wait(ex);
      for (int i = 0; i < 3; ++i) {
        co_await asio::async_write(*s.c, asio::buffer(std::string_view("ping")), use_nothrow);
        EXPECT_EQ(co_await read_exactly(*s.t, 4), "ping");
        co_await asio::async_write(*s.t, asio::buffer(std::string_view("pong")), use_nothrow);
        EXPECT_EQ(co_await read_exactly(*s.c, 4), "pong");
        wait.expires_after(50ms);
        co_await wait.async_wait(use_nothrow);
        EXPECT_EQ(s.a->waiting + s.b->waiting, polls ? 0 : 2) << "polls " << polls << ", " << i;
      }
      s.c->shutdown(tcp::socket::shutdown_send);
      s.t->shutdown(tcp::socket::shutdown_send);
      EXPECT_EQ(co_await read_end(*s.c), asio::error::eof);
      EXPECT_EQ(co_await read_end(*s.t), asio::error::eof);
    }());
    EXPECT_TRUE(ended) << "polls " << polls;
  }
}

// A destination that is not writable is waited for before the source is read: the bytes stay
// where they are (no buffer of the relay holds them) until it is.
TEST(Relay, AnUnwritableDestinationIsWaitedForBeforeTheRead) {
  Tunnel s(Mode::copy);
  s.a->opaque = s.b->opaque = s.a->polls = s.b->polls = true;
  s.b->gated = true;
  auto relaying = [&]() -> awaitable<void> { co_await relay(*s.a, *s.b, {}); };
  asio::co_spawn(s.io, relaying(), asio::detached);
  run(s.io, [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer wait(ex);
    co_await asio::async_write(*s.c, asio::buffer(std::string_view("held")), use_nothrow);
    wait.expires_after(100ms);
    co_await wait.async_wait(use_nothrow);
    EXPECT_EQ(s.a->reads, 0);  // readable, but b is not writable
    s.b->gated = false;
    EXPECT_EQ(co_await read_exactly(*s.t, 4), "held");
    EXPECT_GE(s.a->reads, 1);
    s.c->shutdown(tcp::socket::shutdown_send);
    s.t->shutdown(tcp::socket::shutdown_send);
    EXPECT_EQ(co_await read_end(*s.c), asio::error::eof);
    EXPECT_EQ(co_await read_end(*s.t), asio::error::eof);
  }());
}

// A relay that is made but never awaited owns nothing that outlives it.
TEST(Relay, NeverAwaited) {
  asio::io_context io;
  int alive = 0;
  auto [c0, a0] = socket_pair(io);
  auto [b0, t0] = socket_pair(io);
  Wrapped a(std::move(a0), &alive), b(std::move(b0), &alive);
  { auto unused = relay(a, b, {}); }
  io.run_for(50ms);
  EXPECT_EQ(alive, 2);
}

}  // namespace
}  // namespace gost
