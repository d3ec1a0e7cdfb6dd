// net/refused_retry: a stream its server ends before the first byte is opened again and what the
// tunnel wrote is written again (docs/PROTOCOLS.md "smux: refused streams"); a stream that
// answered, a half-closed tunnel, one past the replay bound are not; the retries are bounded; a
// close ends a retry in progress; a write that comes during a retry lands on the new stream.
#include "net/refused_retry.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace gost {
namespace {

using namespace std::chrono_literals;

// What the fake server did with one stream.
struct Peer {
  bool refuse = false;  // ends the stream at once, no byte
  std::string reply;    // else: these bytes, then the end
  std::string received;
  bool shut = false, closed = false;
};

class FakeStream final : public Stream {
 public:
  FakeStream(asio::any_io_executor ex, Peer* p) : ex_(std::move(ex)), p_(p) {}
  asio::any_io_executor executor() override { return ex_; }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    ec = {};
    if (p_->closed) {
      ec = asio::error::operation_aborted;
      co_return 0;
    }
    if (p_->refuse || offset_ == p_->reply.size()) {
      ec = asio::error::eof;
      co_return 0;
    }
    std::size_t n = std::min(buf.size(), p_->reply.size() - offset_);
    std::memcpy(buf.data(), p_->reply.data() + offset_, n);
    offset_ += n;
    co_return n;
  }
  // At most 4 bytes a call: the wrapper must record what was written, not what was asked.
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    ec = {};
    if (p_->closed || p_->shut) {
      ec = asio::error::broken_pipe;
      co_return 0;
    }
    std::size_t n = std::min<std::size_t>(buf.size(), 4);
    p_->received.append(static_cast<const char*>(buf.data()), n);
    co_return n;
  }
  awaitable<void> shutdown_write(error_code& ec) override {
    ec = {};
    p_->shut = true;
    co_return;
  }
  void close() override { p_->closed = true; }

 private:
  asio::any_io_executor ex_;
  Peer* p_;
  std::size_t offset_ = 0;
};

// A server that refuses its first `refusals` streams (-1: all) and answers the others `reply`.
struct Server {
  int refusals = 0;
  std::string reply = "answer";
  std::vector<std::unique_ptr<Peer>> peers;
  std::vector<std::string> whys;

  StreamPtr open(asio::any_io_executor ex) {
    auto p = std::make_unique<Peer>();
    p->refuse = refusals < 0 || static_cast<int>(peers.size()) < refusals;
    p->reply = reply;
    peers.push_back(std::move(p));
    return std::make_unique<FakeStream>(std::move(ex), peers.back().get());
  }
};

class Tunnel final : public net::RefusedRetryStream {
 public:
  Tunnel(Server& s, asio::any_io_executor ex, net::RefusedRetryLimits limits)
      : RefusedRetryStream(s.open(ex), limits), server_(s), ex_(std::move(ex)) {}

 protected:
  awaitable<StreamPtr> reopen() override { co_return server_.open(ex_); }
  void refused(std::string_view why) override { server_.whys.emplace_back(why); }
  std::string server() const override { return "test"; }

 private:
  Server& server_;
  asio::any_io_executor ex_;
};

net::RefusedRetryLimits fast() {
  net::RefusedRetryLimits l;
  l.backoff = 1ms;
  return l;
}

void run(asio::io_context& io, std::function<awaitable<void>()> body) {
  bool done = false;
  asio::co_spawn(io, body(), [&](std::exception_ptr e) {
    done = true;
    if (e) std::rethrow_exception(e);
  });
  io.run_for(10s);
  EXPECT_TRUE(done);
}

awaitable<std::string> read_all(Stream& s, error_code& ec) {
  std::string out;
  char buf[3];
  for (;;) {
    std::size_t n = co_await s.read_some(asio::buffer(buf), ec);
    if (ec) co_return out;
    out.append(buf, n);
  }
}

