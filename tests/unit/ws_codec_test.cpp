// WebSocket codec (golden bytes of docs/PROTOCOLS.md "ws: handshake", "ws: framing") and the
// WebSocket stream of net/ws over a loopback TCP connection.
#include <gtest/gtest.h>

#include <cctype>
#include <random>

#include "core/tcp_stream.hpp"
#include "net/ws.hpp"
#include "proto/ws.hpp"

namespace ws = gost::proto::ws;
namespace http = gost::proto::http;
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

http::Request request(std::string_view text) {
  http::Request r;
  std::size_t n = 0;
  EXPECT_EQ(http::parse_request(text, r, n), http::ParseStatus::complete) << text;
  return r;
}

// Feeds `wire` to a decoder in pieces of `step` bytes (copied into a scratch buffer, as a read
// would), collecting data and events.
struct Decoded {
  std::string data;
  std::vector<ws::Decoder::Event> events;
  std::vector<std::string> control;
};
Decoded decode_all(ws::Decoder& d, std::string_view wire, std::size_t step = SIZE_MAX) {
  Decoded out;
  for (std::size_t off = 0; off < wire.size();) {
    std::size_t n = std::min(step, wire.size() - off);
    std::string buf(wire.substr(off, n));
    off += n;
    auto* p = reinterpret_cast<std::uint8_t*>(buf.data());
    std::size_t in = 0, produced = 0;
    while (in < n) {
      auto r = d.decode(p + in, n - in, p + produced);
      in += r.consumed;
      produced += r.produced;
      if (r.event != ws::Decoder::Event::none) {
        out.events.push_back(r.event);
        auto cp = d.control_payload();
        out.control.emplace_back(reinterpret_cast<const char*>(cp.data()), cp.size());
        if (r.event == ws::Decoder::Event::error) break;
      } else if (r.consumed == 0) {
        break;
      }
    }
    out.data.append(buf.data(), produced);
    if (!out.events.empty() && out.events.back() == ws::Decoder::Event::error) break;
  }
  return out;
}

const ws::MaskKey kKey = {0x37, 0xfa, 0x21, 0x3d};

}  // namespace

// ---- handshake ----------------------------------------------------------------------------------

TEST(WsHandshake, ClientRequestGolden) {
  ws::ClientRequest r;
  r.host = "example.com:8080";
  r.key = "d2L12hlv+CwBptygvJI7DQ==";
  EXPECT_EQ(ws::client_request(r),
            "GET /ws HTTP/1.1\r\n"
            "Host: example.com:8080\r\n"
            "User-Agent: Go-http-client/1.1\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Key: d2L12hlv+CwBptygvJI7DQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Upgrade: websocket\r\n"
            "\r\n");
}

TEST(WsHandshake, ClientRequestWithHeadersAndCompressionGolden) {
  ws::ClientRequest r;
  r.host = "example.com:8080";
  r.key = "ZokXnCLBYzGygRBG1jcdTg==";
  r.compression = true;
  r.headers = {{"x-token", "abc"}, {"Host", "cdn.example.net"}};
  EXPECT_EQ(ws::client_request(r),
            "GET /ws HTTP/1.1\r\nHost: cdn.example.net\r\nUser-Agent: Go-http-client/1.1\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Extensions: permessage-deflate; "
            "server_no_context_takeover; client_no_context_takeover\r\nSec-WebSocket-Key: "
            "ZokXnCLBYzGygRBG1jcdTg==\r\nSec-WebSocket-Version: 13\r\nUpgrade: "
            "websocket\r\nX-Token: abc\r\n\r\n");
}

