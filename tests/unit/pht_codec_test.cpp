// Golden bytes of docs/PROTOCOLS.md "pht" (authorize, push, pull, the example) and the
// request-target rules of "pht: push".
#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "net/pht.hpp"
#include "proto/base64.hpp"
#include "proto/pht.hpp"

namespace pht = gost::proto::pht;
namespace http = gost::proto::http;

namespace {

constexpr const char* kToken = "cgd7q3k2lhb6d0j5ffag";
constexpr const char* kDate = "Thu, 01 Jan 1970 00:00:00 GMT";

std::string chunk(std::string_view raw) {
  std::string out;
  pht::append_pull_chunk(out, raw);
  return out;
}

}  // namespace

TEST(PhtCodec, HttpDate) {
  EXPECT_EQ(pht::http_date(0), kDate);
  EXPECT_EQ(pht::http_date(1136214245), "Mon, 02 Jan 2006 15:04:05 GMT");
}

TEST(PhtCodec, AuthorizeGolden) {
  // "pht: endpoints and tokens", verified against GOST 3.2.6 (Date value ours).
  EXPECT_EQ(pht::authorize_response(kToken, kDate),
            std::string("HTTP/1.1 200 OK\r\nDate: ") + kDate +
                "\r\nContent-Length: 26\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                "token=cgd7q3k2lhb6d0j5ffag");
  EXPECT_EQ(pht::authorize_body(kToken), "token=cgd7q3k2lhb6d0j5ffag");
  EXPECT_EQ(pht::parse_authorize_body("token=cgd7q3k2lhb6d0j5ffag"), kToken);
  EXPECT_FALSE(pht::parse_authorize_body("token="));
  EXPECT_FALSE(pht::parse_authorize_body(""));
  EXPECT_FALSE(pht::parse_authorize_body("404 page not found\n"));
  EXPECT_FALSE(pht::parse_authorize_body(" token=x"));
}

TEST(PhtCodec, EmptyResponsesGolden) {
  // "pht: push": every status with Content-Length: 0.
  EXPECT_EQ(pht::empty_response(200, kDate),
            std::string("HTTP/1.1 200 OK\r\nDate: ") + kDate + "\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(pht::empty_response(403, kDate), std::string("HTTP/1.1 403 Forbidden\r\nDate: ") +
                                                 kDate + "\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(pht::empty_response(410, ""), "HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(pht::empty_response(429, ""),
            "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(pht::empty_response(206, ""),
            "HTTP/1.1 206 Partial Content\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(pht::empty_response(400, "", 1, true),
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(pht::empty_response(200, "", 0), "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
}

TEST(PhtCodec, NotFoundGolden) {
  // "pht: endpoints and tokens", verified against GOST 3.2.6.
  EXPECT_EQ(pht::not_found_response(kDate),
            std::string("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; "
                        "charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: ") +
                kDate + "\r\nContent-Length: 19\r\n\r\n404 page not found\n");
}

TEST(PhtCodec, PullGolden) {
  // "pht: pull" [golden]: data "hello", heartbeat, data "world", end.
  EXPECT_EQ(pht::pull_head(kDate),
            std::string("HTTP/1.1 200 OK\r\nX-Accel-Buffering: no\r\nDate: ") + kDate +
                "\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(chunk("hello") + chunk("") + chunk("world") + std::string(pht::kLastChunk),
            "9\r\naGVsbG8=\n\r\n1\r\n\n\r\n9\r\nd29ybGQ=\n\r\n0\r\n\r\n");
  // HTTP/1.0: close-delimited, same lines without framing.
  EXPECT_EQ(pht::pull_head("", 0), "HTTP/1.0 200 OK\r\nX-Accel-Buffering: no\r\n\r\n");
  std::string line;
  pht::append_pull_line(line, "hello");
  EXPECT_EQ(line, "aGVsbG8=\n");
}

TEST(PhtCodec, GoldenExchangeSection11) {
  // The pull chunk of "pht: example", byte for byte (also against GOST 3.2.6).
  const std::string established =
      "HTTP/1.1 200 Connection established\r\nProxy-Agent: gost/3.0\r\n\r\n";
  EXPECT_EQ(chunk(established),
            "55\r\nSFRUUC8xLjEgMjAwIENvbm5lY3Rpb24gZXN0YWJsaXNoZWQNClByb3h5LUFnZW50OiBnb3N0LzMuMA0K"
            "DQo=\n\r\n");
  // The push of "pht: example": 165 bytes (164 base64 + '\n') carrying the connector's CONNECT.
  const std::string connect =
      "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: "
      "Go-http-client/1.1\r\nProxy-Connection: keep-alive\r\n\r\n";
  const std::string body = pht::push_body(connect);
  EXPECT_EQ(body.size(), 165u);
  EXPECT_EQ(body,
            "Q09OTkVDVCBleGFtcGxlLmNvbTo0NDMgSFRUUC8xLjENCkhvc3Q6IGV4YW1wbGUuY29tOjQ0Mw0KVXNlci1BZ2"
            "VudDogR28taHR0cC1jbGllbnQvMS4xDQpQcm94eS1Db25uZWN0aW9uOiBrZWVwLWFsaXZlDQoNCg==\n");
  EXPECT_EQ(pht::decode_line(std::string_view(body).substr(0, body.size() - 1)), connect);
}

TEST(PhtCodec, PushRequestGolden) {
  // "pht: push": the push of "hello" as the 3.2.6 client sends it, minus Accept-Encoding (we never
  // want a compressed pull, so we do not offer it).
  std::string body = pht::push_body("hello");
  EXPECT_EQ(body, "aGVsbG8=\n");
  EXPECT_EQ(pht::client_request("POST", pht::request_target("/push", kToken), "203.0.113.5:8443",
                                {}, &body),
            "POST /push?token=cgd7q3k2lhb6d0j5ffag HTTP/1.1\r\nHost: 203.0.113.5:8443\r\n"
            "User-Agent: Go-http-client/1.1\r\nContent-Length: 9\r\n\r\naGVsbG8=\n");
  // The close notification: Content-Length: 0, empty body.
  std::string empty = pht::push_body("");
  EXPECT_EQ(empty, "");
  EXPECT_EQ(pht::client_request("POST", "/push?token=t", "h:1", {}, &empty),
            "POST /push?token=t HTTP/1.1\r\nHost: h:1\r\nUser-Agent: Go-http-client/1.1\r\n"
            "Content-Length: 0\r\n\r\n");
  // Pull: no body, no Content-Length; custom headers after the defaults; a User-Agent replaces.
  EXPECT_EQ(pht::client_request("GET", "/pull?token=t", "h:1", {{"X-A", "1"}}, nullptr),
            "GET /pull?token=t HTTP/1.1\r\nHost: h:1\r\nUser-Agent: Go-http-client/1.1\r\n"
            "X-A: 1\r\n\r\n");
  EXPECT_EQ(pht::client_request("GET", "/pull", "h:1", {{"user-agent", "x"}}, nullptr),
            "GET /pull HTTP/1.1\r\nHost: h:1\r\nuser-agent: x\r\n\r\n");
}

TEST(PhtCodec, PushSizesOfA100000ByteBurst) {
  // "pht: push" [verified against GOST 3.2.6]: Content-Length 43693, 43693, 43693, 2265.
  std::string burst(100000, 'x');
  std::vector<std::size_t> sizes;
  for (std::size_t off = 0; off < burst.size(); off += pht::kMaxChunk)
    sizes.push_back(pht::push_body(std::string_view(burst).substr(off, pht::kMaxChunk)).size());
  EXPECT_EQ(sizes, (std::vector<std::size_t>{43693, 43693, 43693, 2265}));
}

TEST(PhtCodec, DecodeLine) {
  EXPECT_EQ(pht::decode_line("aGVsbG8="), "hello");
  EXPECT_EQ(pht::decode_line("aGVs\rbG8=\r"), "hello");  // '\r' ignored, as Go's decoder does
  EXPECT_EQ(pht::decode_line(""), "");
  EXPECT_FALSE(pht::decode_line("!!!!"));
  EXPECT_FALSE(pht::decode_line("aGVsbG8"));     // padding required
  EXPECT_FALSE(pht::decode_line("aGVsbG8=aa"));  // data after padding
  EXPECT_FALSE(pht::decode_line("aGV-bG8="));    // URL alphabet is not standard base64
}

TEST(PhtCodec, TargetAndToken) {
  auto t = pht::parse_target("/push?token=cgd7q3k2lhb6d0j5ffag");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->path, "/push");
  EXPECT_EQ(t->token, kToken);
  EXPECT_FALSE(t->bad_query);

  t = pht::parse_target("/pull");
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->token);

  // First value wins; '+' is a space; escapes decoded; other keys ignored.
  t = pht::parse_target("/pull?a=1&token=x%2By+z&token=second&&b");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->token, "x+y z");
  EXPECT_FALSE(t->bad_query);

  // Step 2: ';' in a pair, or a bad escape anywhere → 400.
  EXPECT_TRUE(pht::parse_target("/push?token=cgd7q3k2lhb6d0j5ffag;x")->bad_query);
  EXPECT_TRUE(pht::parse_target("/push?token=a&x=%zz")->bad_query);
  EXPECT_TRUE(pht::parse_target("/push?token=a%2")->bad_query);
  EXPECT_TRUE(pht::parse_target("/push?%=1")->bad_query);
  // A token longer than our bound is a bad query too.
  EXPECT_TRUE(pht::parse_target("/push?token=" + std::string(257, 'a'))->bad_query);
  EXPECT_FALSE(pht::parse_target("/push?token=" + std::string(256, 'a'))->bad_query);

  // Paths are matched exactly by the server: the codec only decodes them.
  EXPECT_EQ(pht::parse_target("/push/x?token=a")->path, "/push/x");
  EXPECT_EQ(pht::parse_target("/pu%73h")->path, "/push");
  EXPECT_FALSE(pht::parse_target("/pu%7"));
  EXPECT_FALSE(pht::parse_target("*"));
  EXPECT_FALSE(pht::parse_target(""));
  // Absolute form (a proxy in front may send it).
  t = pht::parse_target("http://example.com:8080/pull?token=abc");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->path, "/pull");
  EXPECT_EQ(t->token, "abc");
}

