// Handler "http2": the proxy mode of docs/PROTOCOLS.md "http2: server". Each HTTP/2 request that
// listener `http2` yields is one proxy request: CONNECT → a tunnel on the stream (RFC 9113 §8.5);
// any other method → the request forwarded in HTTP/1.1 form and one response copied back.
#include "net/http2.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "chain/chain.hpp"
#include "core/address.hpp"
#include "core/buffer_pool.hpp"
#include "core/counted_stream.hpp"
#include "core/timeout.hpp"
#include "core/tunnel.hpp"
#include "net/http_io.hpp"
#include "proto/base64.hpp"

namespace gost {
namespace {

namespace http = proto::http;
using std::chrono::nanoseconds;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Hop-by-hop fields (RFC 9110 §7.6.1) and the proxy's own: never forwarded in either direction;
// HTTP/2 forbids the connection-specific ones (RFC 9113 §8.2.2).
bool hop_by_hop(std::string_view lname) {
  for (auto n :
       {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
        "trailer", "proxy-authorization", "proxy-authenticate", "gost-target", "x-gost-target"})
    if (lname == n) return true;
  return false;
}

// Methods whose requests carry no body unless they say so with content-length (we cannot know
// from the head whether a DATA frame will follow).
bool bodyless_method(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "DELETE" || m == "TRACE";
}

class Http2Handler final : public Handler {
 public:
  explicit Http2Handler(const HandlerOptions& o) : opts_(o) {
    const auto& md = o.config.metadata;
    reject_unsupported_handler_options(md, "handler http2");
    auto probe = md.get_string("probeResist");
    if (!probe) probe = md.get_string("probe_resist");
    if (auto colon = probe ? probe->find(':') : std::string::npos; colon != std::string::npos) {
      auto type = probe->substr(0, colon);
      if (type != "code")
        throw config::ConfigError(fmt::format(
            "handler http2: probeResist \"{}\" is not supported by this implementation (code:N "
            "is)",
            type));
      // A value that is not a status code falls back to the plain 407 (docs/PROTOCOLS.md
      // "http2: server").
      int code = 0;
      auto v = std::string_view(*probe).substr(colon + 1);
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), code);
      if (ec == std::errc() && end == v.data() + v.size() && code >= 100 && code <= 999)
        probe_code_ = code;
    }
    knock_ = md.get_strings("knock").value_or(std::vector<std::string>{});
    realm_ = md.get_string("authBasicRealm").value_or("gost");
    headers_ = net::h2_header_map(md, "handler http2");
    if (headers_.empty()) {
      // `http.header` is GOST's other name for the same map.
      config::Metadata alias;
      if (const auto* h = md.find("http.header")) alias.entries.emplace_back("header", *h);
      if (!alias.entries.empty()) headers_ = net::h2_header_map(alias, "handler http2");
    }
    auto rt = md.get_duration("readTimeout");
    if (!rt) rt = md.get_duration("read.timeout");
    read_timeout_ = rt.value_or(nanoseconds(0));
    if (const auto* f = HandlerRegistry::find("http")) {
      HandlerOptions h1 = o;
      h1.config.type = "http";
      // Options the HTTP/1.1 handler does not implement (probeResist): HTTP/1.1 clients are then
      // refused rather than served without them.
      try {
        http1_ = (*f)(h1);
      } catch (const config::ConfigError&) {
      }
    }
  }

  awaitable<void> handle(StreamPtr stream, ConnInfo& conn) override;

 private:
  // An answer that ends the stream (errors, 407): `content-length: 0` and `date`, as Go writes.
  void answer(net::Http2Stream& s, int status, net::H2Headers extra) const {
    extra.push_back({"content-length", "0"});
    extra.push_back({"date", net::h2_date()});
    s.respond(status, extra, true);
  }
  // `h2` is `client`'s HTTP/2 stream: its headers and answers; the body goes through `client`
  // (counted for metrics).
  awaitable<void> forward(net::Http2Stream& h2, Stream& client, Stream& upstream,
                          const std::string& addr, ConnInfo& conn);

