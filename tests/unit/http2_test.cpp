// net/http2: the request heads of docs/PROTOCOLS.md "h2: client" (golden lists), and a client
// session and a server session of ours over loopback TCP: data both ways, END_STREAM half-close,
// error statuses, RST, and flow control as the back-pressure of a reader that pauses.
#include "net/http2.hpp"

#include <gtest/gtest.h>

#include <random>

#include "core/tcp_stream.hpp"

namespace gost {
namespace {

using net::H2Headers;

TEST(Http2Request, GoldenDefaultConnect) {
  // Observed from GOST 3.2.6 (h2 and h2c, default mode).
  H2Headers want = {{":authority", "127.0.0.1:8443"},
                    {":method", "CONNECT"},
                    {"accept-encoding", "gzip"},
                    {"user-agent", "Go-http-client/2.0"}};
  EXPECT_EQ(net::h2_tunnel_request("127.0.0.1:8443", "", true, {}), want);
  EXPECT_EQ(net::h2_tunnel_request("127.0.0.1:8443", "", false, {}), want);
}

TEST(Http2Request, GoldenPathMode) {
  H2Headers want = {{":authority", "example.com:8443"},
                    {":method", "GET"},
                    {":path", "/tun"},
                    {":scheme", "https"},
                    {"accept-encoding", "gzip"},
                    {"user-agent", "Go-http-client/2.0"}};
  EXPECT_EQ(net::h2_tunnel_request("example.com:8443", "/tun", true, {}), want);
  want[3].value = "http";  // h2c
  EXPECT_EQ(net::h2_tunnel_request("example.com:8443", "/tun", false, {}), want);
}

TEST(Http2Request, HeaderMapComesFirstAndOverrides) {
  H2Headers extra = {{"x-foo", "bar"}, {"user-agent", "me"}};
  H2Headers want = {{":authority", "h:1"},
                    {":method", "CONNECT"},
                    {"x-foo", "bar"},
                    {"user-agent", "me"},
                    {"accept-encoding", "gzip"}};
  EXPECT_EQ(net::h2_tunnel_request("h:1", "", false, extra), want);
}

TEST(Http2Options, HeaderMapAndWindows) {
  config::Metadata md;
  config::ValueMap m;
  m.emplace_back("X-Foo", config::Value{std::string("bar")});
  md.set("header", config::Value{m});
  md.set("http2.streamWindow", config::Value{std::string("1048576")});
  auto h = net::h2_header_map(md, "test");
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0], (net::H2Header{"x-foo", "bar"}));
  EXPECT_EQ(net::http2_config(md, "test").stream_window, 1048576u);
  md.set("http2.streamWindow", config::Value{std::string("10")});
  EXPECT_THROW(net::http2_config(md, "test"), config::ConfigError);
}

