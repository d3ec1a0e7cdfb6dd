// Listeners "h2" (TLS, ALPN h2) and "h2c" (cleartext, prior knowledge): the data channels of
// docs/PROTOCOLS.md "h2: server". Every accepted HTTP/2 stream whose request passes the method/path
// check is answered 200 at once and handed to the handler as one Stream; the handler's protocol
// (socks5, relay, http, ...) runs inside it.
//
// listener/pump: each connection's TLS handshake and HTTP/2 session run in their own coroutine,
// whose accepted streams are queued (bounded by `backlog`) for accept().
#include <fmt/format.h>

#include <algorithm>

#include "core/buffered_stream.hpp"
#include "core/component.hpp"
#include "core/timeout.hpp"
#include "listener/pump.hpp"
#include "net/http2.hpp"
#include "net/http_io.hpp"
#include "net/tls.hpp"
#include "proto/base64.hpp"

namespace gost {
namespace {

struct H2Options {
  std::string path;  // empty: CONNECT only
  net::Http2Config http2;
  net::TlsContextPtr tls;  // null: h2c
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(15);
  log::Logger log;
};

class H2Listener final : public PumpListener {
 public:
  H2Listener(asio::io_context& ctx, const ListenerOptions& o, bool tls)
      : PumpListener(ctx, o, "tcp", 128), where_(tls ? "listener h2" : "listener h2c") {
    const auto& md = o.config.metadata;
    auto opts = std::make_shared<H2Options>();
    opts->path = md.get_string("path").value_or("");
    opts->http2 = net::http2_config(md, where_);
    opts->http2.on_refused = [r = refusals()](std::string_view why) { r->add(why); };
    if (auto b = md.get_int("backlog").value_or(0); b > 0) {
      queue().set_limit(static_cast<std::size_t>(b));
    }
    if (auto t = md.get_duration("handshakeTimeout").value_or(std::chrono::nanoseconds(0));
        t.count() > 0)
      opts->handshake_timeout = t;
    opts->log = o.log;
    // ALPN h2 (and http/1.1, as GOST offers it; such connections are not served).
    if (tls) opts->tls = net::server_context(o.config.tls, {"h2", "http/1.1"});
    set_serve([opts = std::shared_ptr<const H2Options>(opts)](StreamPtr conn,
                                                              std::shared_ptr<StreamQueue> q) {
      return session(std::move(q), std::move(conn), opts);
    });
  }

 private:
  // docs/PROTOCOLS.md "h2: server": without `path` only CONNECT (else 405); with it, only a request
  // whose target (:path, or the authority of a CONNECT) is exactly `path` (else 400).
  static int check_request(const net::Http2Stream& s, const std::string& path) {
    auto method = s.header(":method");
    if (path.empty()) return method == "CONNECT" ? 200 : 405;
    auto target = method == "CONNECT" ? s.header(":authority") : s.header(":path");
    return target == path ? 200 : 400;
  }

  // h2c (docs/PROTOCOLS.md "h2: server"): prior knowledge (the connection preface), or an HTTP/1.1
  // request with `Upgrade: h2c` answered with 101. Anything else is not served (null).
  static awaitable<std::shared_ptr<net::Http2Session>> h2c_start(StreamPtr conn,
                                                                 const H2Options& opts) {
    static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    Stream& raw = *conn;
    Deadline deadline(raw.executor(), opts.handshake_timeout, [&raw] { raw.close(); });
    std::string buf;
    error_code ec;
    char tmp[64];
    while (buf.size() < kPreface.size() &&
           kPreface.substr(0, buf.size()) == std::string_view(buf)) {
      std::size_t n = co_await conn->read_some(asio::buffer(tmp, kPreface.size() - buf.size()), ec);
      if (ec) co_return nullptr;
      buf.append(tmp, n);
    }
    if (buf == kPreface)
      co_return net::Http2Session::server(with_prefix(std::move(conn), std::move(buf)), opts.http2);
    proto::http::Request req;
    std::size_t head_len = 0;
    auto status = co_await net::read_request(*conn, buf, req, head_len, ec);
    if (status != proto::http::ParseStatus::complete) co_return nullptr;
    const auto& h = req.headers;
    const std::string* settings = h.get("HTTP2-Settings");
    const std::string* upgrade = h.get("Upgrade");
    const std::string* length = h.get("Content-Length");
    if (!settings || !upgrade || !h.has_token("Connection", "upgrade") ||
        !h.has_token("Connection", "http2-settings") || h.has("Transfer-Encoding") ||
        (length && *length != "0"))
      co_return nullptr;
    std::string up = *upgrade;
    std::transform(up.begin(), up.end(), up.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto payload = proto::base64_decode(*settings, true, false);
    if (up != "h2c" || !payload) co_return nullptr;
    static constexpr std::string_view k101 =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    co_await write_all(*conn, asio::buffer(k101), ec);
    if (ec) co_return nullptr;
    const std::string* host = h.get("Host");
    bool connect = req.method == "CONNECT";
    net::H2Headers request = {{":method", req.method},
                              {":authority", connect ? req.target
                                             : host  ? *host
                                                     : ""}};
    if (!connect) {
      request.push_back({":path", req.target});
      request.push_back({":scheme", "http"});
    }
    co_return net::Http2Session::server_upgrade(with_prefix(std::move(conn), buf.substr(head_len)),
                                                opts.http2, *payload, std::move(request),
                                                req.method == "HEAD");
  }

  static awaitable<void> session(std::shared_ptr<StreamQueue> q, StreamPtr conn,
                                 std::shared_ptr<const H2Options> opts) {
    std::string remote = conn->remote_address();
    if (opts->tls) {
      // A failed handshake ends this coroutine; listener/pump logs it (debug).
      conn = co_await net::tls_accept(std::move(conn), opts->tls, opts->handshake_timeout);
      if (net::negotiated_alpn(*conn) == "http/1.1") {
        opts->log.debug(fmt::format("{}: HTTP/1.1 is not served on h2", remote));
        co_return;
      }
    }
    std::shared_ptr<net::Http2Session> session;
    if (opts->tls) {
      session = net::Http2Session::server(std::move(conn), opts->http2);
    } else {
      try {
        session = co_await h2c_start(std::move(conn), *opts);
      } catch (const std::exception& e) {
        opts->log.debug(fmt::format("{}: h2c: {}", remote, error_text(e)));
      }
      if (!session) co_return;
    }
    co_await q->take_streams(session, [&opts](net::Http2StreamPtr s) -> StreamPtr {
      int status = check_request(*s, opts->path);
      if (status != 200) {
        s->respond(status, {{"content-length", "0"}, {"date", net::h2_date()}}, true);
        return nullptr;  // the stream ends with the answer; the connection stays
      }
      // Answered before the handler reads anything: GOST clients wait for it ("h2: server").
      s->respond(200, {{"date", net::h2_date()}}, false);
      return s;
    });
    session->shutdown();
    opts->log.debug(fmt::format("{}: http2 session ended", remote));
  }

  std::string where_;
};

GOST_REGISTER(ListenerRegistry, "h2", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new H2Listener(ctx, o, true));
});
GOST_REGISTER(ListenerRegistry, "h2c", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new H2Listener(ctx, o, false));
});

}  // namespace
}  // namespace gost
