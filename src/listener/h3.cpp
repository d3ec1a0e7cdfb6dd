// Listeners "h3" and "http3": PHT over HTTP/3 (docs/PROTOCOLS.md "pht: HTTP/3", "http3: names").
// `h3` is what current GOST calls it; `http3` is the seed's spelling, which GOST 3.2.6 gives to its
// HTTP/3 reverse proxy — here, with handler auto (what `-L http3://` builds), it is the same
// tunnel. With handler masque (docs/PROTOCOLS.md "masque") the listener serves MASQUE beside
// PHT: a CONNECT request is handed to the handler as it is (net::quic::request_of), PHT's paths
// stay PHT's, and any other request is answered 405 as GOST's masque handler does.
//
// Each worker has its own UDP socket (SO_REUSEPORT) and its own QUIC connections; a client's
// pushes and pulls may come over different connections (its pool opens more when one has no
// stream credit left), which is why the workers share one PhtServer, as the pht listener does.
#include "core/address.hpp"
#include "core/component.hpp"
#include "listener/pump.hpp"
#include "net/pht_h3.hpp"
#include "net/udp.hpp"

namespace gost {
namespace {

class H3Listener final : public Listener {
 public:
  H3Listener(asio::io_context& ctx, const ListenerOptions& o, std::string where)
      : ctx_(ctx), masque_(o.handler == "masque") {
    const auto& md = o.config.metadata;
    auto so = net::pht::server_options(md, where);
    auto refusals = std::make_shared<Refusals>(o.log, o.service, o.config.type);
    so.refusals = refusals;
    auto qc = net::quic::config_from(md, false, where);
    qc.max_handshakes = std::max<std::size_t>(so.backlog, 16) * 2;
    qc.datagrams = masque_;  // CONNECT-UDP's datagrams, and extended CONNECT
    const std::size_t backlog = so.backlog;
    if (o.check_free) net::check_udp_address_free(o.addr, where);
    server_ = net::pht::PhtServer::shared(o.service_metadata, o.first, std::move(so), o.log);
    acceptor_ = server_->add_acceptor();
    if (o.first) server_->start_reaper(ctx.get_executor());
    net::quic::Server::OnRequest on_request = [server = server_, log = o.log,
                                               &ctx](std::shared_ptr<net::quic::RequestStream> st) {
      asio::co_spawn(ctx, net::pht::serve_h3(std::move(st), server, log), asio::detached);
    };
    if (masque_) {
      // CONNECTs wait in the queue (PHT sessions count too) up to 32 × `backlog`: a burst's
      // requests all arrive in one receive batch, before accept() runs once, and each is just a
      // stream handle (its connection's stream credit bounds them too). One more is rejected
      // with H3_REQUEST_REJECTED, which our client retries (GOST drops it), counted in
      // gost_service_refused_streams_total with a warning a second.
      queue_ = std::make_shared<StreamQueue>(ctx.get_executor(),
                                             std::max<std::size_t>(backlog, 16) * 32);
      const auto& po = server_->options();
      on_request = [q = std::weak_ptr<StreamQueue>(queue_), pht = on_request,
                    paths =
                        std::array<std::string, 3>{po.authorize_path, po.push_path, po.pull_path},
                    refusals](std::shared_ptr<net::quic::RequestStream> st) {
        const auto& head = st->head();
        if (net::h2_header(head, ":method") != "CONNECT") {
          auto path = net::h2_header(head, ":path");
          path = path.substr(0, path.find('?'));
          if (std::find(paths.begin(), paths.end(), path) != paths.end()) return pht(st);
          asio::co_spawn(
              st->executor(),
              [st]() -> awaitable<void> {
                error_code ec;
                co_await st->reply(405, ec);
              },
              asio::detached);
          return;
        }
        auto queue = q.lock();
        if (!queue || queue->closed()) return st->reset();
        if (queue->full()) {  // counted and warned about, as GOST's "connection queue is full"
          refusals->add("connection queue is full");
          return st->reject();
        }
        queue->push(net::quic::byte_stream(std::move(st)));
      };
    }
    quic_ = std::make_unique<net::quic::Server>(ctx, o.addr, o.config.tls, qc,
                                                std::move(on_request), o.log);
  }
  ~H3Listener() override { close(); }

  awaitable<StreamPtr> accept(error_code& ec) override {
    if (!started_) {
      started_ = true;
      quic_->start();
      if (masque_) asio::co_spawn(ctx_, pump_pht(server_, acceptor_, queue_), asio::detached);
    }
    if (!masque_) co_return co_await server_->accept(acceptor_, ec);
    auto q = queue_;
    co_return co_await q->take(ec);
  }

  void close() override {
    quic_->close();
    server_->close_acceptor(acceptor_);
    if (queue_) queue_->close();
  }
  std::string bound_address() const override { return quic_->bound_address(); }
  std::string network() const override { return "udp"; }

 private:
  // MASQUE mode: the PHT sessions join the CONNECT requests in the one queue accept() reads.
  static awaitable<void> pump_pht(std::shared_ptr<net::pht::PhtServer> server, int acceptor,
                                  std::shared_ptr<StreamQueue> q) {
    for (;;) {
      error_code ec;
      auto s = co_await server->accept(acceptor, ec);
      if (ec || q->closed()) break;
      q->push(std::move(s));
    }
  }

  asio::io_context& ctx_;
  bool masque_ = false;
  std::shared_ptr<net::pht::PhtServer> server_;
  int acceptor_ = 0;
  std::shared_ptr<StreamQueue> queue_;
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
