// Listener "http2": the proxy mode of spec/http2.md §A.1. TLS with ALPN h2 (and http/1.1, as
// GOST offers it); every HTTP/2 request is handed to the handler as one Stream (a
// net::Http2Stream with its request head and no response yet: the `http2` handler answers it).
//
// As listener/h2: a pump owned by the listener accepts connections from the registry's tcp
// listener; each connection's TLS handshake and HTTP/2 session run in their own coroutine, whose
// requests are queued (bounded by `backlog`) for accept(). Everything stays on this worker.
#include "net/http2.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <list>

#include "core/component.hpp"
#include "core/timeout.hpp"
#include "net/tls.hpp"

namespace gost {
namespace {

using TimePoint = asio::steady_timer::time_point;

struct Http2ListenerState {
  explicit Http2ListenerState(asio::any_io_executor ex) : ready_changed(ex, TimePoint::max()) {}
  std::deque<StreamPtr> ready;
  std::size_t ready_limit = 128;
  std::list<std::weak_ptr<net::Http2Session>> sessions;
  asio::steady_timer ready_changed;  // condition: a request was queued, or closed
  bool closed = false;
  error_code accept_error;
};

struct Http2ListenerOptions {
  net::Http2Config http2;
  net::TlsContextPtr tls;
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(15);
  log::Logger log;
};

class Http2Listener final : public Listener {
 public:
  Http2Listener(asio::io_context& ctx, const ListenerOptions& o)
      : state_(std::make_shared<Http2ListenerState>(ctx.get_executor())) {
    const auto& md = o.config.metadata;
    opts_ = std::make_shared<Http2ListenerOptions>();
    opts_->http2 = net::http2_config(md, "listener http2");
    if (auto b = md.get_int("backlog").value_or(0); b > 0) {
      state_->ready_limit = static_cast<std::size_t>(b);
      opts_->http2.accept_backlog = static_cast<std::size_t>(b);
    }
    if (auto t = md.get_duration("handshakeTimeout").value_or(std::chrono::nanoseconds(0));
        t.count() > 0)
      opts_->handshake_timeout = t;
    opts_->log = o.log;
    opts_->tls = net::server_context(o.config.tls, {"h2", "http/1.1"});
    const auto* factory = ListenerRegistry::find("tcp");
    if (!factory) throw config::ConfigError("listener http2: no tcp listener registered");
    inner_ = std::shared_ptr<Listener>((*factory)(ctx, o));
  }

  awaitable<StreamPtr> accept(error_code& ec) override {
    if (!pumping_) {
      pumping_ = true;
      asio::co_spawn(state_->ready_changed.get_executor(), pump(inner_, state_, opts_),
                     asio::detached);
    }
    auto st = state_;
    while (st->ready.empty() && !st->closed && !st->accept_error)
      co_await st->ready_changed.async_wait(use_nothrow);
    if (!st->ready.empty()) {
      ec = {};
      auto s = std::move(st->ready.front());
      st->ready.pop_front();
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
  }
  std::string bound_address() const override { return inner_->bound_address(); }
  std::string network() const override { return inner_->network(); }

 private:
  static awaitable<void> pump(std::shared_ptr<Listener> inner,
                              std::shared_ptr<Http2ListenerState> st,
                              std::shared_ptr<const Http2ListenerOptions> opts) {
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
        opts->log.warn(fmt::format("accept: {}, retrying in {}s", ec.message(), backoff.count()));
        asio::steady_timer t(ex, backoff);
        co_await t.async_wait(use_nothrow);
        backoff = std::min(backoff * 2, std::chrono::seconds(5));
        continue;
      }
      backoff = std::chrono::seconds(1);
      asio::co_spawn(ex, session(st, std::move(conn), opts), asio::detached);
    }
  }

  static awaitable<void> session(std::shared_ptr<Http2ListenerState> st, StreamPtr conn,
                                 std::shared_ptr<const Http2ListenerOptions> opts) {
    std::string remote = conn->remote_address();
    try {
      Stream& raw = *conn;
      Deadline deadline(raw.executor(), opts->handshake_timeout, [&raw] { raw.close(); });
      conn = co_await net::tls_accept(std::move(conn), opts->tls);
    } catch (const std::exception& e) {
      opts->log.debug(fmt::format("{}: tls handshake: {}", remote, error_text(e)));
      co_return;
    }
    // GOST also serves HTTP/1.1 requests here (§A.2 item 10); we serve HTTP/2 only.
    if (auto alpn = net::negotiated_alpn(*conn); alpn != "h2") {
      opts->log.debug(fmt::format("{}: ALPN \"{}\": only h2 is served on http2", remote, alpn));
      co_return;
    }
    auto session = net::Http2Session::server(std::move(conn), opts->http2);
    st->sessions.remove_if([](const auto& w) { return w.expired(); });
    st->sessions.push_back(session);
    for (;;) {
      error_code ec;
      auto s = co_await session->accept_stream(ec);
      if (!s || st->closed) break;
      if (st->ready.size() >= st->ready_limit) {
        // §A.1: a request beyond the backlog is answered with an empty 200; no handler runs.
        s->respond(200, {{"content-length", "0"}, {"date", net::h2_date()}}, true);
        continue;
      }
      st->ready.push_back(std::move(s));
      st->ready_changed.cancel();
    }
    session->shutdown();
    opts->log.debug(fmt::format("{}: http2 session ended", remote));
  }

  std::shared_ptr<Http2ListenerState> state_;
  std::shared_ptr<Http2ListenerOptions> opts_;
  std::shared_ptr<Listener> inner_;
  bool pumping_ = false;
};

GOST_REGISTER(ListenerRegistry, "http2", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new Http2Listener(ctx, o));
});

}  // namespace
}  // namespace gost