TEST(WsHandshake, PathEscaping) {
  EXPECT_EQ(ws::escape_path("/ws?x=1"), "/ws%3Fx=1");
  EXPECT_EQ(ws::escape_path("/a b/%/é"), "/a%20b/%25/%C3%A9");
  EXPECT_EQ(ws::escape_path("/$&+,:;=@-_.~"), "/$&+,:;=@-_.~");
  EXPECT_EQ(ws::escape_path("ws"), "/ws");
  ws::ClientRequest r;
  r.path = "/ws?x=1";
  r.host = "h:1";
  r.key = "k";
  EXPECT_EQ(ws::client_request(r).substr(0, 24), "GET /ws%3Fx=1 HTTP/1.1\r\n");
  // The server compares the decoded path, so the same configured path matches.
  auto req = request(
      "GET /ws%3Fx=1 HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
  EXPECT_EQ(ws::check_request(req, "/ws?x=1"), 101);
  EXPECT_EQ(ws::check_request(req, "/ws"), 404);
  EXPECT_EQ(ws::unescape_path("/a%2"), std::nullopt);
}

TEST(WsHandshake, CustomUserAgentAndDroppedHeaders) {
  ws::ClientRequest r;
  r.host = "h:1";
  r.key = "k";
  r.headers = {{"User-Agent", "x/1"}, {"Content-Length", "5"}, {"a-b", "c"}};
  EXPECT_EQ(ws::client_request(r),
            "GET /ws HTTP/1.1\r\nHost: h:1\r\nUser-Agent: x/1\r\nA-B: c\r\nConnection: "
            "Upgrade\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\nUpgrade: "
            "websocket\r\n\r\n");
  EXPECT_TRUE(ws::is_reserved_client_header("sec-websocket-key"));
  EXPECT_FALSE(ws::is_reserved_client_header("X-Token"));
}

TEST(WsHandshake, AcceptKeyAnd101Golden) {
  EXPECT_EQ(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_EQ(ws::response_101("dGhlIHNhbXBsZSBub25jZQ=="),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  EXPECT_EQ(ws::response_101("dGhlIHNhbXBsZSBub25jZQ==", {{"X-Srv", "1"}}),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Srv: 1\r\n\r\n");
  std::array<std::uint8_t, 16> nonce{};
  EXPECT_EQ(ws::make_key(nonce), "AAAAAAAAAAAAAAAAAAAAAA==");
}

TEST(WsHandshake, ErrorResponsesGolden) {
  const std::string date = "Mon, 02 Jan 2006 15:04:05 GMT";
  EXPECT_EQ(ws::http_date(1136214245), date);
  EXPECT_EQ(ws::error_response(400, date, false),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Sec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\nDate: " +
                date + "\r\nContent-Length: 12\r\n\r\nBad Request\n");
  EXPECT_EQ(ws::error_response(405, date, true),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Sec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\nDate: " +
                date + "\r\nContent-Length: 19\r\nConnection: close\r\n\r\nMethod Not Allowed\n");
  EXPECT_EQ(ws::error_response(404, date, false),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "X-Content-Type-Options: nosniff\r\nDate: " +
                date + "\r\nContent-Length: 19\r\n\r\n404 page not found\n");
  EXPECT_EQ(ws::malformed_request_response(400),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Connection: close\r\n\r\n400 Bad Request");
}

TEST(WsHandshake, ServerChecksInOrder) {
  const std::string key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
  const std::string good =
      "Host: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n"
      "Sec-WebSocket-Version: 13\r\n" +
      key + "\r\n";
  EXPECT_EQ(ws::check_request(request("GET /ws HTTP/1.1\r\n" + good), "/ws"), 101);
  EXPECT_EQ(ws::check_request(request("GET /ws?q=1 HTTP/1.1\r\n" + good), "/ws"), 101);
  EXPECT_EQ(ws::check_request(request("GET http://h/ws HTTP/1.1\r\n" + good), "/ws"), 101);
  EXPECT_EQ(ws::check_request(request("GET /other HTTP/1.1\r\n" + good), "/ws"), 404);
  EXPECT_EQ(ws::check_request(request("GET /ws/x HTTP/1.1\r\n" + good), "/ws"), 404);
  EXPECT_EQ(ws::check_request(request("GET /ws/x HTTP/1.1\r\n" + good), "/ws/"), 101);
  EXPECT_EQ(ws::check_request(request("POST /ws HTTP/1.1\r\n" + good), "/ws"), 405);
  // missing Connection / Upgrade come first: a bare POST is 400, not 405
  EXPECT_EQ(ws::check_request(request("POST /ws HTTP/1.1\r\nHost: h\r\n\r\n"), "/ws"), 400);
  EXPECT_EQ(ws::check_request(request("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                                      "Sec-WebSocket-Version: 13\r\n" +
                                      key + "\r\n"),
                              "/ws"),
            400);
  EXPECT_EQ(ws::check_request(request("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
                                      "Sec-WebSocket-Version: 13\r\n" +
                                      key + "\r\n"),
                              "/ws"),
            400);
  EXPECT_EQ(ws::check_request(request("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: "
                                      "websocket\r\nSec-WebSocket-Version: 8\r\n" +
                                      key + "\r\n"),
                              "/ws"),
            400);
  EXPECT_EQ(ws::check_request(request("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: "
                                      "websocket\r\nSec-WebSocket-Version: 13\r\n"
                                      "Sec-WebSocket-Key: YWJj\r\n\r\n"),
                              "/ws"),
            400);
}

TEST(WsHandshake, ClientChecksResponse) {
  auto parse = [](std::string_view text) {
    http::Response r;
    std::size_t n = 0;
    EXPECT_EQ(http::parse_response(text, r, n), http::ParseStatus::complete);
    return r;
  };
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  EXPECT_EQ(ws::check_response(parse(ws::response_101(key)), key), "");
  EXPECT_NE(ws::check_response(parse(ws::response_101(key)), "AAAAAAAAAAAAAAAAAAAAAA=="), "");
  EXPECT_NE(ws::check_response(parse("HTTP/1.1 404 Not Found\r\n\r\n"), key), "");
  EXPECT_NE(ws::check_response(parse("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"),
                               key),
            "");
  auto deflate = ws::response_101(key, {{"Sec-WebSocket-Extensions",
                                         "permessage-deflate; server_no_context_takeover; "
                                         "client_no_context_takeover"}});
  EXPECT_NE(ws::check_response(parse(deflate), key), "");
}

// ---- framing ------------------------------------------------------------------------------------

TEST(WsFrame, ServerFramesGolden) {
  EXPECT_EQ(ws::encode_frame(true, ws::Opcode::binary, "hello", nullptr),
            hex("82 05 68 65 6c 6c 6f"));
  std::string p300(300, 'x');
  EXPECT_EQ(ws::encode_frame(true, ws::Opcode::binary, p300, nullptr), hex("82 7e 01 2c") + p300);
  std::string p70k(70000, 'y');
  EXPECT_EQ(ws::encode_frame(true, ws::Opcode::binary, p70k, nullptr).substr(0, 10),
            hex("82 7f 00 00 00 00 00 01 11 70"));
  EXPECT_EQ(ws::encode_frame(true, ws::Opcode::pong, "", nullptr), hex("8a 00"));
  EXPECT_EQ(ws::encode_frame(true, ws::Opcode::close, ws::close_payload(1002, "bad MASK"), nullptr),
            hex("88 0a 03 ea") + "bad MASK");
}

TEST(WsFrame, MaskedClientFrame) {
  // RFC 6455 §5.7: a masked "Hello".
  ws::MaskKey k = {0x37, 0xfa, 0x21, 0x3d};
  EXPECT_EQ(ws::encode_frame(true, ws::Opcode::text, "Hello", &k),
            hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"));
  EXPECT_EQ(ws::encode_frame(true, ws::Opcode::ping, "", &k), hex("89 80 37 fa 21 3d"));
  // mask_copy agrees with a byte-by-byte reference at every key offset and length
  std::mt19937 rng(1);
  for (std::size_t pos = 0; pos < 4; ++pos)
    for (std::size_t n = 0; n < 40; ++n) {
      std::vector<std::uint8_t> src(n), dst(n);
      for (auto& b : src) b = static_cast<std::uint8_t>(rng());
      ws::mask_copy(dst.data(), src.data(), n, k, pos);
      for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(dst[i], src[i] ^ k[(pos + i) & 3]);
    }
}

TEST(WsDecoder, ServerSideUnmasksAndCompactsInPlace) {
  std::string wire = ws::encode_frame(true, ws::Opcode::binary, "hello ", &kKey) +
                     ws::encode_frame(true, ws::Opcode::text, "world", &kKey);
  for (std::size_t step :
       {std::size_t(1), std::size_t(2), std::size_t(3), std::size_t(7), std::size_t(64)}) {
    ws::Decoder d(true);
    auto out = decode_all(d, wire, step);
    EXPECT_EQ(out.data, "hello world") << step;
    EXPECT_TRUE(out.events.empty());
    EXPECT_TRUE(d.at_frame_boundary());
  }
}

TEST(WsDecoder, FragmentedMessageWithControlFramesBetween) {
  // 02 (FIN=0) + ping + 00 (FIN=0) + pong + 80 (FIN=1): the 10 000-byte shape GOST clients send.
  std::string a(4096, 'a'), b(4096, 'b'), c(1808, 'c');
  std::string wire = ws::encode_frame(false, ws::Opcode::binary, a, &kKey) +
                     ws::encode_frame(true, ws::Opcode::ping, "p1", &kKey) +
                     ws::encode_frame(false, ws::Opcode::continuation, b, &kKey) +
                     ws::encode_frame(true, ws::Opcode::pong, "", &kKey) +
                     ws::encode_frame(true, ws::Opcode::continuation, c, &kKey);
  EXPECT_EQ(static_cast<std::uint8_t>(wire[0]), 0x02);
  for (std::size_t step : {std::size_t(5), std::size_t(4096), std::size_t(100000)}) {
    ws::Decoder d(true);
    auto out = decode_all(d, wire, step);
    EXPECT_EQ(out.data, a + b + c);
    ASSERT_EQ(out.events.size(), 2u);
    EXPECT_EQ(out.events[0], ws::Decoder::Event::ping);
    EXPECT_EQ(out.control[0], "p1");
    EXPECT_EQ(out.events[1], ws::Decoder::Event::pong);
  }
}

TEST(WsDecoder, ClientSideAcceptsServerFrames) {
  ws::Decoder d(false);
  auto out =
      decode_all(d, hex("82 05 68 65 6c 6c 6f") + hex("82 7e 01 2c") + std::string(300, 'z'), 3);
  EXPECT_EQ(out.data, "hello" + std::string(300, 'z'));
  // empty data frames are fine
  auto out2 = decode_all(d, hex("82 00 82 00"));
  EXPECT_EQ(out2.data, "");
  EXPECT_TRUE(out2.events.empty());
}

TEST(WsDecoder, MaskingViolations) {
  {
    ws::Decoder server(true);  // unmasked client frame
    auto out = decode_all(server, hex("82 05 68 65 6c 6c 6f"));
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0], ws::Decoder::Event::error);
    EXPECT_EQ(server.close_code(), 1002);
    EXPECT_EQ(server.error_reason(), "bad MASK");
    EXPECT_EQ(
        ws::encode_frame(true, ws::Opcode::close,
                         ws::close_payload(server.close_code(), server.error_reason()), nullptr),
        hex("88 0a 03 ea") + "bad MASK");
    // sticky
    std::uint8_t more[2] = {0x82, 0x00};
    EXPECT_EQ(server.decode(more, 2, more).event, ws::Decoder::Event::error);
  }
  {
    ws::Decoder client(false);  // masked server frame
    auto out = decode_all(client, ws::encode_frame(true, ws::Opcode::binary, "x", &kKey));
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(client.close_code(), 1002);
  }
}

TEST(WsDecoder, ProtocolErrors) {
  struct Case {
    std::string wire;
    std::string reason;
  };
  std::vector<Case> cases = {
      {hex("c2 80 00 00 00 00"), "unexpected reserved bits 0x40"},
      {hex("83 80 00 00 00 00"), "unknown opcode 3"},
      {hex("89 fe 00 7e"), "control frame length > 125"},
      {hex("09 80 00 00 00 00"), "control frame not final"},
      {hex("80 80 00 00 00 00"), "continuation after final message frame"},
      {hex("02 80 00 00 00 00 82 80 00 00 00 00"), "message start before final message frame"},
      {hex("88 82 00 00 00 00 03 ed"), "invalid close code"},  // 1005 may not be sent
      {hex("88 84 00 00 00 00 03 e8 c3 28"), "invalid utf8 payload in close frame"},
  };
  for (const auto& c : cases) {
    ws::Decoder d(true);
    auto out = decode_all(d, c.wire);
    ASSERT_FALSE(out.events.empty()) << c.reason;
    EXPECT_EQ(out.events.back(), ws::Decoder::Event::error) << c.reason;
    EXPECT_EQ(d.close_code(), 1002) << c.reason;
    EXPECT_EQ(d.error_reason(), c.reason);
  }
}

TEST(WsDecoder, OversizedFrameAndMessage) {
  ws::DecoderLimits lim;
  lim.max_frame = 1000;
  lim.max_message = 1500;
  {
    ws::Decoder d(false, lim);
    auto out = decode_all(d, hex("82 7e 03 e9"));  // 1001 bytes
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(d.close_code(), 1009);
  }
  {
    ws::Decoder d(false, lim);
    auto out = decode_all(d, hex("82 7f 80 00 00 00 00 00 00 00"));  // 2^63
    EXPECT_EQ(d.close_code(), 1009);
  }
  {
    ws::Decoder d(false, lim);  // 1000 + 600 in one fragmented message
    std::string wire =
        ws::encode_frame(false, ws::Opcode::binary, std::string(1000, 'a'), nullptr) +
        ws::encode_frame(true, ws::Opcode::continuation, std::string(600, 'b'), nullptr);
    auto out = decode_all(d, wire);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0], ws::Decoder::Event::error);
    EXPECT_EQ(d.close_code(), 1009);
    EXPECT_EQ(out.data, std::string(1000, 'a'));
  }
  {
    ws::Decoder d(false, lim);  // separate messages each within the limit are fine
    std::string one = ws::encode_frame(true, ws::Opcode::binary, std::string(1000, 'a'), nullptr);
    auto out = decode_all(d, one + one + one);
    EXPECT_TRUE(out.events.empty());
    EXPECT_EQ(out.data.size(), 3000u);
  }
}

TEST(WsDecoder, CloseAndTruncation) {
  {
    ws::Decoder d(true);
    std::string wire =
        ws::encode_frame(true, ws::Opcode::binary, "bye", &kKey) +
        ws::encode_frame(true, ws::Opcode::close, ws::close_payload(1000, "ok"), &kKey) +
        "garbage after close";
    auto out = decode_all(d, wire);
    EXPECT_EQ(out.data, "bye");
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0], ws::Decoder::Event::close);
    EXPECT_EQ(d.close_code(), 1000);
  }
  {
    ws::Decoder d(false);
    auto out = decode_all(d, hex("88 00"));
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(d.close_code(), ws::kCloseNoStatus);
  }
  {
    ws::Decoder d(false);
    decode_all(d, hex("82 05 68 65"));  // cut inside the payload
    EXPECT_FALSE(d.at_frame_boundary());
    EXPECT_TRUE(d.in_data());
    ws::Decoder h(false);
    decode_all(h, hex("82 7e 01"));  // cut inside the header
    EXPECT_FALSE(h.at_frame_boundary());
    EXPECT_EQ(h.bytes_before_data(), 1u);
  }
}

