// Handler "http": HTTP/1.x proxy — CONNECT tunnels and plain forward proxying with Basic auth
// (docs/PROTOCOLS.md "http").
#include <fmt/format.h>
#include <strings.h>

#include "chain/chain.hpp"
#include "core/address.hpp"
#include "core/timeout.hpp"
#include "core/tunnel.hpp"
#include "net/http_io.hpp"
#include "net/udp_relay.hpp"

namespace gost {
namespace {

namespace http = proto::http;
using std::chrono::nanoseconds;

bool is_valid_host(std::string_view host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  if (!ec) return true;
  if (host.empty() || host.size() > 253) return false;
  std::size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    if (++label > 63) return false;
  }
  return true;
}

std::string host_without_port(std::string_view host) {
  if (auto hp = split_host_port(host)) return hp->host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    return std::string(host.substr(1, host.size() - 2));
  return std::string(host);
}

class HttpHandler final : public Handler {
 public:
  explicit HttpHandler(const HandlerOptions& o) : opts_(o) {
    const auto& md = o.config.metadata;
    reject_unsupported_handler_options(md, "handler http");
    reject_unsupported(md,
                       {"probeResist", "probe_resist", "knock", "compression", "http.compression"},
                       "handler http");
    udp_ = md.get_bool("udp").value_or(false);
    auto bs = md.get_int("udp.bufferSize");
    if (!bs) bs = md.get_int("udpBufferSize");
    if (bs && *bs > 0) udp_buffer_ = static_cast<std::size_t>(std::min<std::int64_t>(*bs, 65535));
    realm_ = md.get_string("authBasicRealm").value_or("gost");
    proxy_agent_ =
        md.get_string("http.proxyAgent").value_or(md.get_string("proxyAgent").value_or("gost/3.0"));
    for (auto key : {"http.header", "header"}) {
      const auto* h = md.find(key);
      if (!h) continue;
      if (!h->is_map())
        throw config::ConfigError(fmt::format("handler http: \"{}\" must be a map", key));
      for (const auto& [k, v] : std::get<config::ValueMap>(h->v))
        headers_.push_back({k, v.as_string()});
      break;
    }
    auto rt = md.get_duration("readTimeout").value_or(nanoseconds(0));
    read_timeout_ = rt.count() == 0 ? std::chrono::seconds(15) : rt;  // < 0: none
    idle_timeout_ = md.get_duration("idleTimeout").value_or(nanoseconds(0));
    keepalive_ = md.get_bool("http.keepalive").value_or(md.get_bool("keepalive").value_or(false));
  }

  awaitable<void> handle(StreamPtr client, ConnInfo& conn) override;

 private:
  // The request head, with a time limit (our addition: GOST waits forever; a silent client must
  // not hold a connection). Returns false when the connection should simply be closed.
  awaitable<bool> read_request(Stream& client, std::string& buf, http::Request& req,
                               std::size_t& head_len, ConnInfo& conn);
  awaitable<void> tunnel(StreamPtr client, std::string pending, const std::string& addr,
                         ConnInfo& conn);
  // UDP over HTTP (docs/PROTOCOLS.md "http: UDP"): after the 200 the stream carries UDP-TUN frames.
  awaitable<void> udp_tunnel(StreamPtr client, ConnInfo& conn);
  awaitable<void> forward(StreamPtr client, std::string buf, http::Request req,
                          std::size_t head_len, ConnInfo& conn);
  // Null when every attempt failed (logged by the router).
  awaitable<StreamPtr> dial(const std::string& addr, ConnInfo& conn) {
    try {
      co_return co_await opts_.router->dial("tcp", addr, conn);
    } catch (const system_error&) {
    }
    co_return nullptr;
  }
  std::string skeleton(int status, bool with_agent) const {
    auto h = headers_;
    if (with_agent) h.push_back({"Proxy-Agent", proxy_agent_});
    return http::response_skeleton(status, h);
  }