TEST(RefusedRetry, RefusedTwiceThenServedWithTheWritesReplayed) {
  asio::io_context io;
  Server server;
  server.refusals = 2;
  run(io, [&]() -> awaitable<void> {
    Tunnel t(server, io.get_executor(), fast());
    error_code ec;
    co_await write_all(t, asio::buffer(std::string_view("request+payload")), ec);
    EXPECT_FALSE(ec);
    auto got = co_await read_all(t, ec);
    EXPECT_EQ(ec, asio::error::eof);  // the served stream's own end: not retried
    EXPECT_EQ(got, "answer");
    co_await write_all(t, asio::buffer(std::string_view("more")), ec);
    EXPECT_EQ(t.retries(), 2);
  });
  ASSERT_EQ(server.peers.size(), 3u);
  EXPECT_EQ(server.peers[0]->received, "request+payload");
  EXPECT_EQ(server.peers[1]->received, "request+payload");
  EXPECT_EQ(server.peers[2]->received, "request+payloadmore");
  EXPECT_TRUE(server.peers[0]->closed);
  EXPECT_TRUE(server.peers[1]->closed);
  EXPECT_FALSE(server.peers[2]->closed);
  EXPECT_EQ(server.whys, (std::vector<std::string>{"retrying", "retrying"}));
}

TEST(RefusedRetry, GivesUpAfterTheBound) {
  asio::io_context io;
  Server server;
  server.refusals = -1;
  run(io, [&]() -> awaitable<void> {
    Tunnel t(server, io.get_executor(), fast());
    error_code ec;
    co_await write_all(t, asio::buffer(std::string_view("hi")), ec);
    char c;
    co_await t.read_some(asio::buffer(&c, 1), ec);
    EXPECT_EQ(ec, asio::error::connection_refused);
  });
  EXPECT_EQ(server.peers.size(), 4u);  // 3 retries
  ASSERT_EQ(server.whys.size(), 4u);
  EXPECT_EQ(server.whys.back(), "given up after 4 attempts");
}

TEST(RefusedRetry, NotRetriedAfterAnAnswerHalfCloseOrPastTheBound) {
  {
    asio::io_context io;
    Server server;
    server.refusals = 0;
    server.reply = "x";  // one byte, then the end: a served stream
    run(io, [&]() -> awaitable<void> {
      Tunnel t(server, io.get_executor(), fast());
      error_code ec;
      auto got = co_await read_all(t, ec);
      EXPECT_EQ(got, "x");
      EXPECT_EQ(ec, asio::error::eof);
    });
    EXPECT_EQ(server.peers.size(), 1u);
    EXPECT_TRUE(server.whys.empty());
  }
  {
    asio::io_context io;
    Server server;
    server.refusals = 1;
    run(io, [&]() -> awaitable<void> {
      Tunnel t(server, io.get_executor(), fast());
      error_code ec;
      co_await write_all(t, asio::buffer(std::string_view("all")), ec);
      co_await t.shutdown_write(ec);
      char c;
      co_await t.read_some(asio::buffer(&c, 1), ec);
      EXPECT_EQ(ec, asio::error::eof);  // maybe no refusal: the end stands
    });
    EXPECT_EQ(server.peers.size(), 1u);
    EXPECT_TRUE(server.whys.empty());
  }
  {
    asio::io_context io;
    Server server;
    server.refusals = 1;
    auto limits = fast();
    limits.replay_limit = 10;
    run(io, [&]() -> awaitable<void> {
      Tunnel t(server, io.get_executor(), limits);
      error_code ec;
      co_await write_all(t, asio::buffer(std::string_view("0123456789A")), ec);
      char c;
      co_await t.read_some(asio::buffer(&c, 1), ec);
      EXPECT_EQ(ec, asio::error::eof);
    });
    EXPECT_EQ(server.peers.size(), 1u);
    EXPECT_EQ(server.whys, (std::vector<std::string>{"not retried: more than 10 bytes written"}));
  }
}

// A stream that ends long after it was opened is no refusal (e.g. a relay server's request
// timeout).
TEST(RefusedRetry, NotRetriedOutsideTheRefusalWindow) {
  asio::io_context io;
  Server server;
  server.refusals = 1;
  auto limits = fast();
  limits.refusal_window = 5ms;
  run(io, [&]() -> awaitable<void> {
    Tunnel t(server, io.get_executor(), limits);
    asio::steady_timer later(io, 30ms);
    co_await later.async_wait(use_nothrow);
    error_code ec;
    char c;
    co_await t.read_some(asio::buffer(&c, 1), ec);
    EXPECT_EQ(ec, asio::error::eof);
  });
  EXPECT_EQ(server.peers.size(), 1u);
  EXPECT_TRUE(server.whys.empty());
}