TEST(WsDecoder, BytesBeforeDataNeverReachesPayload) {
  // What wait_readable relies on: reading exactly bytes_before_data() stops at the payload.
  std::string wire = ws::encode_frame(true, ws::Opcode::ping, "abc", &kKey) +
                     ws::encode_frame(true, ws::Opcode::binary, std::string(300, 'd'), &kKey);
  ws::Decoder d(true);
  std::size_t off = 0;
  int events = 0;
  while (!d.in_data()) {
    std::size_t want = d.bytes_before_data();
    ASSERT_GT(want, 0u);
    std::string buf = wire.substr(off, want);
    off += want;
    auto* p = reinterpret_cast<std::uint8_t*>(buf.data());
    auto r = d.decode(p, buf.size(), p);
    EXPECT_EQ(r.produced, 0u);
    EXPECT_EQ(r.consumed, buf.size());
    if (r.event != ws::Decoder::Event::none) ++events;
  }
  EXPECT_EQ(events, 1);
  EXPECT_EQ(off, wire.size() - 300);
}

// ---- the stream ---------------------------------------------------------------------------------

namespace {

struct Loopback {
  asio::io_context io;
  tcp::socket a{io}, b{io};
  Loopback() {
    tcp::acceptor acc(io, {asio::ip::make_address("127.0.0.1"), 0});
    b.connect(acc.local_endpoint());
    acc.accept(a);
  }
  template <class F>
  void run(F f) {
    bool done = false;
    asio::co_spawn(io, f(done), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
    io.run_for(std::chrono::seconds(10));
    EXPECT_TRUE(done);
  }
};

awaitable<void> wait_ready(Stream& s, bool& ready) {
  error_code e;
  co_await s.wait_readable(e);
  EXPECT_FALSE(e);
  ready = true;
}

awaitable<std::string> read_exact(tcp::socket& s, std::size_t n) {
  std::string out(n, '\0');
  co_await asio::async_read(s, asio::buffer(out), asio::use_awaitable);
  co_return out;
}

}  // namespace

TEST(WsStream, ClientFragmentsAt4096LikeGost) {
  Loopback lo;
  lo.run([&](bool& done) -> awaitable<void> {
    net::WsStreamOptions o;
    o.client = true;
    auto s = net::make_ws_stream(std::make_unique<TcpStream>(std::move(lo.a)), o);
    std::string payload(10000, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
    co_await write_all(*s, asio::buffer(payload));
    // 4096 + 4096 + 1808, first bytes 02 / 00 / 80, each masked with its own key
    std::string got;
    for (auto [first, len] : {std::pair{0x02, 4096}, {0x00, 4096}, {0x80, 1808}}) {
      auto h = co_await read_exact(lo.b, 8);
      EXPECT_EQ(static_cast<std::uint8_t>(h[0]), first);
      EXPECT_EQ(static_cast<std::uint8_t>(h[1]), 0xfe);
      EXPECT_EQ((static_cast<std::uint8_t>(h[2]) << 8) | static_cast<std::uint8_t>(h[3]), len);
      ws::MaskKey k;
      std::memcpy(k.data(), h.data() + 4, 4);
      auto body = co_await read_exact(lo.b, len);
      auto* p = reinterpret_cast<std::uint8_t*>(body.data());
      ws::mask_copy(p, p, body.size(), k);
      got += body;
    }
    EXPECT_EQ(got, payload);
    done = true;
  });
}

TEST(WsStream, ServerFramesPingPongCloseAndHalfClose) {
  Loopback lo;
  lo.run([&](bool& done) -> awaitable<void> {
    net::WsStreamOptions o;  // server
    auto s = net::make_ws_stream(std::make_unique<TcpStream>(std::move(lo.a)), o);
    co_await write_all(*s, asio::buffer(std::string_view("hello")));
    EXPECT_EQ(co_await read_exact(lo.b, 7), hex("82 05 68 65 6c 6c 6f"));
    // a Ping alone: wait_readable answers it and keeps waiting; then data makes it ready
    std::string ping = ws::encode_frame(true, ws::Opcode::ping, "hi", &kKey);
    co_await asio::async_write(lo.b, asio::buffer(ping), asio::use_awaitable);
    error_code ec;
    bool ready = false;
    asio::co_spawn(lo.io, wait_ready(*s, ready), asio::detached);
    EXPECT_EQ(co_await read_exact(lo.b, 4), hex("8a 02 68 69"));
    EXPECT_FALSE(ready);
    std::string data = ws::encode_frame(true, ws::Opcode::binary, "data", &kKey) +
                       ws::encode_frame(true, ws::Opcode::close, ws::close_payload(1000), &kKey);
    co_await asio::async_write(lo.b, asio::buffer(data), asio::use_awaitable);
    asio::steady_timer t(lo.io, std::chrono::milliseconds(50));
    co_await t.async_wait(asio::use_awaitable);
    EXPECT_TRUE(ready);
    char buf[64];
    std::size_t n = co_await s->read_some(asio::buffer(buf), ec);
    EXPECT_EQ(std::string(buf, n), "data");
    n = co_await s->read_some(asio::buffer(buf), ec);
    EXPECT_EQ(ec, asio::error::eof);
    // the peer started the close handshake: our half-close echoes its Close, then FIN
    co_await s->shutdown_write(ec);
    EXPECT_FALSE(ec);
    EXPECT_EQ(co_await read_exact(lo.b, 4), hex("88 02 03 e8"));
    auto [e2, m] = co_await lo.b.async_read_some(asio::buffer(buf), use_nothrow);
    EXPECT_EQ(e2, asio::error::eof);
    done = true;
  });
}

TEST(WsStream, HalfCloseSendsCloseFrameAndKeepsReading) {
  Loopback lo;
  lo.run([&](bool& done) -> awaitable<void> {
    net::WsStreamOptions o;
    o.client = true;
    auto s = net::make_ws_stream(std::make_unique<TcpStream>(std::move(lo.a)), o);
    error_code ec;
    co_await s->shutdown_write(ec);
    EXPECT_FALSE(ec);
    // a masked Close 1000, and no FIN: the transport stays open for the other direction
    std::string head = co_await read_exact(lo.b, 6);
    EXPECT_EQ(head.substr(0, 2), hex("88 82"));
    std::string code = co_await read_exact(lo.b, 2);
    for (int i = 0; i < 2; ++i) code[i] = static_cast<char>(code[i] ^ head[2 + i]);
    EXPECT_EQ(code, hex("03 e8"));
    // reading goes on after our half-close; a plain EOF from the peer is the end of the stream
    std::string f = hex("82 03 61 62 63");
    co_await asio::async_write(lo.b, asio::buffer(f), asio::use_awaitable);
    lo.b.shutdown(tcp::socket::shutdown_send);
    char buf[16];
    std::string got;
    for (;;) {
      std::size_t k = co_await s->read_some(asio::buffer(buf), ec);
      if (ec) break;
      got.append(buf, k);
    }
    EXPECT_EQ(got, "abc");
    EXPECT_EQ(ec, asio::error::eof);
    std::size_t w = co_await s->write_some(asio::buffer("x", 1), ec);
    EXPECT_EQ(w, 0u);
    EXPECT_TRUE(ec);  // nothing may follow our Close
    done = true;
  });
}

TEST(WsStream, ProtocolErrorSendsCloseAndFails) {
  Loopback lo;
  lo.run([&](bool& done) -> awaitable<void> {
    net::WsStreamOptions o;  // server: an unmasked client frame
    auto s = net::make_ws_stream(std::make_unique<TcpStream>(std::move(lo.a)), o);
    std::string f = hex("82 05 68 65 6c 6c 6f");
    co_await asio::async_write(lo.b, asio::buffer(f), asio::use_awaitable);
    char buf[64];
    error_code ec;
    co_await s->read_some(asio::buffer(buf), ec);
    EXPECT_TRUE(ec);
    EXPECT_NE(ec, asio::error::eof);
    EXPECT_EQ(co_await read_exact(lo.b, 12), hex("88 0a 03 ea") + "bad MASK");
    done = true;
  });
}

TEST(WsStream, TruncatedFrameIsAnError) {
  Loopback lo;
  lo.run([&](bool& done) -> awaitable<void> {
    net::WsStreamOptions o;
    o.client = true;
    auto s = net::make_ws_stream(std::make_unique<TcpStream>(std::move(lo.a)), o);
    std::string f = hex("82 05 68 65");
    co_await asio::async_write(lo.b, asio::buffer(f), asio::use_awaitable);
    lo.b.shutdown(tcp::socket::shutdown_send);
    char buf[64];
    error_code ec;
    std::size_t n = co_await s->read_some(asio::buffer(buf), ec);
    EXPECT_EQ(std::string(buf, n), "he");
    co_await s->read_some(asio::buffer(buf), ec);
    EXPECT_TRUE(ec);
    EXPECT_NE(ec, asio::error::eof);
    done = true;
  });
}

TEST(WsStream, KeepalivePingsAndDropsWithoutPong) {
  Loopback lo;
  lo.run([&](bool& done) -> awaitable<void> {
    net::WsStreamOptions o;
    o.client = true;
    o.keepalive = std::chrono::milliseconds(100);
    auto s = net::make_ws_stream(std::make_unique<TcpStream>(std::move(lo.a)), o);
    auto ping = co_await read_exact(lo.b, 6);  // masked empty Ping: 89 80 <mask>
    EXPECT_EQ(ping.substr(0, 2), hex("89 80"));
    // answer one Pong, then stay silent: the stream is dropped 2 × 100 ms after it
    std::string pong = hex("8a 00");
    co_await asio::async_write(lo.b, asio::buffer(pong), asio::use_awaitable);
    char buf[16];
    error_code ec;
    auto start = std::chrono::steady_clock::now();
    co_await s->read_some(asio::buffer(buf), ec);
    auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(ec);
    EXPECT_GE(elapsed, std::chrono::milliseconds(150));
    EXPECT_LT(elapsed, std::chrono::seconds(2));
    done = true;
  });
}

TEST(WsOptions, RejectsCompressionAndBadHeaders) {
  config::Metadata md;
  md.set("enableCompression", "true");
  EXPECT_THROW(net::ws_server_config(md, "listener ws"), config::ConfigError);
  EXPECT_THROW(net::ws_client_config(md, "dialer ws"), config::ConfigError);
  config::Metadata off;
  off.set("enableCompression", "false");
  EXPECT_NO_THROW(net::ws_server_config(off, "listener ws"));
  config::Metadata hdr;
  hdr.set("header", config::Value(config::ValueMap{{"Sec-WebSocket-Key", "x"}}));
  EXPECT_THROW(net::ws_client_config(hdr, "dialer ws"), config::ConfigError);
  config::Metadata notmap;
  notmap.set("header", "x");
  EXPECT_THROW(net::ws_client_config(notmap, "dialer ws"), config::ConfigError);
  config::Metadata md2;
  md2.set("path", "/p");
  md2.set("ws.path", "/wp");
  md2.set("keepalive", "true");
  md2.set("writeBufferSize", "1000");
  auto c = net::ws_client_config(md2, "dialer ws");
  EXPECT_EQ(c.path, "/wp");
  EXPECT_EQ(c.stream.keepalive, std::chrono::seconds(15));
  EXPECT_EQ(c.stream.frame_size, 1000u);
  config::Metadata big;
  big.set("readBufferSize", "100000000");
  EXPECT_THROW(net::ws_server_config(big, "listener ws"), config::ConfigError);
}
