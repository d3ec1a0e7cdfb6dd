// Listeners "pht" and "phts" (docs/PROTOCOLS.md "pht"): TCP (TLS for phts) connections carrying
// HTTP/1.1 requests; the sessions they open are the Streams accept() yields.
//
// Each worker has its own listener (SO_REUSEPORT), and the kernel spreads connections over them
// by address, so the push and the pull of one session usually arrive on different workers. The
// workers of a service therefore share one PhtServer (its session table is thread-safe, see
// net/pht.hpp); the session Stream lives on the worker whose accept() took it, and the requests
// hand bytes to it from whichever worker they arrived on. Routing by token instead would need
// the request head read before choosing the worker, i.e. moving sockets between threads.

#include <fmt/format.h>

#include "core/component.hpp"
#include "net/pht_http1.hpp"

namespace gost {
namespace {

class PhtListener final : public Listener {
 public:
  PhtListener(asio::io_context& ctx, const ListenerOptions& o, bool tls) : ctx_(ctx), log_(o.log) {
    std::string where = tls ? "listener phts" : "listener pht";
    reject_unsupported(o.config.metadata, {"mptcp"}, where);
    auto so = net::pht::server_options(o.config.metadata, where);
    so.refusals = std::make_shared<Refusals>(o.log, o.service, o.config.type);
    // The transport under HTTP is the registered tcp / tls listener, options and all.
    ListenerOptions inner = o;
    inner.config.type = tls ? "tls" : "tcp";
    auto* f = ListenerRegistry::find(inner.config.type);
    if (!f) throw config::ConfigError(fmt::format("{}: no {} listener", where, inner.config.type));
    inner_ = std::shared_ptr<Listener>((*f)(ctx, inner));
    server_ = net::pht::PhtServer::shared(o.service_metadata, o.first, std::move(so), o.log);
    acceptor_ = server_->add_acceptor();
    if (o.first) server_->start_reaper(ctx.get_executor());
  }
  ~PhtListener() override { server_->close_acceptor(acceptor_); }

  awaitable<StreamPtr> accept(error_code& ec) override {
    if (!started_) {
      started_ = true;
      asio::co_spawn(ctx_, accept_connections(inner_, server_, log_), asio::detached);
    }
    co_return co_await server_->accept(acceptor_, ec);
  }

  void close() override {
    inner_->close();
    server_->close_acceptor(acceptor_);
  }
  std::string bound_address() const override { return inner_->bound_address(); }
  std::optional<SharedListenSocket> share_socket() override { return inner_->share_socket(); }
  std::string network() const override { return "tcp"; }

 private:
  static awaitable<void> accept_connections(std::shared_ptr<Listener> inner,
                                            std::shared_ptr<net::pht::PhtServer> server,
                                            log::Logger log) {
    auto ex = co_await asio::this_coro::executor;
    for (;;) {
      error_code ec;
      auto s = co_await inner->accept(ec);
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
      if (ec) {
        // Out of descriptors and the like: wait a little rather than spin.
        log.warn(fmt::format("pht: accept: {}", ec.message()));
        asio::steady_timer t(ex, std::chrono::milliseconds(200));
        co_await t.async_wait(use_nothrow);
        continue;
      }
      asio::co_spawn(ex, serve_connection(inner, server, std::move(s), log), asio::detached);
    }
  }

  static awaitable<void> serve_connection(std::shared_ptr<Listener> inner,
                                          std::shared_ptr<net::pht::PhtServer> server, StreamPtr s,
                                          log::Logger log) {
    std::string remote = s->remote_address();
    try {
      s = co_await inner->handshake(std::move(s));  // TLS for phts
      co_await net::pht::serve_http1(std::move(s), std::move(server), log);
    } catch (const std::exception& e) {
      log.debug(fmt::format("pht: connection from {}: {}", remote, error_text(e)));
    }
  }

  asio::io_context& ctx_;
  log::Logger log_;
  std::shared_ptr<Listener> inner_;
  std::shared_ptr<net::pht::PhtServer> server_;
  int acceptor_ = 0;
  bool started_ = false;
};

GOST_REGISTER(ListenerRegistry, "pht", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new PhtListener(ctx, o, false));
});
GOST_REGISTER(ListenerRegistry, "phts", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new PhtListener(ctx, o, true));
});

}  // namespace
}  // namespace gost