// A write that comes while the retry waits goes to the new stream, after the replay.
TEST(RefusedRetry, WriteDuringTheRetryLandsOnTheNewStream) {
  asio::io_context io;
  Server server;
  server.refusals = 1;
  auto limits = fast();
  limits.backoff = 50ms;
  bool wrote = false;
  Tunnel t(server, io.get_executor(), limits);
  run(io, [&]() -> awaitable<void> {
    error_code ec;
    co_await write_all(t, asio::buffer(std::string_view("req")), ec);
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
          asio::steady_timer pause(io, 10ms);  // the reader is in its back-off by then
          co_await pause.async_wait(use_nothrow);
          error_code wec;
          co_await write_all(t, asio::buffer(std::string_view("-late")), wec);
          EXPECT_FALSE(wec);
          wrote = true;
        },
        asio::detached);
    auto got = co_await read_all(t, ec);
    EXPECT_EQ(got, "answer");
  });
  EXPECT_TRUE(wrote);  // it waited for the switch (the reader went on first)
  ASSERT_EQ(server.peers.size(), 2u);
  EXPECT_EQ(server.peers[0]->received, "req");
  EXPECT_EQ(server.peers[1]->received, "req-late");
}

// close() ends a retry in its back-off at once; nothing is opened after it.
TEST(RefusedRetry, CloseDuringTheBackOff) {
  asio::io_context io;
  Server server;
  server.refusals = -1;
  auto limits = fast();
  limits.backoff = 10s;
  run(io, [&]() -> awaitable<void> {
    Tunnel t(server, io.get_executor(), limits);
    asio::steady_timer later(io, 20ms);
    later.async_wait([&](error_code) { t.close(); });
    auto start = std::chrono::steady_clock::now();
    error_code ec;
    char c;
    co_await t.read_some(asio::buffer(&c, 1), ec);
    EXPECT_EQ(ec, asio::error::operation_aborted);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  });
  EXPECT_EQ(server.peers.size(), 1u);
  EXPECT_TRUE(server.peers[0]->closed);
}

// close() ends a reopen in progress (a dial that hangs) at once, as does the reopen timeout.
class HangingTunnel final : public net::RefusedRetryStream {
 public:
  HangingTunnel(Server& s, asio::any_io_executor ex, net::RefusedRetryLimits limits)
      : RefusedRetryStream(s.open(ex), limits), ex_(std::move(ex)) {}
  int reopens = 0;

 protected:
  awaitable<StreamPtr> reopen() override {
    ++reopens;
    asio::steady_timer forever(ex_, 1h);
    co_await forever.async_wait(asio::use_awaitable);  // throws when cancelled
    co_return nullptr;
  }
  void refused(std::string_view) override {}
  std::string server() const override { return "test"; }

 private:
  asio::any_io_executor ex_;
};

TEST(RefusedRetry, CloseOrTimeoutEndsAHangingReopen) {
  for (bool close : {true, false}) {
    asio::io_context io;
    Server server;
    server.refusals = -1;
    auto limits = fast();
    limits.reopen_timeout = close ? std::chrono::nanoseconds(1h) : std::chrono::nanoseconds(50ms);
    int reopens = 0;
    run(io, [&]() -> awaitable<void> {
      HangingTunnel t(server, io.get_executor(), limits);
      asio::steady_timer later(io, 30ms);
      if (close) later.async_wait([&](error_code) { t.close(); });
      auto start = std::chrono::steady_clock::now();
      error_code ec;
      char c;
      co_await t.read_some(asio::buffer(&c, 1), ec);
      EXPECT_EQ(ec, close ? asio::error::operation_aborted : asio::error::timed_out);
      EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
      reopens = t.reopens;
    });
    EXPECT_EQ(reopens, 1);
  }
}

}  // namespace
}  // namespace gost
