// Dialer "http2": the client transport of the proxy mode (docs/PROTOCOLS.md "http2: client") — TLS
// with ALPN h2, then HTTP/2. It gives connector `http2` an Http2ProxyOpener (dialer/http2.hpp) on
// which the connector opens one CONNECT stream per tunnel.
//
// As the first node of a route the sessions are pooled per worker (a session and all its streams
// live on one thread, docs/ARCHITECTURE.md "Concurrency"), as dialer/h2 does: a session is used
// while it can take a stream; otherwise another connection is made; a dead one is dropped and the
// next tunnel dials again. Reached through a previous node (handshake()), a session carries that
// one tunnel.
#include "dialer/http2.hpp"

#include <fmt/format.h>

#include "chain/chain.hpp"
#include "core/component.hpp"
#include "net/session_pool.hpp"
#include "net/tls.hpp"

namespace gost {
namespace {

struct Http2Transport {
  net::Http2Config http2;
  net::TlsContextPtr tls;

  // GOST's TLS handshake timeout is 30 s; the router's dial timeout is less: 10 s. GOST's client
  // would fall back to HTTP/1.1 CONNECT when the server does not select h2; we need HTTP/2.
  awaitable<std::shared_ptr<net::Http2Session>> open_session(StreamPtr s) const {
    return net::http2_client_session(std::move(s), tls, std::chrono::seconds(10), http2,
                                     "dialer http2");
  }
};

struct NodePools {
  Http2Transport transport;
  std::string addr;
  // Spare sessions a burst opened close 10 s after their last stream (the oldest stays).
  net::SessionPool<net::Http2Session> pool{net::spare_reaping<net::Http2Session>(net::kSpareIdle)};
};

awaitable<net::Http2StreamPtr> open_on(net::Http2Session& session, const net::H2Headers& req) {
  error_code ec;
  auto stream = co_await session.open_stream(req, ec);
  if (!stream) throw system_error(ec, "dialer http2: open stream");
  // GOST's http2 listener answers a CONNECT beyond its queue with an empty 200 and runs no
  // handler: a refusal, safe to retry (issue 16), not a tunnel that ended at once.
  if (stream->status() == 200 && stream->ended_with_head() && net::h2_header(req, ":method") == "CONNECT")
    throw system_error(asio::error::connection_refused, "dialer http2: refused (empty 200)");
  co_return stream;
}

// First node: a stream of a pooled session.
class PooledOpener final : public Http2ProxyOpener {
 public:
  PooledOpener(std::shared_ptr<NodePools> pools, asio::any_io_executor ex, log::Logger log)
      : pools_(std::move(pools)), ex_(std::move(ex)), log_(std::move(log)) {}
  asio::any_io_executor executor() override { return ex_; }
  void close() override {}
  std::string remote_address() const override { return pools_->addr; }

  awaitable<net::Http2StreamPtr> open(const net::H2Headers& request) override {
    auto& np = *pools_;
    for (int attempt = 0; attempt < 3; ++attempt) {
      // Closing sessions finish their streams on their own; the pool forgets them.
      auto session =
          co_await np.pool.get([](const net::Http2Session& s) { return s.closing(); },
                               [](const net::Http2Session& s) { return s.can_open(); },
                               [&]() -> awaitable<std::shared_ptr<net::Http2Session>> {
                                 auto conn = co_await dial_tcp(np.addr);
                                 co_return co_await np.transport.open_session(std::move(conn));
                               });
      try {
        co_return co_await open_on(*session, request);
      } catch (const system_error& e) {
        // No answer in time: taken for dead (no FIN when the host went away).
        if (e.code() == asio::error::timed_out) session->close();
        // Refused (the stream limit or a GOAWAY raced us) or the session died: try another.
        if (!session->closing() && e.code() != asio::error::connection_refused) throw;
        log_.debug(fmt::format("dialer http2: session to {} unusable ({}), retrying", np.addr,
                               e.code().message()));
      }
    }
    throw system_error(asio::error::connection_reset, "dialer http2: no session");
  }

 private:
  std::shared_ptr<NodePools> pools_;
  asio::any_io_executor ex_;
  log::Logger log_;
};

// A later node of a route: a session over the previous node's stream, for one tunnel.
class SingleOpener final : public Http2ProxyOpener {
 public:
  explicit SingleOpener(std::shared_ptr<net::Http2Session> s) : session_(std::move(s)) {}
  ~SingleOpener() override { close(); }
  asio::any_io_executor executor() override { return ex_; }
  void close() override {
    // Never used: nothing will close the session otherwise.
    if (session_ && !used_) session_->close();
  }
  std::string remote_address() const override { return session_->remote_address(); }

  awaitable<net::Http2StreamPtr> open(const net::H2Headers& request) override {
    if (used_) throw system_error(asio::error::already_started, "dialer http2: one tunnel only");
    used_ = true;
    net::Http2StreamPtr stream;
    try {
      stream = co_await open_on(*session_, request);
    } catch (...) {
      session_->close();
      throw;
    }
    // Only now: with no stream open, close_when_idle() would end the session at once.
    session_->close_when_idle();
    co_return stream;
  }
  void set_executor(asio::any_io_executor ex) { ex_ = std::move(ex); }

 private:
  std::shared_ptr<net::Http2Session> session_;
  asio::any_io_executor ex_;
  bool used_ = false;
};

class Http2Dialer final : public Dialer {
 public:
  explicit Http2Dialer(const DialerOptions& o) : pools_(std::make_shared<NodePools>()) {
    pools_->addr = o.node_addr;
    pools_->transport.http2 = net::http2_config(o.config.metadata, "dialer http2");
    pools_->transport.tls = net::client_context(o.config.tls, o.node_addr, {"h2", "http/1.1"});
  }

  awaitable<StreamPtr> dial(std::string_view addr, const log::Logger&) override {
    co_return co_await dial_tcp(addr);
  }

  awaitable<StreamPtr> handshake(StreamPtr s, std::string_view) override {
    auto ex = s->executor();
    auto session = co_await pools_->transport.open_session(std::move(s));
    auto opener = std::make_unique<SingleOpener>(std::move(session));
    opener->set_executor(ex);
    co_return opener;
  }

  awaitable<StreamPtr> connect(std::string_view, const log::Logger& log) override {
    auto ex = co_await asio::this_coro::executor;
    co_return std::make_unique<PooledOpener>(pools_, ex, log);
  }

 private:
  std::shared_ptr<NodePools> pools_;
};

GOST_REGISTER(DialerRegistry, "http2",
              [](const DialerOptions& o) { return std::shared_ptr<Dialer>(new Http2Dialer(o)); });

}  // namespace
}  // namespace gost
