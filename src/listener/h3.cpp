// Listeners "h3" and "http3": PHT over HTTP/3 (docs/PROTOCOLS.md "pht: HTTP/3", "http3: names").
// `h3` is what current GOST calls it; `http3` is the seed's spelling, which GOST 3.2.6 gives to its
// HTTP/3 reverse proxy — here, with handler auto (what `-L http3://` builds), it is the same
// tunnel.
//
// Each worker has its own UDP socket (SO_REUSEPORT) and its own QUIC connections; a client's
// pushes and pulls may come over different connections (its pool opens more when one has no
// stream credit left), which is why the workers share one PhtServer, as the pht listener does.

#include <fmt/format.h>

#include "core/address.hpp"
#include "core/component.hpp"
#include "net/pht_h3.hpp"
#include "net/udp.hpp"

namespace gost {
namespace {

class H3Listener final : public Listener {
 public:
  H3Listener(asio::io_context& ctx, const ListenerOptions& o, std::string where)
      : ctx_(ctx), log_(o.log) {
    const auto& md = o.config.metadata;
    auto so = net::pht::server_options(md, where);
    so.refusals = std::make_shared<Refusals>(o.log, o.service, o.config.type);
    auto qc = net::quic::config_from(md, false, where);
    qc.max_handshakes = std::max<std::size_t>(so.backlog, 16) * 2;
    if (o.check_free) net::check_udp_address_free(o.addr, where);
    server_ = net::pht::PhtServer::shared(o.service_metadata, o.first, std::move(so), o.log);
    acceptor_ = server_->add_acceptor();
    if (o.first) server_->start_reaper(ctx.get_executor());
    quic_ = std::make_unique<net::quic::Server>(
        ctx, o.addr, o.config.tls, qc,
        [server = server_, log = o.log, &ctx](std::shared_ptr<net::quic::RequestStream> st) {
          asio::co_spawn(ctx, net::pht::serve_h3(std::move(st), server, log), asio::detached);
        },
        o.log);
  }
  ~H3Listener() override { close(); }

  awaitable<StreamPtr> accept(error_code& ec) override {
    if (!started_) {
      started_ = true;
      quic_->start();
    }
    co_return co_await server_->accept(acceptor_, ec);
  }

  void close() override {
    quic_->close();
    server_->close_acceptor(acceptor_);
  }
  std::string bound_address() const override { return quic_->bound_address(); }
  std::string network() const override { return "udp"; }

 private:
  asio::io_context& ctx_;
  log::Logger log_;
  std::shared_ptr<net::pht::PhtServer> server_;
  int acceptor_ = 0;
  std::unique_ptr<net::quic::Server> quic_;
  bool started_ = false;
};

GOST_REGISTER(ListenerRegistry, "h3", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new H3Listener(ctx, o, "listener h3"));
});
GOST_REGISTER(ListenerRegistry, "http3", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new H3Listener(ctx, o, "listener http3"));
});

}  // namespace
}  // namespace gost
