// Golden vectors of docs/PROTOCOLS.md "http" and the bounds of the HTTP/1 codec.
#include <gtest/gtest.h>

#include "proto/base64.hpp"
#include "proto/http.hpp"

namespace http = gost::proto::http;

TEST(HttpGolden, Response407) {
  EXPECT_EQ(http::response_407("gost", false),
            "HTTP/1.1 407 Proxy Authentication Required\r\nConnection: close\r\n"
            "Proxy-Authenticate: Basic realm=\"gost\"\r\n\r\n");
  EXPECT_EQ(http::response_407("gost", true),
            "HTTP/1.1 407 Proxy Authentication Required\r\nConnection: close\r\n"
            "Proxy-Authenticate: Basic realm=\"gost\"\r\nProxy-Connection: close\r\n\r\n");
}

TEST(HttpGolden, ConnectEstablished) {
  auto r = http::response_connect_established("gost/3.0");
  EXPECT_EQ(r, "HTTP/1.1 200 Connection established\r\nProxy-Agent: gost/3.0\r\n\r\n");
  EXPECT_EQ(r.size(), 62u);
}

TEST(HttpGolden, SkeletonResponses) {
  EXPECT_EQ(
      http::response_skeleton(503, {{"Proxy-Agent", "gost/3.0"}}),
      "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nProxy-Agent: gost/3.0\r\n\r\n");
  EXPECT_EQ(http::response_skeleton(403, {{"Proxy-Agent", "gost/3.0"}}),
            "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nProxy-Agent: gost/3.0\r\n\r\n");
  EXPECT_EQ(http::response_skeleton(400, {}),
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
  // Custom headers are sorted by name.
  EXPECT_EQ(http::response_skeleton(403, {{"X-Foo", "bar"}, {"A-First", "one"}}),
            "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nA-First: one\r\nX-Foo: bar\r\n\r\n");
  EXPECT_EQ(http::response_empty(503),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(http::response_empty(403), "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
  // UDP over HTTP answers ("http: UDP") carry the configured headers, sorted.
  EXPECT_EQ(http::response_empty(200), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(http::response_empty(200, 1, {{"x-b", "2"}, {"A", "1"}}),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nA: 1\r\nX-B: 2\r\n\r\n");
}

TEST(HttpGolden, ConnectRequestNoAuth) {
  auto r = http::connect_request("example.com:443", std::nullopt, {});
  EXPECT_EQ(r,
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: "
            "Go-http-client/1.1\r\nProxy-Connection: keep-alive\r\n\r\n");
  EXPECT_EQ(r.size(), 121u);
}

TEST(HttpGolden, ConnectRequestAuthAndHeaders) {
  EXPECT_EQ(http::connect_request("example.com:443", std::make_pair("user", "pass"), {}),
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: "
            "Go-http-client/1.1\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\nProxy-Connection: "
            "keep-alive\r\n\r\n");
  EXPECT_NE(http::connect_request("h:1", std::make_pair("user", ""), {}).find("Basic dXNlcjo=\r\n"),
            std::string::npos);
  EXPECT_EQ(http::connect_request("[2001:db8::1]:443", std::nullopt, {}).substr(0, 61),
            "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n");
  // A custom User-Agent replaces the default; Host in the map is ignored; others sorted.
  EXPECT_EQ(
      http::connect_request("a:1", std::nullopt,
                            {{"User-Agent", "x"}, {"Host", "evil"}, {"Zed", "1"}, {"Abc", "2"}}),
      "CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nUser-Agent: x\r\nAbc: 2\r\nProxy-Connection: "
      "keep-alive\r\nZed: 1\r\n\r\n");
  EXPECT_EQ(http::connect_request("8.8.8.8:53", std::nullopt, {}, true),
            "CONNECT 8.8.8.8:53 HTTP/1.1\r\nHost: 8.8.8.8:53\r\nUser-Agent: "
            "Go-http-client/1.1\r\nProxy-Connection: keep-alive\r\nX-Gost-Protocol: udp\r\n\r\n");
}

TEST(HttpGolden, GostTarget) {
  EXPECT_EQ(http::encode_gost_target("example.com:443"), "T2WmIFpYaGhiWEJzWlM1amIyMDZORFF6");
  EXPECT_EQ(http::decode_gost_target("T2WmIFpYaGhiWEJzWlM1amIyMDZORFF6"), "example.com:443");
  EXPECT_FALSE(http::decode_gost_target("T2WmIVpYaGhiWEJzWlM1amIyMDZORFF6"));  // CRC mismatch
  EXPECT_FALSE(http::decode_gost_target("AAA"));
  EXPECT_FALSE(http::decode_gost_target("!!!!"));
}

TEST(HttpAuth, BasicParsing) {
  EXPECT_EQ(http::parse_basic_auth("Basic dXNlcjpwYXNz"),
            std::make_pair(std::string("user"), std::string("pass")));
  EXPECT_EQ(http::parse_basic_auth("basic dXNlcjpwYXNz"),
            std::make_pair(std::string(), std::string()));
  EXPECT_EQ(http::parse_basic_auth("Basic YWJj"),
            std::make_pair(std::string("abc"), std::string()));
  EXPECT_EQ(http::parse_basic_auth("Basic YTpiOmM="),
            std::make_pair(std::string("a"), std::string("b:c")));
  EXPECT_EQ(http::parse_basic_auth("Basic !!"), std::make_pair(std::string(), std::string()));
  EXPECT_EQ(http::parse_basic_auth("Basic dXNlcjpwYXNz\x01"),
            std::make_pair(std::string(), std::string()));
}

TEST(HttpParse, RequestForms) {
  http::Request r;
  std::size_t n = 0;
  std::string raw = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nTLSDATA";
  ASSERT_EQ(http::parse_request(raw, r, n), http::ParseStatus::complete);
  EXPECT_EQ(r.method, "CONNECT");
  EXPECT_EQ(r.target, "example.com:443");
  EXPECT_EQ(raw.substr(n), "TLSDATA");
  http::Request g;
  ASSERT_EQ(http::parse_request("GET http://a.b:8/x?y HTTP/1.0\nHost: a.b:8\nX:  v \n\n", g, n),
            http::ParseStatus::complete);
  EXPECT_EQ(g.version_minor, 0);
  EXPECT_EQ(*g.headers.get("x"), "v");
  auto uri = http::split_absolute_uri(g.target);
  ASSERT_TRUE(uri);
  EXPECT_EQ(uri->scheme, "http");
  EXPECT_EQ(uri->authority, "a.b:8");
  EXPECT_EQ(uri->path, "/x?y");
  EXPECT_EQ(http::split_absolute_uri("http://u:p@h")->path, "/");
  EXPECT_EQ(http::split_absolute_uri("http://u:p@h")->authority, "h");
  EXPECT_FALSE(http::split_absolute_uri("/index.html"));
}

TEST(HttpParse, RejectsMalformedAndOversized) {
  http::Request r;
  std::size_t n = 0;
  EXPECT_EQ(http::parse_request("GET / HTTP/1.1\r\nHost: a\r\n", r, n),
            http::ParseStatus::incomplete);
  EXPECT_EQ(http::parse_request("GARBAGE\r\n\r\n", r, n), http::ParseStatus::bad);
  EXPECT_EQ(http::parse_request("GET / HTTP/2.0\r\n\r\n", r, n), http::ParseStatus::bad);
  EXPECT_EQ(http::parse_request("GET / HTTP/1.1\r\nBad Header\r\n\r\n", r, n),
            http::ParseStatus::bad);
  EXPECT_EQ(http::parse_request("GET / HTTP/1.1\r\n folded\r\n\r\n", r, n), http::ParseStatus::bad);
  EXPECT_EQ(http::parse_request(std::string("\x16\x03\x01\x02\x00\x01\r\n\r\n", 10), r, n),
            http::ParseStatus::bad);
  std::string big = "GET / HTTP/1.1\r\nX: " + std::string(70000, 'a');
  EXPECT_EQ(http::parse_request(big, r, n), http::ParseStatus::too_large);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 200; ++i) many += "X" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(http::parse_request(many + "\r\n", r, n), http::ParseStatus::too_large);
}

TEST(HttpParse, Response) {
  http::Response r;
  std::size_t n = 0;
  ASSERT_EQ(http::parse_response(
                "HTTP/1.1 200 Connection established\r\nProxy-Agent: gost/3.0\r\n\r\nX", r, n),
            http::ParseStatus::complete);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.reason, "Connection established");
  EXPECT_EQ(n, 62u);
  EXPECT_EQ(http::parse_response("HTTP/1.1 20x OK\r\n\r\n", r, n), http::ParseStatus::bad);
  EXPECT_EQ(http::parse_response("SSH-2.0-x\r\n\r\n", r, n), http::ParseStatus::bad);
}

TEST(HttpForward, UpstreamRequestLikeGo) {
  http::Request r;
  std::size_t n = 0;
  ASSERT_EQ(http::parse_request(
                "GET http://o/p HTTP/1.1\r\nHost: o\r\nConnection: foo\r\nTE: trailers\r\n"
                "x-a: 1\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\n\r\n",
                r, n),
            http::ParseStatus::complete);
  EXPECT_EQ(http::serialize_upstream_request(r, "/p", "o", *http::request_framing(r), false),
            "GET /p HTTP/1.1\r\nHost: o\r\nUser-Agent: Go-http-client/1.1\r\nConnection: foo\r\n"
            "Te: trailers\r\nX-A: 1\r\nConnection: close\r\n\r\n");
}

TEST(HttpForward, ClientResponseLikeGo) {
  http::Response r;
  std::size_t n = 0;
  ASSERT_EQ(http::parse_response("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\n"
                                 "Connection: keep-alive\r\n\r\n",
                                 r, n),
            http::ParseStatus::complete);
  auto f = http::response_framing(r, "GET");
  ASSERT_TRUE(f);
  EXPECT_EQ(
      http::serialize_client_response(r, *f, 1),
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\nServer: nginx\r\n\r\n");
  http::Response c;
  ASSERT_EQ(http::parse_response("HTTP/1.1 200 OK\r\n\r\n", c, n), http::ParseStatus::complete);
  auto fc = http::response_framing(c, "GET");
  EXPECT_EQ(fc->kind, http::Framing::until_close);
  EXPECT_EQ(http::serialize_client_response(c, *fc, 1),
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(http::response_framing(c, "HEAD")->kind, http::Framing::none);
}

TEST(HttpChunked, FindsEndAcrossPieces) {
  std::string body = "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  for (std::size_t split = 0; split <= body.size(); ++split) {
    http::ChunkedScanner s;
    std::size_t a = s.feed(std::string_view(body).substr(0, split));
    std::size_t b = s.done() ? 0 : s.feed(std::string_view(body).substr(split));
    ASSERT_TRUE(s.done()) << split;
    EXPECT_EQ(a + b, body.size() - 4) << split;
  }
  http::ChunkedScanner bad;
  bad.feed("zz\r\n");
  EXPECT_TRUE(bad.bad());
  http::ChunkedScanner huge;
  huge.feed("ffffffffffffffffff\r\n");
  EXPECT_TRUE(huge.bad());
}

TEST(Base64, RoundTrip) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "user:pass"}) {
    EXPECT_EQ(gost::proto::base64_decode(gost::proto::base64_encode(s)), s);
    EXPECT_EQ(gost::proto::base64_decode(gost::proto::base64_encode(s, true, false), true, false),
              s);
  }
  EXPECT_FALSE(gost::proto::base64_decode("abc"));
  EXPECT_FALSE(gost::proto::base64_decode("a+b/", true, false));
}