TEST(PhtCodec, RequestTargetEscapes) {
  EXPECT_EQ(pht::request_target("/push", kToken), "/push?token=cgd7q3k2lhb6d0j5ffag");
  EXPECT_EQ(pht::request_target("/p", "a b&c=d/é"), "/p?token=a+b%26c%3Dd%2F%C3%A9");
  auto t = pht::parse_target(pht::request_target("/p", "a b&c=d/é"));
  EXPECT_EQ(t->token, "a b&c=d/é");
}

TEST(PhtCodec, NormalizePath) {
  EXPECT_EQ(pht::normalize_path("/x", "/push"), "/x");
  EXPECT_EQ(pht::normalize_path("x", "/push"), "/push");
  EXPECT_EQ(pht::normalize_path("", "/pull"), "/pull");
}

TEST(PhtCodec, LineReader) {
  pht::LineReader r;
  r.feed("aGVs");
  EXPECT_FALSE(r.next());
  r.feed("bG8=\n\nd29y");
  EXPECT_EQ(r.next(), "aGVsbG8=");
  EXPECT_EQ(r.next(), "");  // heartbeat
  EXPECT_FALSE(r.next());
  EXPECT_FALSE(r.empty());
  r.feed("bGQ=\n");
  EXPECT_EQ(r.next(), "d29ybGQ=");
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.empty());

  pht::LineReader big;
  big.feed(std::string(pht::kMaxLine, 'A'));
  EXPECT_FALSE(big.next());
  EXPECT_FALSE(big.too_long());
  big.feed("A");
  EXPECT_FALSE(big.next());
  EXPECT_TRUE(big.too_long());
}

