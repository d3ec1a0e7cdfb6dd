// Dialers "ws" and "wss" (docs/PROTOCOLS.md "ws"): TCP to the node (first node of a route), then
// for wss a TLS client handshake, then the WebSocket upgrade. handshake() also runs over an
// existing stream for later chain nodes. Not multiplexing: one connection per tunnel, as in GOST.
#include "net/ws.hpp"

#include "chain/chain.hpp"
#include "core/address.hpp"
#include "core/component.hpp"
#include "core/timeout.hpp"
#include "net/tls.hpp"

namespace gost {
namespace {

class WsDialer final : public Dialer {
 public:
  WsDialer(const DialerOptions& o, bool tls)
      : config_(net::ws_client_config(o.config.metadata, tls ? "dialer wss" : "dialer ws")) {
    if (tls) tls_ = net::wss_client_context(o.config.tls, o.node_addr, config_);
  }

  awaitable<StreamPtr> dial(std::string_view addr, const log::Logger&) override {
    auto s = co_await dial_tcp(addr);
    net::apply_tcp_keepalive(*s, config_.tcp_keepalive);
    co_return s;
  }

  awaitable<StreamPtr> handshake(StreamPtr s, std::string_view addr) override {
    co_return co_await net::ws_client_handshake(std::move(s), config_, tls_, addr);
  }

 private:
  net::WsClientConfig config_;
  net::TlsContextPtr tls_;
};

GOST_REGISTER(DialerRegistry, "ws", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new WsDialer(o, false));
});
GOST_REGISTER(DialerRegistry, "wss", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new WsDialer(o, true));
});

}  // namespace
}  // namespace gost
