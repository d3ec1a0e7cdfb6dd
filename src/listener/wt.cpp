// Listener "wt": the WebTransport data channel (docs/PROTOCOLS.md "wt"). Each worker has its own
// UDP socket (SO_REUSEPORT) and QUIC connections; a client's session lives on one worker, and
// each of its bidirectional streams is one accepted connection of that worker. They wait in a
// queue of 32 x `backlog`: a burst's streams all arrive in one receive batch, before accept()
// runs once, and each is just a stream handle (the sessions' stream credit bounds them too). One
// more is refused as GOST's listener refuses it (a FIN and no data; net::wt::refuse), which our
// client retries, counted and warned about (core/refusals).
#include "net/wt.hpp"

#include "core/component.hpp"
#include "listener/pump.hpp"
#include "net/udp.hpp"

namespace gost {
namespace {

constexpr std::string_view kDefaultPath = "/wt";
constexpr std::size_t kDefaultBacklog = 128;

class WtListener final : public Listener {
 public:
  WtListener(asio::io_context& ctx, const ListenerOptions& o) {
    const std::string where = "listener wt";
    const auto& md = o.config.metadata;
    std::string path = md.get_string("wt.path").value_or("");
    if (path.empty()) path = md.get_string("path").value_or("");
    if (path.empty()) path = kDefaultPath;
    std::size_t backlog = kDefaultBacklog;
    if (md.contains("backlog")) {
      auto v = md.get_int("backlog");
      if (!v || *v > (1 << 20)) throw config::ConfigError(where + ": invalid \"backlog\"");
      if (*v > 0) backlog = static_cast<std::size_t>(*v);
    }
    queue_ =
        std::make_shared<StreamQueue>(ctx.get_executor(), std::max<std::size_t>(backlog, 16) * 32);
    auto qc = net::quic::config_from(md, false, where);
    qc.webtransport = true;
    qc.max_handshakes = std::max<std::size_t>(backlog, 16) * 2;
    if (o.check_free) net::check_udp_address_free(o.addr, where);
    std::weak_ptr<StreamQueue> wq = queue_;
    auto refusals = std::make_shared<Refusals>(o.log, o.service, o.config.type);
    auto on_stream = [wq, refusals](std::shared_ptr<net::quic::RequestStream> st) {
      auto q = wq.lock();
      if (!q || q->closed()) {
        st->reset();
        return;
      }
      if (q->full()) {  // GOST's "connection queue is full": counted, a warning a second
        refusals->add("connection queue is full");
        net::wt::refuse(std::move(st));
        return;
      }
      q->push(net::wt::make_stream(std::move(st)));
    };
    quic_ = std::make_unique<net::quic::Server>(
        ctx, o.addr, o.config.tls, qc,
        [&ctx, path, on_stream, log = o.log](std::shared_ptr<net::quic::RequestStream> req) {
          asio::co_spawn(ctx, net::wt::serve_request(std::move(req), path, on_stream, log),
                         asio::detached);
        },
        o.log);
  }
  ~WtListener() override { close(); }

  awaitable<StreamPtr> accept(error_code& ec) override {
    if (!started_) {
      started_ = true;
      quic_->start();
    }
    auto q = queue_;
    co_return co_await q->take(ec);
  }

  void close() override {
    if (queue_->closed()) return;
    quic_->close();
    queue_->close();  // the streams still queued are reset as they go
  }
  std::string bound_address() const override { return quic_->bound_address(); }
  std::string network() const override { return "udp"; }

 private:
  std::shared_ptr<StreamQueue> queue_;
  std::unique_ptr<net::quic::Server> quic_;
  bool started_ = false;
};

GOST_REGISTER(ListenerRegistry, "wt", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new WtListener(ctx, o));
});

}  // namespace
}  // namespace gost