  // probeResist knock (docs/PROTOCOLS.md "http2: server"): the request host names one of `knock_`.
  bool knocked(std::string_view authority) const {
    std::string host = lower(authority);
    if (auto hp = split_host_port(host)) host = hp->host;
    for (const auto& k : knock_)
      if (lower(k) == host) return true;
    return false;
  }

  HandlerOptions opts_;
  std::shared_ptr<Handler> http1_;  // HTTP/1.1 clients of the http2 listener
  int probe_code_ = 0;              // probeResist=code:N (0: off)
  std::vector<std::string> knock_;
  std::string realm_;
  net::H2Headers headers_;
  nanoseconds read_timeout_{0};
};

awaitable<void> Http2Handler::handle(StreamPtr stream, ConnInfo& conn) {
  // Headers and answers are the HTTP/2 stream's; bodies and tunnels go through `stream`, which
  // may count them for metrics (core/counted_stream.hpp).
  auto* client = dynamic_cast<net::Http2Stream*>(&uncounted(*stream));
  if (!client) {
    // An HTTP/1.1 client of the http2 listener (ALPN http/1.1 or none; docs/PROTOCOLS.md
    // "http2: server"): the HTTP/1.1 proxy handler with the same options serves it. Its CONNECT
    // answer is ours ("200 Connection established"), not GOST's chunked-looking "200 OK" head:
    // clients accept any 2xx.
    if (!http1_)
      throw system_error(asio::error::operation_not_supported,
                         "handler http2: HTTP/1.1 clients are not served with these options");
    co_return co_await http1_->handle(std::move(stream), conn);
  }
  const std::string method(client->header(":method"));
  const bool is_connect = method == "CONNECT";
  std::string host(client->header(":authority"));
  if (host.empty()) host = client->header("host");
  for (auto name : {"gost-target", "x-gost-target"})
    if (auto v = client->header(name); !v.empty())
      if (auto t = http::decode_gost_target(v)) host = *t;
  // "http2: server" step 1: without a port, 443 — the connection is always TLS on this listener.
  std::string addr = ensure_port(host, "443");
  conn.log = conn.log.with("dst", addr);
  if (log::enabled(log::Level::trace)) {
    std::string head;
    for (const auto& h : client->headers()) head += fmt::format("{}: {}\n", h.name, h.value);
    conn.log.trace(head);
  }

  if (opts_.auth) {
    auto credentials = client->header("proxy-authorization");
    auto [user, pass] = http::parse_basic_auth(credentials);
    // docs/PROTOCOLS.md "http2: server": decoded text without a colon is empty/empty here (not
    // user/"").
    if (!user.empty() && pass.empty() && credentials.substr(0, 6) == "Basic ")
      if (auto text = proto::base64_decode(credentials.substr(6));
          text && text->find(':') == std::string::npos)
        user.clear();
    // Locals: nothing temporary inside the co_await (docs/ARCHITECTURE.md "Concurrency").
    std::string auth_user(user), auth_pass(pass);
    std::optional<std::string> id =
        co_await opts_.auth->authenticate_async(opts_.service, auth_user, auth_pass, conn.remote);
    if (!id) {
      conn.log.warn(fmt::format("{}: authentication failed", conn.remote),
                    {{"user", std::string(user)}});
      // The `header` map is on these answers too, as GOST 3.2.6 sets it before authenticating.
      // GOST's handler returns "authentication failed" (docs/PROTOCOLS.md "observability: metrics")
      conn.failed();
      if (probe_code_ && !knocked(client->header(":authority"))) {
        answer(*client, probe_code_, headers_);
        co_return;
      }
      // GOST 3.2.6 sends each header twice (a bug, docs/PROTOCOLS.md "http2: differences"); once is
      // right.
      auto h = headers_;
      h.insert(h.begin(), {"proxy-authenticate", fmt::format("Basic realm=\"{}\"", realm_)});
      answer(*client, 407, std::move(h));
      co_return;
    }
    conn.client_id = *id;
    conn.log = conn.log.with("user", *id);
  }
  conn.authenticated();
  if (host.empty()) {  // nghttp2 rejects a CONNECT without :authority before we see it
    answer(*client, 400, headers_);
    co_return;
  }

  // The service's bypass, as the HTTP/1 handler: 403, nothing dialed.
  bool refused = co_await opts_.router->bypassed_async("tcp", addr, conn.client_id);
  if (refused) {
    conn.log.debug(fmt::format("bypass: {}", addr));
    answer(*client, 403, headers_);
    co_return;
  }
  StreamPtr upstream;
  try {
    upstream = co_await opts_.router->dial("tcp", addr, conn);
  } catch (const system_error&) {  // logged by the router
  }
  if (!upstream) {
    answer(*client, 503, headers_);
    co_return;
  }

  if (!is_connect) {
    co_await forward(*client, *stream, *upstream, addr, conn);
    co_return;
  }
  auto ok = headers_;
  ok.push_back({"date", net::h2_date()});
  client->respond(200, ok, false);
  auto relaying = relay_to_end(std::move(stream), std::move(upstream), std::move(addr), conn,
                               {.idle_timeout = read_timeout_});
  co_await std::move(relaying);
}

