// Listeners "mws" and "mwss" (docs/PROTOCOLS.md "ws: mws and mwss"): the WebSocket of the ws/wss
// listener carries an smux v1 session (net/mux) whose client opens one stream per tunnel. accept()
// yields those streams (listener/pump: each connection's TLS and WebSocket handshakes, then its
// session's stream accepts, run in their own coroutine).
#include <fmt/format.h>

#include "listener/pump.hpp"
#include "net/mux.hpp"
#include "net/ws.hpp"

namespace gost {
namespace {

// Streams accepted from every session, waiting for accept(). A session stops taking streams from
// its peer while this is full (the peer's SYNs then wait in the session's own bounded backlog).
constexpr std::size_t kReadyLimit = 256;

class MwsListener final : public PumpListener {
 public:
  MwsListener(asio::io_context& ctx, const ListenerOptions& o, bool tls)
      : PumpListener(ctx, o, tls ? "tls" : "tcp", kReadyLimit) {
    std::string where = tls ? "listener mwss" : "listener mws";
    auto ws = std::make_shared<const net::WsServerConfig>(
        net::ws_server_config(o.config.metadata, where));
    auto mux = net::mux_config(o.config.metadata, where);
    set_serve([ws, mux, log = o.log](StreamPtr conn, std::shared_ptr<StreamQueue> q) {
      return serve(std::move(conn), std::move(q), ws, mux, log);
    });
  }

 private:
  static awaitable<void> serve(StreamPtr conn, std::shared_ptr<StreamQueue> q,
                               std::shared_ptr<const net::WsServerConfig> ws, net::MuxConfig mux,
                               log::Logger log) {
    std::string remote = conn->remote_address();
    conn = co_await net::ws_accept(std::move(conn), *ws);
    auto session = net::MuxSession::server(std::move(conn), mux);
    co_await q->take_streams(session, [](StreamPtr s) { return s; });
    log.debug(fmt::format("{}: mws session ended", remote));
  }
};

GOST_REGISTER(ListenerRegistry, "mws", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new MwsListener(ctx, o, false));
});
GOST_REGISTER(ListenerRegistry, "mwss", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new MwsListener(ctx, o, true));
});

}  // namespace
}  // namespace gost
