// smux v1 frame codec (golden frames of docs/PROTOCOLS.md "smux", "socks5: BIND and MBIND") and the
// mux session of net/mux over a loopback TCP connection.
#include "proto/smux.hpp"

#include <gtest/gtest.h>

#include <cctype>

#include "core/tcp_stream.hpp"
#include "net/mux.hpp"

namespace smux = gost::proto::smux;
using namespace gost;

namespace {

std::string hex(std::string_view h) {
  std::string out;
  int hi = -1;
  for (char c : h) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) continue;
    int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10);
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<char>(hi * 16 + v));
      hi = -1;
    }
  }
  return out;
}

TEST(SmuxCodec, GoldenFrames) {
  // MBIND observed on GOST 3.2.6: SYN stream 3, then the SOCKS5 reply, then "mux!".
  EXPECT_EQ(smux::encode_frame(smux::Cmd::syn, 3), hex("01 00 0000 03000000"));
  EXPECT_EQ(smux::encode_frame(smux::Cmd::psh, 3, "mux!"), hex("01 02 0400 03000000 6d757821"));
  // relay TCP BIND: the per-stream response header (14 bytes).
  std::string resp = hex("01 00 00 0a 02 00 07 01 7f000001 d431");
  auto f = smux::encode_frame(smux::Cmd::psh, 3, resp);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->substr(0, 8), hex("01 02 0e00 03000000"));
  EXPECT_EQ(f->substr(8), resp);
  EXPECT_EQ(smux::encode_frame(smux::Cmd::fin, 0x01020304), hex("01 01 0000 04030201"));
  EXPECT_EQ(smux::encode_frame(smux::Cmd::nop, 0), hex("01 03 0000 00000000"));
}

TEST(SmuxCodec, ParseHeaderLittleEndian) {
  auto h = smux::parse_header(hex("01 02 0e00 03000000"));
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, (smux::Header{1, 2, 14, 3}));
  EXPECT_TRUE(smux::valid_v1(*h));
  h = smux::parse_header(hex("01 02 ffff ffffffff ee"));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->length, 0xFFFF);
  EXPECT_EQ(h->stream_id, 0xFFFFFFFFu);
  EXPECT_FALSE(smux::parse_header(hex("01 02 0e00 030000")));
  EXPECT_FALSE(smux::parse_header(""));
}

TEST(SmuxCodec, Validity) {
  EXPECT_FALSE(smux::valid_v1({2, 0, 0, 1}));  // version 2
  EXPECT_FALSE(smux::valid_v1({1, 4, 0, 1}));  // UPD is version 2 only
  EXPECT_FALSE(smux::valid_v1({1, 9, 0, 1}));
  for (std::uint8_t c = 0; c <= 3; ++c) EXPECT_TRUE(smux::valid_v1({1, c, 0, 1}));
}

TEST(SmuxCodec, PayloadBound) {
  EXPECT_TRUE(smux::encode_frame(smux::Cmd::psh, 1, std::string(65535, 'x')));
  EXPECT_FALSE(smux::encode_frame(smux::Cmd::psh, 1, std::string(65536, 'x')));
}

TEST(MuxOptions, RejectsYamuxAndVersion2) {
  config::Metadata md;
  EXPECT_NO_THROW(net::mux_config(md, "t"));
  md.set("mux.version", config::Value(std::string("2")));
  EXPECT_THROW(net::mux_config(md, "t"), config::ConfigError);
  md.set("mux.version", config::Value(std::string("1")));
  md.set("mux.type", config::Value(std::string("yamux")));
  EXPECT_THROW(net::mux_config(md, "t"), config::ConfigError);
  md.set("mux.type", config::Value(std::string("smux")));
  md.set("mux.maxFrameSize", config::Value(std::string("1000")));
  EXPECT_EQ(net::mux_config(md, "t").max_frame_size, 1000u);
  md.set("mux.maxStreamWindow", config::Value(std::string("1000")));
  EXPECT_THROW(net::mux_config(md, "t"), config::ConfigError);
}

// The session over a loopback TCP connection; the test plays the smux server with raw frames.
TEST(MuxSession, StreamsOverLoopback) {
  asio::io_context io;
  tcp::acceptor acc(io, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket a(io), b(io);
  b.connect(acc.local_endpoint());
  acc.accept(a);
  std::string received;
  bool done = false;
  auto test = [&]() -> awaitable<void> {
    net::MuxConfig cfg;
    cfg.max_frame_size = 3;
    auto session = net::MuxSession::client(std::make_unique<TcpStream>(std::move(a)), cfg);
    TcpStream peer(std::move(b));
    error_code ec;
    StreamPtr s = co_await session->open_stream(ec);
    EXPECT_FALSE(ec);
    co_await write_all(*s, asio::buffer(std::string_view("hello")), ec);
    co_await s->shutdown_write(ec);
    // SYN 3, PSH "hel", PSH "lo", FIN
    std::string want =
        hex("01 00 0000 03000000  01 02 0300 03000000 68656c  01 02 0200 03000000 6c6f "
            "01 01 0000 03000000");
    std::string got(want.size(), '\0');
    co_await asio::async_read(*peer.raw_tcp(), asio::buffer(got), asio::use_awaitable);
    EXPECT_EQ(got, want);
    // data for stream 3, a frame for an unknown stream (dropped), then FIN
    std::string in = *smux::encode_frame(smux::Cmd::psh, 3, "wor") +
                     *smux::encode_frame(smux::Cmd::psh, 9, "zz") +
                     *smux::encode_frame(smux::Cmd::psh, 3, "ld") +
                     *smux::encode_frame(smux::Cmd::fin, 3);
    co_await write_all(peer, asio::buffer(in), ec);
    char buf[16];
    for (;;) {
      std::size_t n = co_await s->read_some(asio::buffer(buf), ec);
      if (ec) break;
      received.append(buf, n);
    }
    EXPECT_EQ(ec, asio::error::eof);
    // a peer-opened stream is refused with a FIN
    std::string syn = *smux::encode_frame(smux::Cmd::syn, 2);
    co_await write_all(peer, asio::buffer(syn), ec);
    std::string fin(8, '\0');
    co_await asio::async_read(*peer.raw_tcp(), asio::buffer(fin), asio::use_awaitable);
    EXPECT_EQ(fin, hex("01 01 0000 02000000"));
    // an invalid frame ends the session: streams fail, new ones cannot be opened
    std::string bad = hex("02 02 0000 03000000");
    co_await write_all(peer, asio::buffer(bad), ec);
    co_await session->wait_closed();
    EXPECT_TRUE(session->closed());
    StreamPtr s2 = co_await session->open_stream(ec);
    EXPECT_FALSE(s2);
    EXPECT_TRUE(ec);
    s.reset();
    done = true;
  };
  asio::co_spawn(io, test(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run_for(std::chrono::seconds(10));
  EXPECT_TRUE(done);
  EXPECT_EQ(received, "world");
}

}  // namespace
