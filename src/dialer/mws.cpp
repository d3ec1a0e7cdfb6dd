// Dialers "mws" and "mwss" (docs/PROTOCOLS.md "ws: mws and mwss"): the ws/wss upgrade, then an smux
// v1 client session (net/mux) on the WebSocket; every tunnel is one stream. As the first node of a
// route the sessions are pooled — per worker, so that a session and all its streams live on one
// thread (docs/ARCHITECTURE.md "Concurrency") — and reused until they end; a dead session is
// dropped and the next tunnel dials a new one. Reached through a previous node (handshake() over
// its stream), a session carries that one tunnel and ends with it.
#include <fmt/format.h>

#include "chain/chain.hpp"
#include "core/address.hpp"
#include "core/component.hpp"
#include "core/timeout.hpp"
#include "net/mux.hpp"
#include "net/session_pool.hpp"
#include "net/tls.hpp"
#include "net/ws.hpp"

namespace gost {
namespace {

class MwsDialer final : public Dialer {
 public:
  MwsDialer(const DialerOptions& o, bool tls)
      : where_(tls ? "dialer mwss" : "dialer mws"),
        ws_(net::ws_client_config(o.config.metadata, where_)),
        mux_(net::mux_config(o.config.metadata, where_)) {
    if (tls) tls_ = net::wss_client_context(o.config.tls, o.node_addr, ws_);
  }

  awaitable<StreamPtr> dial(std::string_view addr, const log::Logger&) override {
    auto s = co_await dial_tcp(addr);
    net::apply_tcp_keepalive(*s, ws_.tcp_keepalive);
    co_return s;
  }

  // Over an existing stream (a later node of a route): a session for this one tunnel.
  awaitable<StreamPtr> handshake(StreamPtr s, std::string_view addr) override {
    auto session = co_await open_session(std::move(s), addr);
    session->close_when_idle();
    error_code ec;
    auto stream = co_await session->open_stream(ec);
    if (!stream) throw system_error(ec, "mws: open stream");
    co_return stream;
  }

  awaitable<StreamPtr> connect(std::string_view addr, const log::Logger& log) override {
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto session = co_await pool_.get(
          [](const net::MuxSession& s) { return s.closed(); },
          [](const net::MuxSession&) { return true; },  // smux v1 has no stream limit
          [&]() -> awaitable<std::shared_ptr<net::MuxSession>> {
            auto conn = co_await dial(addr, log);
            co_return co_await open_session(std::move(conn), addr);
          });
      error_code ec;
      auto stream = co_await session->open_stream(ec);
      if (stream) co_return stream;
      session->close();  // dead: the next attempt dials a new one
      log.debug(
          fmt::format("{}: session to {} ended ({}), reconnecting", where_, addr, ec.message()));
    }
    throw system_error(asio::error::connection_reset, where_ + ": no session");
  }

 private:
  awaitable<std::shared_ptr<net::MuxSession>> open_session(StreamPtr s, std::string_view addr) {
    s = co_await net::ws_client_handshake(std::move(s), ws_, tls_, addr);
    co_return net::MuxSession::client(std::move(s), mux_);
  }

  std::string where_;
  net::WsClientConfig ws_;
  net::MuxConfig mux_;
  net::TlsContextPtr tls_;
  net::SessionPool<net::MuxSession> pool_;
};

GOST_REGISTER(DialerRegistry, "mws", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new MwsDialer(o, false));
});
GOST_REGISTER(DialerRegistry, "mwss", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new MwsDialer(o, true));
});

}  // namespace
}  // namespace gost
