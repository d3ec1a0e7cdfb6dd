// Listeners "ws" and "wss" (docs/PROTOCOLS.md "ws"): the "tcp" / "tls" listener of the registry
// accepts (and for wss runs the TLS handshake), then the HTTP/1.1 upgrade turns the connection into
// a WebSocket stream — all in the connection's own coroutine (Listener::handshake).
#include "net/ws.hpp"

#include <fmt/format.h>

#include "core/component.hpp"

namespace gost {
namespace {

class WsListener final : public Listener {
 public:
  WsListener(asio::io_context& ctx, const ListenerOptions& o, bool tls)
      : config_(net::ws_server_config(o.config.metadata, tls ? "listener wss" : "listener ws")) {
    const auto& md = o.config.metadata;
    // `keepalive` (TCP keep-alive on accepted sockets) is the tcp listener's own option; the
    // finer settings are applied here.
    keepalive_.enabled = md.get_bool("keepalive").value_or(false);
    keepalive_.idle = md.get_duration("keepalive.idle").value_or(std::chrono::nanoseconds(0));
    keepalive_.interval =
        md.get_duration("keepalive.interval").value_or(std::chrono::nanoseconds(0));
    keepalive_.count = static_cast<int>(md.get_int("keepalive.count").value_or(0));
    const auto* factory = ListenerRegistry::find(tls ? "tls" : "tcp");
    if (!factory) throw config::ConfigError("listener ws: no tcp/tls listener registered");
    inner_ = (*factory)(ctx, o);
  }

  awaitable<StreamPtr> accept(error_code& ec) override {
    auto s = co_await inner_->accept(ec);
    if (s) net::apply_tcp_keepalive(*s, keepalive_);
    co_return s;
  }

  awaitable<StreamPtr> handshake(StreamPtr s) override {
    s = co_await inner_->handshake(std::move(s));
    co_return co_await net::ws_accept(std::move(s), config_);
  }

  void close() override { inner_->close(); }
  std::string bound_address() const override { return inner_->bound_address(); }
  std::optional<SharedListenSocket> share_socket() override { return inner_->share_socket(); }
  std::string network() const override { return inner_->network(); }

 private:
  net::WsServerConfig config_;
  net::TcpKeepalive keepalive_;
  std::unique_ptr<Listener> inner_;
};

GOST_REGISTER(ListenerRegistry, "ws", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new WsListener(ctx, o, false));
});
GOST_REGISTER(ListenerRegistry, "wss", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new WsListener(ctx, o, true));
});

}  // namespace
}  // namespace gost