TEST(PhtCodec, ChunkedBodyDecodes) {
  // The pull body of "pht: pull" through the shared chunked scanner.
  http::ChunkedScanner scanner;
  std::string body = "9\r\naGVsbG8=\n\r\n1\r\n\n\r\n9\r\nd29ybGQ=\n\r\n0\r\n\r\nNEXT";
  std::string payload;
  std::size_t used = 0;
  for (char c : body) {  // byte by byte: framing split anywhere
    if (scanner.done()) break;
    used += scanner.feed(std::string_view(&c, 1), &payload);
  }
  EXPECT_TRUE(scanner.done());
  EXPECT_EQ(used, body.size() - 4);
  EXPECT_EQ(payload, "aGVsbG8=\n\nd29ybGQ=\n");
}

TEST(PhtCodec, Base64AppendMatchesEncode) {
  std::string data;
  for (int i = 0; i < 300; ++i) {
    std::string out = "x";
    gost::proto::base64_append(out, data);
    EXPECT_EQ(out, "x" + gost::proto::base64_encode(data));
    EXPECT_EQ(out.size(), 1 + gost::proto::base64_encoded_size(data.size()));
    std::string back = "y";
    ASSERT_TRUE(gost::proto::base64_decode_append(back, std::string_view(out).substr(1)));
    EXPECT_EQ(back, "y" + data);
    data += static_cast<char>(i * 7);
  }
  std::string keep = "k";
  EXPECT_FALSE(gost::proto::base64_decode_append(keep, "ab=c"));
  EXPECT_EQ(keep, "k");
}

