// Listener "http2": the proxy mode of docs/PROTOCOLS.md "http2: server". TLS with ALPN h2 (and
// http/1.1, as GOST offers it); every HTTP/2 request is handed to the handler as one Stream (a
// net::Http2Stream with its request head and no response yet: the `http2` handler answers it);
// a connection that did not negotiate h2 is handed over whole (HTTP/1.1 proxy requests).
//
// listener/pump: each connection's TLS handshake and HTTP/2 session run in their own coroutine,
// whose requests are queued (bounded by `backlog`) for accept().
#include "net/http2.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/component.hpp"
#include "listener/pump.hpp"
#include "net/tls.hpp"

namespace gost {
namespace {

struct Http2ListenerOptions {
  net::Http2Config http2;
  net::TlsContextPtr tls;
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(15);
  log::Logger log;
};

class Http2Listener final : public PumpListener {
 public:
  Http2Listener(asio::io_context& ctx, const ListenerOptions& o)
      : PumpListener(ctx, o, "tcp", 128) {
    const auto& md = o.config.metadata;
    auto opts = std::make_shared<Http2ListenerOptions>();
    opts->http2 = net::http2_config(md, "listener http2");
    opts->http2.on_refused = [r = refusals()](std::string_view why) { r->add(why); };
    if (auto b = md.get_int("backlog").value_or(0); b > 0) queue().set_limit(static_cast<std::size_t>(b));
    if (auto t = md.get_duration("handshakeTimeout").value_or(std::chrono::nanoseconds(0));
        t.count() > 0)
      opts->handshake_timeout = t;
    opts->log = o.log;
    opts->tls = net::server_context(o.config.tls, {"h2", "http/1.1"});
    set_serve([opts = std::shared_ptr<const Http2ListenerOptions>(opts)](
                  StreamPtr conn, std::shared_ptr<StreamQueue> q) {
      return session(std::move(q), std::move(conn), opts);
    });
  }

 private:
  static awaitable<void> session(std::shared_ptr<StreamQueue> q, StreamPtr conn,
                                 std::shared_ptr<const Http2ListenerOptions> opts) {
    std::string remote = conn->remote_address();
    // A failed handshake ends this coroutine; listener/pump logs it (debug).
    conn = co_await net::tls_accept(std::move(conn), opts->tls, opts->handshake_timeout);
    // HTTP/1.1 clients (ALPN http/1.1 or none) are served too ("http2: server"): the TLS
    // connection itself goes to the handler, which speaks HTTP/1.1 proxy on it.
    if (auto alpn = net::negotiated_alpn(*conn); alpn != "h2") {
      if (!q->closed()) q->push(std::move(conn));
      co_return;
    }
    auto session = net::Http2Session::server(std::move(conn), opts->http2);
    // A request is held while the queue is full (the session's own queue, bounded by its
    // advertised stream limit, keeps it): GOST answers it with an empty 200 and runs no handler,
    // which its client takes for a tunnel that ended at once (issue 16).
    co_await q->take_streams(session, [](StreamPtr s) { return s; });
    session->shutdown();
    opts->log.debug(fmt::format("{}: http2 session ended", remote));
  }
};

GOST_REGISTER(ListenerRegistry, "http2", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new Http2Listener(ctx, o));
});

}  // namespace
}  // namespace gost
