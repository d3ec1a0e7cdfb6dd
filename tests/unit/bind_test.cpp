// net/bind: the client side of a UDP BIND (docs/PROTOCOLS.md "rtcp: rudp flows"): UDP-TUN frames
// from the node demultiplexed into one flow per peer, answers framed back with the peer's
// address, the idle TTL, the per-flow queue and backlog bounds, and the end of the binding.
#include "net/bind.hpp"

#include <gtest/gtest.h>

#include "core/tcp_stream.hpp"
#include "proto/socks5.hpp"

namespace gost::net {
namespace {

using namespace std::chrono_literals;
namespace socks5 = proto::socks5;

std::pair<tcp::socket, tcp::socket> socket_pair(asio::io_context& io) {
  tcp::acceptor acc(io, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket x(io), y(io);
  x.connect(acc.local_endpoint());
  acc.accept(y);
  return {std::move(x), std::move(y)};
}

std::string frame(const std::string& peer, const std::string& data) {
  auto a = socks5::address_from_text(peer);
  return socks5::udp_tun_header(static_cast<std::uint16_t>(data.size()), *a) + data;
}

struct Fixture {
  asio::io_context io;
  tcp::socket node{io};  // the node's end: writes frames, reads answers
  std::unique_ptr<Binding> binding;

  explicit Fixture(BindOptions o = {}) {
    auto [a, b] = socket_pair(io);
    node = std::move(b);
    auto tun = std::make_unique<UdpTunStream>(std::make_unique<TcpStream>(std::move(a)));
    binding = udp_binding(std::move(tun), "[::]:5353", o, log::Logger());
  }

  void send(const std::string& bytes) { asio::write(node, asio::buffer(bytes)); }

  // Runs `f` as a coroutine to completion (bounded).
  template <class F>
  void run(F f) {
    bool done = false;
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
          co_await f();
          done = true;
          io.stop();
        },
        asio::detached);
    io.run_for(5s);
    io.restart();
    ASSERT_TRUE(done);
  }
};

awaitable<std::string> read_datagram(Stream& s, error_code& ec) {
  char buf[2048];
  auto n = co_await s.read_some(asio::buffer(buf), ec);
  co_return std::string(buf, n);
}

TEST(UdpBinding, OneFlowPerPeerAndAnswersFramedBack) {
  Fixture f;
  f.send(frame("203.0.113.5:5000", "q1") + frame("203.0.113.6:6000", "r1") +
         frame("203.0.113.5:5000", "q2"));
  StreamPtr a, b;
  std::string a1, a2, b1;
  f.run([&]() -> awaitable<void> {
    error_code ec;
    a = co_await f.binding->accept(ec);
    EXPECT_FALSE(ec);
    b = co_await f.binding->accept(ec);
    EXPECT_FALSE(ec);
    a1 = co_await read_datagram(*a, ec);
    a2 = co_await read_datagram(*a, ec);
    b1 = co_await read_datagram(*b, ec);
    EXPECT_FALSE(ec);
    auto* pc = dynamic_cast<PacketConn*>(a.get());
    EXPECT_NE(pc, nullptr);
    std::string answer = "answer";
    co_await pc->write_to(asio::buffer(answer), "ignored:1", ec);
    EXPECT_FALSE(ec);
  });
  EXPECT_EQ(a->remote_address(), "203.0.113.5:5000");
  EXPECT_EQ(a->local_address(), "[::]:5353");
  EXPECT_EQ(b->remote_address(), "203.0.113.6:6000");
  EXPECT_EQ(a1, "q1");
  EXPECT_EQ(a2, "q2");
  EXPECT_EQ(b1, "r1");
  std::string expected = frame("203.0.113.5:5000", "answer");
  std::string got(expected.size(), '\0');
  asio::read(f.node, asio::buffer(got));
  EXPECT_EQ(got, expected);
}

TEST(UdpBinding, IdleFlowEndsAfterTtlAndPeerStartsANewOne) {
  Fixture f(BindOptions{.udp_ttl = 100ms});
  f.send(frame("198.51.100.1:53", "x"));
  f.run([&]() -> awaitable<void> {
    error_code ec;
    auto s = co_await f.binding->accept(ec);
    EXPECT_EQ(co_await read_datagram(*s, ec), "x");
    auto start = std::chrono::steady_clock::now();
    co_await read_datagram(*s, ec);
    EXPECT_EQ(ec, asio::error::eof);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 90ms);
    f.send(frame("198.51.100.1:53", "again"));
    ec = {};
    auto s2 = co_await f.binding->accept(ec);
    EXPECT_FALSE(ec);
    EXPECT_EQ(co_await read_datagram(*s2, ec), "again");
  });
}

TEST(UdpBinding, QueueAndBacklogAreBounded) {
  Fixture f(BindOptions{.udp_queue_size = 2, .backlog = 1});
  // Three datagrams for one peer (one over its queue), then a second new peer (over the backlog).
  f.send(frame("192.0.2.1:1", "1") + frame("192.0.2.1:1", "2") + frame("192.0.2.1:1", "3") +
         frame("192.0.2.2:2", "other"));
  f.run([&]() -> awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor, 100ms);
    co_await t.async_wait(use_nothrow);  // the read loop has seen every frame
    error_code ec;
    auto s = co_await f.binding->accept(ec);
    EXPECT_EQ(s->remote_address(), "192.0.2.1:1");
    EXPECT_EQ(co_await read_datagram(*s, ec), "1");
    EXPECT_EQ(co_await read_datagram(*s, ec), "2");
    f.send(frame("192.0.2.1:1", "4"));
    EXPECT_EQ(co_await read_datagram(*s, ec), "4");  // "3" was dropped
    f.send(frame("192.0.2.3:3", "late"));
    auto s2 = co_await f.binding->accept(ec);
    EXPECT_EQ(s2->remote_address(), "192.0.2.3:3");  // 192.0.2.2 was dropped
  });
}

TEST(UdpBinding, EndOfTheTunEndsFlowsAndAccept) {
  Fixture f;
  f.send(frame("192.0.2.9:9", "a"));
  f.run([&]() -> awaitable<void> {
    error_code ec;
    auto s = co_await f.binding->accept(ec);
    EXPECT_EQ(co_await read_datagram(*s, ec), "a");
    f.node.close();
    co_await read_datagram(*s, ec);
    EXPECT_EQ(ec, asio::error::eof);
    ec = {};
    auto none = co_await f.binding->accept(ec);
    EXPECT_TRUE(ec);
    EXPECT_EQ(none, nullptr);
  });
}

TEST(UdpBinding, MalformedFrameEndsTheBinding) {
  Fixture f;
  f.send(std::string("\x00\x03\x00\x07garbage", 11));  // FRAG must be 0xFF, ATYP 7 is unknown
  f.run([&]() -> awaitable<void> {
    error_code ec;
    auto none = co_await f.binding->accept(ec);
    EXPECT_TRUE(ec);
    EXPECT_EQ(none, nullptr);
  });
}

}  // namespace
}  // namespace gost::net