// The AVX2 path of push and pull lines (proto/pht.cpp "bulk base64") against proto/base64's scalar
// code: the same text for every length, the same bytes, and the same accept/reject for every byte
// value at every position of lines long enough for the fast path.
namespace {

std::string random_bytes(std::mt19937& rng, std::size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// What decode_line must answer: Go's decoder ignores '\r', then strict padded standard base64.
std::optional<std::string> scalar_line(std::string_view line) {
  std::string clean;
  for (char c : line)
    if (c != '\r') clean += c;
  return gost::proto::base64_decode(clean);
}

}  // namespace

TEST(PhtCodec, FastBase64EncodeMatchesScalar) {
  RecordProperty("avx2", pht::base64_simd() ? "yes" : "no");
  std::mt19937 rng(20261206);
  std::vector<std::size_t> lengths;
  for (std::size_t n = 0; n <= 300; ++n) lengths.push_back(n);
  for (std::size_t n : {pht::kMaxChunk - 1, pht::kMaxChunk, pht::kMaxChunk + 1}) lengths.push_back(n);
  for (std::size_t n : lengths) {
    for (int trial = 0; trial < 3; ++trial) {
      std::string raw = random_bytes(rng, n);
      std::string text = gost::proto::base64_encode(raw);
      EXPECT_EQ(pht::push_body(raw), raw.empty() ? "" : text + "\n") << n;
      std::string line = "xy";
      pht::append_pull_line(line, raw);
      EXPECT_EQ(line, "xy" + text + "\n") << n;
      EXPECT_EQ(pht::decode_line(text), raw) << n;
      // Every prefix length of a line reaches the decoder: valid or not, as the scalar code says.
      std::string_view t = text;
      if (trial == 0)
        for (std::size_t k = 0; k <= std::min<std::size_t>(t.size(), 400); ++k)
          ASSERT_EQ(pht::decode_line(t.substr(0, k)), gost::proto::base64_decode(t.substr(0, k)))
              << n << " " << k;
    }
  }
}

TEST(PhtCodec, FastBase64DecodeRejectsAsScalar) {
  std::mt19937 rng(7);
  // Raw lengths whose lines (36 characters and more, a multiple of 4) take the fast path, ending
  // in no, one and two '='; 300 bytes → 400 characters: several 32-character blocks.
  for (std::size_t n : {27u, 28u, 29u, 30u, 47u, 48u, 49u, 72u, 73u, 74u, 100u, 300u}) {
    std::string text = gost::proto::base64_encode(random_bytes(rng, n));
    ASSERT_GE(text.size(), 36u);
    std::size_t accepted = 0, rejected = 0;
    for (std::size_t pos = 0; pos < text.size(); ++pos) {
      for (int b = 0; b < 256; ++b) {
        // Replaced: every byte value (the alphabet, '=', '\r', '\n', '-', '_', NUL, 0x80..0xff).
        std::string bad = text;
        bad[pos] = static_cast<char>(b);
        auto want = scalar_line(bad);
        auto got = pht::decode_line(bad);
        ASSERT_EQ(got, want) << "n=" << n << " pos=" << pos << " byte=" << b;
        ++(want ? accepted : rejected);
      }
      // Inserted: '\r' anywhere is ignored; '=' or a bad byte inserted is a length or alphabet error.
      for (char c : {'\r', '=', '*', '\n'}) {
        std::string ins = text;
        ins.insert(pos, 1, c);
        ASSERT_EQ(pht::decode_line(ins), scalar_line(ins)) << "n=" << n << " pos=" << pos;
        // Four in all: a multiple of 4 again, so the fast path sees them ('\r' dropped, the rest
        // errors).
        ins.insert(ins.size() - 1, 3, c);
        ASSERT_EQ(pht::decode_line(ins), scalar_line(ins)) << "n=" << n << " pos=" << pos;
      }
    }
    // Both outcomes happened (the test is not comparing two answers that never differ from one).
    EXPECT_GT(accepted, text.size());
    EXPECT_GT(rejected, text.size() * 150);
  }
  // A '\r' in every position of a long line: decoded as without them.
  std::string raw = random_bytes(rng, 300);
  std::string text = gost::proto::base64_encode(raw);
  std::string spaced;
  for (char c : text) (spaced += c) += '\r';
  EXPECT_EQ(pht::decode_line(spaced), raw);
  EXPECT_EQ(pht::decode_line("\r" + text), raw);
}

TEST(PhtCodec, RandomTokens) {
  auto a = gost::net::pht::random_token();
  auto b = gost::net::pht::random_token();
  EXPECT_EQ(a.size(), 20u);
  EXPECT_NE(a, b);
  for (char c : a) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'v')) << a;
}