  HandlerOptions opts_;
  std::string realm_;
  std::string proxy_agent_;
  std::vector<http::Header> headers_;
  nanoseconds read_timeout_{0};
  nanoseconds idle_timeout_{0};
  bool keepalive_ = false;
  bool udp_ = false;
  std::size_t udp_buffer_ = 4096;
};

awaitable<bool> HttpHandler::read_request(Stream& client, std::string& buf, http::Request& req,
                                          std::size_t& head_len, ConnInfo& conn) {
  error_code ec;
  http::ParseStatus st;
  {
    Deadline deadline(client.executor(), read_timeout_, [&client] { client.close(); });
    st = co_await net::read_request(client, buf, req, head_len, ec);
  }
  if (st == http::ParseStatus::complete) co_return true;
  if (st == http::ParseStatus::too_large) {
    conn.log.warn("request header too large");
    error_code ignored;
    co_await write_all(client, asio::buffer(http::response_skeleton(431, {})), ignored);
  } else if (!ec) {
    conn.log.warn("malformed HTTP request");
  } else if (ec != asio::error::eof && !buf.empty()) {
    conn.log.debug(fmt::format("read request: {}", ec.message()));
  }
  co_return false;
}

awaitable<void> HttpHandler::handle(StreamPtr client, ConnInfo& conn) {
  std::string buf;
  http::Request req;
  std::size_t head_len = 0;
  if (!co_await read_request(*client, buf, req, head_len, conn)) co_return;
  if (log::enabled(log::Level::trace)) conn.log.trace(buf.substr(0, head_len));

  const bool is_connect = req.method == "CONNECT";
  auto uri = is_connect ? std::nullopt : http::split_absolute_uri(req.target);
  std::string host = is_connect ? req.target : (uri ? uri->authority : "");
  bool origin_form_http = false;
  if (!is_connect && !uri) {
    const std::string* h = req.headers.get("Host");
    origin_form_http = h && is_valid_host(host_without_port(*h));
    if (h) host = *h;
  }
  std::string network =
      req.headers.get("X-Gost-Protocol") && *req.headers.get("X-Gost-Protocol") == "udp" ? "udp"
                                                                                         : "tcp";
  for (auto name : {"Gost-Target", "X-Gost-Target"})
    if (auto* v = req.headers.get(name))
      if (auto t = http::decode_gost_target(*v)) host = *t;
  std::string addr = ensure_port(host, "80");
  conn.log = conn.log.with("dst", addr);

  if (opts_.auth) {
    auto* pa = req.headers.get("Proxy-Authorization");
    auto [user, pass] = http::parse_basic_auth(pa ? std::string_view(*pa) : std::string_view());
    // Locals: nothing temporary inside the co_await (docs/ARCHITECTURE.md "Concurrency").
    std::string auth_user(user), auth_pass(pass);
    std::optional<std::string> id =
        co_await opts_.auth->authenticate_async(opts_.service, auth_user, auth_pass, conn.remote);
    if (!id) {
      auto* pc = req.headers.get("Proxy-Connection");
      bool keepalive = pc && pc->size() == 10 && strncasecmp(pc->c_str(), "keep-alive", 10) == 0;
      conn.log.warn(fmt::format("{}: authentication failed", conn.remote),
                    {{"user", std::string(user)}});
      error_code ignored;
      co_await write_all(*client, asio::buffer(http::response_407(realm_, keepalive)), ignored);
      conn.failed();  // GOST's handler returns "authentication failed" after the 407
      co_return;
    }
    conn.client_id = *id;
    conn.log = conn.log.with("user", *id);
  }
  conn.authenticated();

  error_code ignored;
  if (req.method == "PRI" ||
      (!is_connect && !(uri && uri->scheme == "http") && !origin_form_http)) {
    co_await write_all(*client, asio::buffer(skeleton(400, false)), ignored);
    co_return;
  }
  // The service's bypass: 403, nothing dialed (go-gost/x handler/http: after authentication).
  bool refused = co_await opts_.router->bypassed_async(network, addr, conn.client_id);
  if (refused) {
    conn.log.debug(fmt::format("bypass: {}", addr));
    co_await write_all(*client, asio::buffer(skeleton(403, true)), ignored);
    co_return;
  }
  if (network == "udp") {
    co_await udp_tunnel(std::move(client), conn);
    co_return;
  }
  if (is_connect) {
    // Nothing of the request is kept while the tunnel lives (memory per idle tunnel).
    std::string pending = buf.substr(head_len);
    std::string().swap(buf);
    req = {};
    co_await tunnel(std::move(client), std::move(pending), addr, conn);
  } else {
    co_await forward(std::move(client), std::move(buf), std::move(req), head_len, conn);
  }
}

awaitable<void> HttpHandler::tunnel(StreamPtr client, std::string pending, const std::string& addr,
                                    ConnInfo& conn) {
  StreamPtr upstream = co_await dial(addr, conn);
  error_code ec;
  if (!upstream) {
    co_await write_all(*client, asio::buffer(skeleton(503, true)), ec);
    co_return;
  }
  co_await write_all(*client, asio::buffer(http::response_connect_established(proxy_agent_)), ec);
  if (ec) co_return;
  if (!pending.empty()) {
    co_await write_all(*upstream, asio::buffer(pending), ec);
    if (ec) co_return;
    conn.input_bytes += pending.size();
  }
  auto relaying = relay_to_end(std::move(client), std::move(upstream), addr, conn,
                               {.idle_timeout = idle_timeout_});
  co_await std::move(relaying);
}

awaitable<void> HttpHandler::udp_tunnel(StreamPtr client, ConnInfo& conn) {
  error_code ec;
  if (!udp_) {
    std::string forbidden = http::response_empty(403, 1, headers_);
    co_await write_all(*client, asio::buffer(forbidden), ec);
    co_return;
  }
  net::UdpUpstream up;
  try {
    up = co_await net::open_udp_upstream(*opts_.router, conn);
  } catch (const system_error& e) {
    conn.log.error(fmt::format("http: udp: {}", error_text(e)));
  }
  if (!up.conn) {
    std::string unavailable = skeleton(503, true);
    co_await write_all(*client, asio::buffer(unavailable), ec);
    co_return;
  }
  std::string ok = http::response_empty(200, 1, headers_);
  co_await write_all(*client, asio::buffer(ok), ec);
  if (ec) co_return;
  net::UdpTunStream tun(std::move(client));
  conn.log.info(fmt::format("{} <-> udp", conn.remote));
  co_await net::relay_datagrams(tun, *up.conn, nullptr, conn,
                                {.buffer_size = udp_buffer_,
                                 .resolve_domain = false,
                                 .tag = "http",
                                 .router = opts_.router.get()});
  conn.log.info(fmt::format("{} >-< udp", conn.remote));
}

awaitable<void> HttpHandler::forward(StreamPtr client, std::string buf, http::Request req,
                                     std::size_t head_len, ConnInfo& conn) {
  StreamPtr upstream;
  std::string upstream_addr;
  error_code ec;
  for (bool first = true;; first = false) {
    if (!first) {
      buf.erase(0, head_len);
      if (!co_await read_request(*client, buf, req, head_len, conn)) co_return;
    }
    const int client_minor = req.version_minor;
    auto uri = http::split_absolute_uri(req.target);
    if (!uri || uri->scheme != "http" || req.method == "CONNECT") {
      // Origin-form (no URL host) is a transport error in GOST's forwarder: 503.
      // (No ?: inside co_await expressions: GCC 12 destroys such temporaries twice.)
      std::string answer = http::response_empty(503, client_minor);
      if (uri && uri->scheme != "http") answer = skeleton(400, false);
      co_await write_all(*client, asio::buffer(answer), ec);
      co_return;
    }
    std::string addr = ensure_port(uri->authority, "80");
    auto framing = http::request_framing(req);
    if (!framing) {
      co_await write_all(*client, asio::buffer(skeleton(400, false)), ec);
      co_return;
    }
    std::string host_header = req.headers.get("Host") ? *req.headers.get("Host") : uri->authority;

    if (!upstream || upstream_addr != addr) {
      // The service's bypass (a later request of a kept-alive connection).
      bool refused = co_await opts_.router->bypassed_async("tcp", addr, conn.client_id);
      if (refused) {
        conn.log.debug(fmt::format("bypass: {}", addr));
        co_await write_all(*client, asio::buffer(skeleton(403, true)), ec);
        co_return;
      }
      upstream = co_await dial(addr, conn);
      upstream_addr = addr;
      if (!upstream) {
        co_await write_all(*client, asio::buffer(http::response_empty(503, client_minor)), ec);
        co_return;
      }
    }
    auto head = http::serialize_upstream_request(req, uri->path, host_header, *framing, keepalive_);
    co_await write_all(*upstream, asio::buffer(head), ec);
    std::string pending = buf.substr(head_len);
    buf.erase(head_len);
    if (!ec) co_await net::copy_body(*client, *upstream, pending, *framing, ec);
    if (ec) co_return;
    buf += pending;  // the next pipelined request, if any

    // Response head, with GOST's response-header timeout (readTimeout) → 503.
    std::string rbuf;
    http::Response resp;
    std::size_t rhead = 0;
    http::ParseStatus st;
    for (;;) {
      {
        Stream& up = *upstream;
        Deadline deadline(up.executor(), read_timeout_, [&up] { up.close(); });
        st = co_await net::read_response(up, rbuf, resp, rhead, ec);
      }
      if (st != http::ParseStatus::complete || resp.status == 101 || resp.status / 100 != 1) break;
      // Interim 1xx (e.g. 100 Continue): pass it on and wait for the final response.
      co_await write_all(*client, asio::buffer(rbuf.data(), rhead), ec);
      if (ec) co_return;
      rbuf.erase(0, rhead);
    }
    if (st != http::ParseStatus::complete) {
      conn.log.error(fmt::format("{}: no valid response from upstream", addr));
      co_await write_all(*client, asio::buffer(http::response_empty(503, client_minor)), ec);
      co_return;
    }
    conn.log.info(fmt::format("{} {} {} → {}", conn.remote, req.method, req.target, resp.status));

    if (resp.status == 101) {
      auto* want = req.headers.get("Upgrade");
      auto* got = resp.headers.get("Upgrade");
      if (!want || !got || strcasecmp(want->c_str(), got->c_str()) != 0) co_return;
      co_await write_all(*client, asio::buffer(rbuf), ec);  // head and any early bytes
      if (ec) co_return;
      if (!buf.empty()) co_await write_all(*upstream, asio::buffer(buf), ec);
      if (ec) co_return;
      auto relaying = relay_to_end(std::move(client), std::move(upstream), addr, conn,
                                   {.idle_timeout = idle_timeout_});
      co_await std::move(relaying);
      co_return;
    }

    auto rframing = http::response_framing(resp, req.method);
    if (!rframing) {
      co_await write_all(*client, asio::buffer(http::response_empty(503, client_minor)), ec);
      co_return;
    }
    bool close_after =
        rframing->kind == http::Framing::until_close ||
        resp.headers.has_token("Connection", "close") ||
        (resp.version_minor == 0 && !resp.headers.has_token("Connection", "keep-alive")) ||
        req.headers.has_token("Connection", "close") ||
        (client_minor == 0 && !req.headers.has_token("Connection", "keep-alive"));
    auto out_head = http::serialize_client_response(resp, *rframing, client_minor);
    if (client_minor == 0 && !close_after)
      out_head.insert(out_head.size() - 2, "Connection: keep-alive\r\n");
    co_await write_all(*client, asio::buffer(out_head), ec);
    std::string rpending = rbuf.substr(rhead);
    if (!ec) co_await net::copy_body(*upstream, *client, rpending, *rframing, ec);
    if (ec) co_return;
    conn.output_bytes += out_head.size();
    if (close_after) co_return;
    if (!keepalive_ || resp.headers.has_token("Connection", "close")) upstream.reset();
  }
}

HandlerFactory http_factory() {
  return [](const HandlerOptions& o) { return std::shared_ptr<Handler>(new HttpHandler(o)); };
}

GOST_REGISTER(HandlerRegistry, "http", http_factory());

}  // namespace
}  // namespace gost