// "http2: server" step 3: the request in HTTP/1.1 form (origin-form, Host = authority), one
// response back.
awaitable<void> Http2Handler::forward(net::Http2Stream& h2, Stream& client, Stream& upstream,
                                      const std::string& addr, ConnInfo& conn) {
  const std::string method(h2.header(":method"));
  std::string path(h2.header(":path"));
  if (path.empty()) path = "/";
  std::string authority(h2.header(":authority"));
  if (authority.empty()) authority = h2.header("host");

  // nghttp2 has checked these fields already; the HTTP/1.1 request line must never be split.
  auto clean = [](std::string_view v) {
    return std::none_of(v.begin(), v.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; });
  };
  if (!clean(method) || !clean(path) || !clean(authority)) {
    answer(h2, 400, headers_);
    co_return;
  }
  std::string head = fmt::format("{} {} HTTP/1.1\r\nHost: {}\r\n", method, path, authority);
  bool has_ua = false;
  std::string_view content_length = h2.header("content-length");
  for (const auto& h : h2.headers()) {
    if (h.name.empty() || h.name[0] == ':' || h.name == "host" || hop_by_hop(h.name)) continue;
    if (h.name.find_first_of("\r\n") != std::string::npos ||
        h.value.find_first_of("\r\n") != std::string::npos)
      continue;  // nghttp2 already refuses these; never let one split the HTTP/1.1 head
    has_ua |= h.name == "user-agent";
    head += fmt::format("{}: {}\r\n", http::canonical_name(h.name), h.value);
  }
  if (!has_ua) head += "User-Agent: Go-http-client/1.1\r\n";
  const bool chunked_body = content_length.empty() && !bodyless_method(method);
  if (chunked_body) head += "Transfer-Encoding: chunked\r\n";
  head += "Connection: close\r\n\r\n";
  error_code ec;
  co_await write_all(upstream, asio::buffer(head), ec);
  if (ec) {
    answer(h2, 503, headers_);
    co_return;
  }

  // Request body: DATA frames as they come (content-length is checked by nghttp2).
  RelayBuffer buf;
  if (!content_length.empty() || chunked_body) {
    for (;;) {
      std::size_t n = co_await client.read_some(asio::buffer(buf.data(), buf.size()), ec);
      if (ec) break;
      conn.input_bytes += n;
      if (chunked_body) {
        std::string size = fmt::format("{:x}\r\n", n);
        co_await write_all(upstream, asio::buffer(size), ec);
        if (!ec) co_await write_all(upstream, asio::buffer(buf.data(), n), ec);
        if (!ec) co_await write_all(upstream, asio::buffer("\r\n", 2), ec);
      } else {
        co_await write_all(upstream, asio::buffer(buf.data(), n), ec);
      }
      if (ec) break;
    }
    if (ec != asio::error::eof) {
      answer(h2, 503, headers_);
      co_return;
    }
    ec = {};
    if (chunked_body) co_await write_all(upstream, asio::buffer("0\r\n\r\n", 5), ec);
    if (ec) {
      answer(h2, 503, headers_);
      co_return;
    }
  }

  // Response head, bounded in size (the parser) and time (readTimeout, else 15 s).
  std::string rbuf;
  http::Response resp;
  std::size_t rhead = 0;
  http::ParseStatus st;
  for (;;) {
    {
      nanoseconds limit = read_timeout_.count() > 0 ? read_timeout_ : std::chrono::seconds(15);
      Deadline deadline(upstream.executor(), limit, [&upstream] { upstream.close(); });
      st = co_await net::read_response(upstream, rbuf, resp, rhead, ec);
    }
    if (st != http::ParseStatus::complete || resp.status / 100 != 1) break;
    rbuf.erase(0, rhead);  // interim 1xx: HTTP/2 would need a separate HEADERS; dropped
  }
  auto framing = st == http::ParseStatus::complete ? http::response_framing(resp, method)
                                                   : std::optional<http::Framing>();
  if (!framing) {
    conn.log.error(fmt::format("{}: no valid response from upstream", addr));
    answer(h2, 503, headers_);
    co_return;
  }
  conn.log.info(fmt::format("{} {} {} → {}", conn.remote, method, path, resp.status));
  net::H2Headers out;
  for (const auto& h : resp.headers.list) {
    auto name = lower(h.name);
    if (hop_by_hop(name)) continue;
    if (framing->kind == http::Framing::chunked && name == "content-length") continue;
    out.push_back({std::move(name), h.value});
  }
  for (const auto& h : headers_) out.push_back(h);
  if (framing->kind == http::Framing::none) {
    h2.respond(resp.status, out, true);
    co_return;
  }
  h2.respond(resp.status, out, false);

  // Body: decoded from its HTTP/1.1 framing, each piece written (flushed) as it comes.
  std::string pending = rbuf.substr(rhead);
  std::uint64_t remaining = framing->length;
  http::ChunkedScanner chunks;
  std::string payload;
  auto finished = [&] {
    return (framing->kind == http::Framing::sized && remaining == 0) ||
           (framing->kind == http::Framing::chunked && chunks.done());
  };
  while (!finished()) {
    std::string_view data = pending;
    if (data.empty()) {
      std::size_t n = co_await upstream.read_some(asio::buffer(buf.data(), buf.size()), ec);
      if (ec) {
        if (ec == asio::error::eof && framing->kind == http::Framing::until_close) break;
        co_return;  // truncated (GOST's server, too, just ends the response here)
      }
      data = std::string_view(buf.data(), n);
    }
    std::string_view body = data;
    if (framing->kind == http::Framing::sized) {
      body =
          data.substr(0, static_cast<std::size_t>(std::min<std::uint64_t>(remaining, data.size())));
      remaining -= body.size();
    } else if (framing->kind == http::Framing::chunked) {
      payload.clear();
      chunks.feed(data, &payload);
      if (chunks.bad()) co_return;
      body = payload;
    }
    if (!body.empty()) co_await write_all(client, asio::buffer(body.data(), body.size()), ec);
    if (ec) co_return;
    conn.output_bytes += body.size();
    pending.clear();
  }
  co_await client.shutdown_write(ec);
}

GOST_REGISTER(HandlerRegistry, "http2", [](const HandlerOptions& o) {
  return std::shared_ptr<Handler>(new Http2Handler(o));
});

}  // namespace
}  // namespace gost