// ---- the server state machine in-process, over a fake request carrier --------------------------

namespace {

using gost::awaitable;
using gost::error_code;
namespace asio = boost::asio;
namespace net = gost::net::pht;

class FakeExchange final : public net::ServerExchange {
 public:
  FakeExchange(std::string method, std::string target, std::string body = {})
      : method_(std::move(method)), target_(std::move(target)), body_(std::move(body)) {}

  std::string_view method() const override { return method_; }
  std::string_view target() const override { return target_; }
  std::string remote_address() const override { return "127.0.0.1:1"; }
  std::string local_address() const override { return "127.0.0.1:2"; }
  awaitable<void> read_body(std::string& out, std::size_t max, error_code& ec) override {
    ec = {};
    if (body_.empty()) {
      ec = asio::error::eof;
      co_return;
    }
    std::size_t n = std::min(max, body_.size());
    out.append(body_, 0, n);
    body_.erase(0, n);
  }
  awaitable<void> reply(int status, error_code& ec) override {
    status_ = status;
    co_return;
  }
  awaitable<void> reply_authorize(std::string_view token, error_code& ec) override {
    status_ = 200;
    token_ = token;
    co_return;
  }
  awaitable<void> start_pull(error_code& ec) override {
    status_ = 200;
    co_return;
  }
  awaitable<void> send_lines(const std::vector<std::string>& raw, error_code& ec) override {
    lines_.insert(lines_.end(), raw.begin(), raw.end());
    co_return;
  }
  awaitable<void> end_pull(error_code& ec) override {
    ended_ = true;
    co_return;
  }

  int status_ = 0;
  std::string token_;
  std::vector<std::string> lines_;
  bool ended_ = false;

 private:
  std::string method_, target_, body_;
};

// Serves one request to completion on `ctx` (nothing else pending).
int serve(asio::io_context& ctx, net::PhtServer& server, FakeExchange& ex) {
  asio::co_spawn(ctx, server.serve(ex), asio::detached);
  ctx.restart();
  ctx.run();
  return ex.status_;
}

}  // namespace

TEST(PhtServer, StatusesWithoutSessions) {
  asio::io_context ctx;
  net::ServerOptions so;
  so.backlog = 2;
  net::PhtServer server(so, gost::log::Logger());

  FakeExchange get_push("GET", "/push?token=a", "aGk=\n");
  EXPECT_EQ(serve(ctx, server, get_push), 400);  // step 1
  FakeExchange post_pull("POST", "/pull?token=a");
  EXPECT_EQ(serve(ctx, server, post_pull), 400);
  FakeExchange semicolon("POST", "/push?token=a;x", "aGk=\n");
  EXPECT_EQ(serve(ctx, server, semicolon), 400);  // step 2
  FakeExchange other("POST", "/push/x?token=a", "aGk=\n");
  EXPECT_EQ(serve(ctx, server, other), 404);  // exact path match
  FakeExchange bad64("POST", "/push?token=b", "!!!!\n");
  EXPECT_EQ(serve(ctx, server, bad64), 400);  // step 7, no session opened for it
  EXPECT_EQ(server.session_count(), 0u);

  // The close notification for a token we never saw: 200, and the token is then refused.
  FakeExchange close("POST", "/push?token=c", "");
  EXPECT_EQ(serve(ctx, server, close), 200);
  FakeExchange pull_c("GET", "/pull?token=c");
  EXPECT_EQ(serve(ctx, server, pull_c), 403);

  // Backlog: two sessions wait for the application; the third is 429.
  FakeExchange a1("GET", "/authorize"), a2("GET", "/authorize"), a3("POST", "/authorize");
  EXPECT_EQ(serve(ctx, server, a1), 200);
  EXPECT_EQ(a1.token_.size(), 20u);
  EXPECT_EQ(serve(ctx, server, a2), 200);
  EXPECT_NE(a1.token_, a2.token_);
  EXPECT_EQ(serve(ctx, server, a3), 429);
  FakeExchange lazy("GET", "/pull?token=new");
  EXPECT_EQ(serve(ctx, server, lazy), 429);
  EXPECT_EQ(server.session_count(), 2u);
}