// A connected pair of sessions over loopback TCP; runs `body` and then the io_context.
template <class Body>
void with_sessions(net::Http2Config cfg, Body body, int seconds = 20) {
  asio::io_context io;
  tcp::acceptor acc(io, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket a(io), b(io);
  b.connect(acc.local_endpoint());
  acc.accept(a);
  auto server = net::Http2Session::server(std::make_unique<TcpStream>(std::move(a)), cfg);
  auto client = net::Http2Session::client(std::make_unique<TcpStream>(std::move(b)), cfg);
  bool done = false;
  asio::co_spawn(io, body(server, client, done), [&](std::exception_ptr e) {
    server->close();
    client->close();
    io.stop();
    if (e) std::rethrow_exception(e);
  });
  io.run_for(std::chrono::seconds(seconds));
  EXPECT_TRUE(done);
  server->close();
  client->close();
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

awaitable<std::string> read_all(Stream& s, error_code& ec) {
  std::string out;
  char buf[32768];
  for (;;) {
    std::size_t n = co_await s.read_some(asio::buffer(buf), ec);
    if (ec) break;
    out.append(buf, n);
  }
  co_return out;
}

using SessionPtr = std::shared_ptr<net::Http2Session>;

TEST(Http2Session, TunnelBothWaysWithHalfClose) {
  const std::string up = random_bytes(5 << 20, 1), down = random_bytes(3 << 20, 2);
  with_sessions({}, [&](SessionPtr server, SessionPtr client, bool& done) -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    std::string got_up;
    error_code server_ec;
    bool server_done = false;
    auto serve = [&]() -> awaitable<void> {
      error_code ec;
      auto s = co_await server->accept_stream(ec);
      EXPECT_TRUE(s);
      if (!s) co_return;
      EXPECT_EQ(s->header(":method"), "CONNECT");
      EXPECT_EQ(s->header(":authority"), "example:1");
      s->respond(200, {{"date", net::h2_date()}}, false);
      got_up = co_await read_all(*s, server_ec);  // until the client's END_STREAM
      co_await write_all(*s, asio::buffer(down), ec);
      EXPECT_FALSE(ec);
      co_await s->shutdown_write(ec);
      server_done = true;
    };
    asio::co_spawn(ex, serve(), asio::detached);
    error_code ec;
    auto req = net::h2_tunnel_request("example:1", "", false, {});
    auto s = co_await client->open_stream(req, ec);
    EXPECT_TRUE(s) << ec.message();
    if (!s) co_return;
    EXPECT_EQ(s->status(), 200);
    EXPECT_FALSE(s->header("date").empty());
    co_await write_all(*s, asio::buffer(up), ec);
    EXPECT_FALSE(ec);
    co_await s->shutdown_write(ec);  // half-close: reading goes on
    std::string got_down = co_await read_all(*s, ec);
    EXPECT_EQ(ec, asio::error::eof);
    EXPECT_EQ(server_ec, asio::error::eof);
    EXPECT_TRUE(server_done);
    EXPECT_TRUE(got_up == up) << got_up.size();
    EXPECT_TRUE(got_down == down) << got_down.size();
    EXPECT_EQ(client->stream_count(), 0u);  // both ends closed: nghttp2 forgot the stream
    done = true;
  });
}

TEST(Http2Session, ErrorStatusResetAndManyStreams) {
  with_sessions({}, [&](SessionPtr server, SessionPtr client, bool& done) -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    error_code reset_ec;
    bool reset_seen = false;
    auto serve = [&]() -> awaitable<void> {
      error_code ec;
      // 1: an error answer with END_STREAM
      auto s = co_await server->accept_stream(ec);
      s->respond(405, {{"content-length", "0"}}, true);
      s.reset();
      // 2: accepted, then the client resets it
      s = co_await server->accept_stream(ec);
      s->respond(200, {}, false);
      co_await read_all(*s, reset_ec);
      reset_seen = true;
      s.reset();
      // 3..: echo streams
      for (;;) {
        auto e = co_await server->accept_stream(ec);
        if (!e) break;
        e->respond(200, {}, false);
        auto echo = [](net::Http2StreamPtr st) -> awaitable<void> {
          error_code ec2;
          auto data = co_await read_all(*st, ec2);
          co_await write_all(*st, asio::buffer(data), ec2);
          co_await st->shutdown_write(ec2);
        };
        asio::co_spawn(ex, echo(std::move(e)), asio::detached);
      }
    };
    asio::co_spawn(ex, serve(), asio::detached);
    error_code ec;
    auto req = net::h2_tunnel_request("x:1", "", false, {});
    auto s1 = co_await client->open_stream(req, ec);
    EXPECT_TRUE(s1);
    if (!s1) co_return;
    EXPECT_EQ(s1->status(), 405);
    EXPECT_EQ(s1->header("content-length"), "0");
    s1.reset();
    auto s2 = co_await client->open_stream(req, ec);
    EXPECT_TRUE(s2 && s2->status() == 200);
    s2->close();  // RST_STREAM(CANCEL)
    asio::steady_timer t(ex, std::chrono::milliseconds(200));
    co_await t.async_wait(use_nothrow);
    EXPECT_TRUE(reset_seen);
    EXPECT_EQ(reset_ec, asio::error::connection_reset);
    // 50 concurrent streams on the one session
    int ok = 0;
    int pending = 50;
    asio::steady_timer all(ex, asio::steady_timer::time_point::max());
    for (int i = 0; i < 50; ++i) {
      auto one = [&, i]() -> awaitable<void> {
        error_code e;
        auto st = co_await client->open_stream(req, e);
        if (st) {
          std::string msg = random_bytes(10000 + i, 100 + i);
          co_await write_all(*st, asio::buffer(msg), e);
          co_await st->shutdown_write(e);
          auto back = co_await read_all(*st, e);
          if (back == msg) ++ok;
        }
        if (--pending == 0) all.cancel();
      };
      asio::co_spawn(ex, one(), asio::detached);
    }
    co_await all.async_wait(use_nothrow);
    EXPECT_EQ(ok, 50);
    done = true;
  });
}

TEST(Http2Session, FlowControlHoldsTheWriter) {
  net::Http2Config cfg;
  cfg.stream_window = 128 * 1024;
  cfg.connection_window = 1 << 20;
  const std::string data = random_bytes(4 << 20, 3);
  with_sessions(cfg, [&](SessionPtr server, SessionPtr client, bool& done) -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    std::size_t written = 0;
    bool writer_done = false;
    net::Http2StreamPtr accepted;
    auto serve = [&]() -> awaitable<void> {
      error_code ec;
      accepted = co_await server->accept_stream(ec);
      accepted->respond(200, {}, false);
    };
    asio::co_spawn(ex, serve(), asio::detached);
    error_code ec;
    auto req = net::h2_tunnel_request("x:1", "", false, {});
    auto s = co_await client->open_stream(req, ec);
    EXPECT_TRUE(s);
    if (!s) co_return;
    auto writer = [&]() -> awaitable<void> {
      error_code e;
      for (std::size_t off = 0; off < data.size(); off += 16384) {
        co_await write_all(*s, asio::buffer(data.data() + off, 16384), e);
        if (e) break;
        written = off + 16384;
      }
      co_await s->shutdown_write(e);
      writer_done = true;
    };
    asio::co_spawn(ex, writer(), asio::detached);
    // The server does not read: the writer stops at the stream window.
    asio::steady_timer t(ex, std::chrono::milliseconds(500));
    co_await t.async_wait(use_nothrow);
    EXPECT_FALSE(writer_done);
    EXPECT_LE(written, cfg.stream_window);
    EXPECT_GE(written, cfg.stream_window / 2);
    // Reading releases it.
    std::string got = co_await read_all(*accepted, ec);
    EXPECT_EQ(ec, asio::error::eof);
    EXPECT_TRUE(writer_done);
    EXPECT_TRUE(got == data) << got.size();
    done = true;
  });
}

TEST(Http2Session, GoawayMakesTheSessionClosing) {
  with_sessions({}, [&](SessionPtr server, SessionPtr client, bool& done) -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    EXPECT_TRUE(client->can_open());
    server->shutdown();
    asio::steady_timer t(ex, std::chrono::milliseconds(200));
    co_await t.async_wait(use_nothrow);
    EXPECT_TRUE(client->closing());
    EXPECT_FALSE(client->can_open());
    error_code ec;
    auto req = net::h2_tunnel_request("x:1", "", false, {});
    auto s = co_await client->open_stream(req, ec);
    EXPECT_FALSE(s);
    EXPECT_TRUE(ec);
    done = true;
  });
}

}  // namespace
}  // namespace gost
