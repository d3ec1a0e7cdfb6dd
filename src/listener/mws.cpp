// Listeners "mws" and "mwss" (spec/ws.md §7): the WebSocket of the ws/wss listener carries an smux
// v1 session (net/mux) whose client opens one stream per tunnel. accept() yields those streams.
//
// Connections are accepted and upgraded by a pump owned by the listener: each connection's TLS
// and WebSocket handshakes, then its session's stream accepts, run in their own coroutine, so a
// slow client never holds up another. Everything stays on this listener's worker.
#include <fmt/format.h>

#include <deque>
#include <list>

#include "core/component.hpp"
#include "core/timeout.hpp"
#include "net/mux.hpp"
#include "net/ws.hpp"

namespace gost {
namespace {

using TimePoint = asio::steady_timer::time_point;

// Streams accepted from every session, waiting for accept(). A session stops taking streams from
// its peer while this is full (the peer's SYNs then wait in the session's own bounded backlog).
constexpr std::size_t kReadyLimit = 256;

struct MwsState {
  explicit MwsState(asio::any_io_executor ex)
      : ready_changed(ex, TimePoint::max()), room(ex, TimePoint::max()) {}
  std::deque<StreamPtr> ready;
  std::list<std::weak_ptr<net::MuxSession>> sessions;
  asio::steady_timer ready_changed;  // condition: a stream was queued, or closed
  asio::steady_timer room;           // condition: accept() took a stream
  bool closed = false;
  error_code accept_error;  // the inner listener failed: reported by accept()
};

class MwsListener final : public Listener {
 public:
  MwsListener(asio::io_context& ctx, const ListenerOptions& o, bool tls)
      : where_(tls ? "listener mwss" : "listener mws"),
        ws_(net::ws_server_config(o.config.metadata, where_)),
        mux_(net::mux_config(o.config.metadata, where_)),
        state_(std::make_shared<MwsState>(ctx.get_executor())),
        log_(o.log) {
    const auto* factory = ListenerRegistry::find(tls ? "tls" : "tcp");
    if (!factory) throw config::ConfigError(where_ + ": no tcp/tls listener registered");
    inner_ = std::shared_ptr<Listener>((*factory)(ctx, o));
  }

  awaitable<StreamPtr> accept(error_code& ec) override {
    if (!pumping_) {
      pumping_ = true;
      asio::co_spawn(state_->ready_changed.get_executor(), pump(inner_, state_, ws_, mux_, log_),
                     asio::detached);
    }
    auto st = state_;
    while (st->ready.empty() && !st->closed && !st->accept_error)
      co_await st->ready_changed.async_wait(use_nothrow);
    if (!st->ready.empty()) {
      ec = {};
      auto s = std::move(st->ready.front());
      st->ready.pop_front();
      st->room.cancel();
      co_return s;
    }
    ec = st->closed ? asio::error::operation_aborted : st->accept_error;
    co_return nullptr;
  }

  void close() override {
    state_->closed = true;
    inner_->close();
    for (auto& w : state_->sessions)
      if (auto s = w.lock()) s->close();
    state_->ready.clear();
    state_->ready_changed.cancel();
    state_->room.cancel();
  }
  std::string bound_address() const override { return inner_->bound_address(); }
  std::string network() const override { return inner_->network(); }

 private:
  static awaitable<void> pump(std::shared_ptr<Listener> inner, std::shared_ptr<MwsState> st,
                              net::WsServerConfig ws, net::MuxConfig mux, log::Logger log) {
    auto ex = co_await asio::this_coro::executor;
    auto backoff = std::chrono::seconds(1);
    while (!st->closed) {
      error_code ec;
      auto conn = co_await inner->accept(ec);
      if (st->closed) break;
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) {
        st->accept_error = ec;
        st->ready_changed.cancel();
        break;
      }
      if (ec) {  // temporary (e.g. out of descriptors): as the service accept loop does
        log.warn(fmt::format("accept: {}, retrying in {}s", ec.message(), backoff.count()));
        asio::steady_timer t(ex, backoff);
        co_await t.async_wait(use_nothrow);
        backoff = std::min(backoff * 2, std::chrono::seconds(5));
        continue;
      }
      backoff = std::chrono::seconds(1);
      asio::co_spawn(ex, session(inner, st, std::move(conn), ws, mux, log), asio::detached);
    }
  }

  static awaitable<void> session(std::shared_ptr<Listener> inner, std::shared_ptr<MwsState> st,
                                 StreamPtr conn, net::WsServerConfig ws, net::MuxConfig mux,
                                 log::Logger log) {
    std::string remote = conn->remote_address();
    std::shared_ptr<net::MuxSession> session;
    try {
      conn = co_await inner->handshake(std::move(conn));
      conn = co_await net::ws_accept(std::move(conn), ws);
      session = net::MuxSession::server(std::move(conn), mux);
    } catch (const std::exception& e) {
      log.debug(fmt::format("{}: mws handshake: {}", remote, error_text(e)));
      co_return;
    }
    st->sessions.remove_if([](const auto& w) { return w.expired(); });
    st->sessions.push_back(session);
    for (;;) {
      while (st->ready.size() >= kReadyLimit && !st->closed && !session->closed())
        co_await st->room.async_wait(use_nothrow);
      if (st->closed) break;
      error_code ec;
      auto s = co_await session->accept_stream(ec);
      if (!s || st->closed) break;
      st->ready.push_back(std::move(s));
      st->ready_changed.cancel();
    }
    log.debug(fmt::format("{}: mws session ended", remote));
  }

  std::string where_;
  net::WsServerConfig ws_;
  net::MuxConfig mux_;
  std::shared_ptr<MwsState> state_;
  std::shared_ptr<Listener> inner_;
  log::Logger log_;
  bool pumping_ = false;
};

GOST_REGISTER(ListenerRegistry, "mws", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new MwsListener(ctx, o, false));
});
GOST_REGISTER(ListenerRegistry, "mwss", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new MwsListener(ctx, o, true));
});

}  // namespace
}  // namespace gost