TEST(PhtServer, PushPullAndClose) {
  asio::io_context ctx;
  net::PhtServer server(net::ServerOptions{}, gost::log::Logger());
  int acceptor = server.add_acceptor();

  // A tokenless-first client: the first push opens the session; its 200 waits for the
  // application to take the bytes.
  FakeExchange push("POST", "/push?token=t1", "aGVsbG8=\nignored");
  std::string got;
  gost::StreamPtr app;
  asio::co_spawn(ctx, server.serve(push), asio::detached);
  asio::co_spawn(
      ctx,
      [&]() -> awaitable<void> {
        error_code ec;
        app = co_await server.accept(acceptor, ec);
        EXPECT_FALSE(ec);
        EXPECT_EQ(push.status_, 0);  // not answered before the hand-off
        char buf[64];
        std::size_t n = co_await app->read_some(asio::buffer(buf), ec);
        got.assign(buf, n);
        // The application answers and shuts its side: the pull gets the line, then ends.
        co_await gost::write_all(*app, asio::buffer(std::string_view("world")), ec);
        co_await app->shutdown_write(ec);
      },
      asio::detached);
  ctx.run();
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(push.status_, 200);

  FakeExchange pull("GET", "/pull?token=t1");
  EXPECT_EQ(serve(ctx, server, pull), 200);
  EXPECT_EQ(pull.lines_, std::vector<std::string>{"world"});
  EXPECT_TRUE(pull.ended_);

  // Client half-close: the application reads EOF.
  FakeExchange eof("POST", "/push?token=t1", "");
  EXPECT_EQ(serve(ctx, server, eof), 200);
  error_code rec;
  asio::co_spawn(
      ctx,
      [&]() -> awaitable<void> {
        char buf[8];
        co_await app->read_some(asio::buffer(buf), rec);
      },
      asio::detached);
  ctx.restart();
  ctx.run();
  EXPECT_EQ(rec, asio::error::eof);

  // The application closes: the session is gone and its token refused.
  app->close();
  EXPECT_EQ(server.session_count(), 0u);
  FakeExchange late("POST", "/push?token=t1", "aGk=\n");
  EXPECT_EQ(serve(ctx, server, late), 403);
  server.close_acceptor(acceptor);
}

TEST(PhtServer, BadPushEndsTheSession) {
  asio::io_context ctx;
  net::PhtServer server(net::ServerOptions{}, gost::log::Logger());
  FakeExchange a("GET", "/authorize");
  EXPECT_EQ(serve(ctx, server, a), 200);
  FakeExchange bad("POST", "/push?token=" + a.token_, "!!!!\n");
  EXPECT_EQ(serve(ctx, server, bad), 400);
  FakeExchange again("POST", "/push?token=" + a.token_, "aGk=\n");
  EXPECT_EQ(serve(ctx, server, again), 403);

  FakeExchange b("GET", "/authorize");
  EXPECT_EQ(serve(ctx, server, b), 200);
  FakeExchange huge("POST", "/push?token=" + b.token_, std::string(70000, 'A') + "\n");
  EXPECT_EQ(serve(ctx, server, huge), 413);
  FakeExchange after("GET", "/pull?token=" + b.token_);
  EXPECT_EQ(serve(ctx, server, after), 403);
}
