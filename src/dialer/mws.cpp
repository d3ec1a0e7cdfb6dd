// Dialers "mws" and "mwss" (docs/PROTOCOLS.md "ws: mws and mwss"): the ws/wss upgrade, then an smux
// v1 client session (net/mux) on the WebSocket; every tunnel is one stream. As the first node of a
// route the sessions are pooled — per worker, so that a session and all its streams live on one
// thread (docs/ARCHITECTURE.md "Concurrency") — and reused until they end; a dead session is
// dropped and the next tunnel dials a new one. Reached through a previous node (handshake() over
// its stream), a session carries that one tunnel and ends with it.
//
// A stream the server refuses (GOST's listener closes it at once when its queue is full) is
// opened again and what the tunnel wrote is sent again (net/refused_retry, docs/PROTOCOLS.md
// "smux: refused streams"): on the pooled session while it lives, else on a new one; on the
// tunnel's own session for a later node. Every refusal is counted and logged (core/refusals).
#include <fmt/format.h>

#include "chain/chain.hpp"
#include "core/address.hpp"
#include "core/component.hpp"
#include "core/refusals.hpp"
#include "core/timeout.hpp"
#include "net/mux.hpp"
#include "net/refused_retry.hpp"
#include "net/session_pool.hpp"
#include "net/tls.hpp"
#include "net/ws.hpp"

namespace gost {
namespace {

// What the dialer and its tunnels share; tunnels keep it (their retries use the pool) after a
// reload has dropped the dialer.
struct MwsState {
  std::string where;
  net::WsClientConfig ws;
  net::MuxConfig mux;
  net::TlsContextPtr tls;
  net::SessionPool<net::MuxSession> pool;
  RefusalsPtr refusals;

  awaitable<StreamPtr> dial(std::string_view addr) {
    auto s = co_await dial_tcp(addr);
    net::apply_tcp_keepalive(*s, ws.tcp_keepalive);
    co_return s;
  }

  awaitable<std::shared_ptr<net::MuxSession>> open_session(StreamPtr s, std::string_view addr) {
    s = co_await net::ws_client_handshake(std::move(s), ws, tls, addr);
    co_return net::MuxSession::client(std::move(s), mux);
  }

  // A stream of a pooled session (a new session when the pooled one has ended).
  awaitable<StreamPtr> open_pooled(std::string_view addr, const log::Logger& log) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto session = co_await pool.get(
          [](const net::MuxSession& s) { return s.closed(); },
          [](const net::MuxSession&) { return true; },  // smux v1 has no stream limit
          [&]() -> awaitable<std::shared_ptr<net::MuxSession>> {
            auto conn = co_await dial(addr);
            co_return co_await open_session(std::move(conn), addr);
          });
      error_code ec;
      auto stream = co_await session->open_stream(ec);
      if (stream) co_return stream;
      session->close();  // dead: the next attempt dials a new one
      log.debug(
          fmt::format("{}: session to {} ended ({}), reconnecting", where, addr, ec.message()));
    }
    throw system_error(asio::error::connection_reset, where + ": no session");
  }
};

// A tunnel's stream, opened again when the server refuses it. `session` set: a later node's own
// session (the stream is reopened there only); else a pooled one.
class MwsTunnel final : public net::RefusedRetryStream {
 public:
  MwsTunnel(StreamPtr first, std::shared_ptr<MwsState> state, std::string addr,
            std::shared_ptr<net::MuxSession> session)
      : RefusedRetryStream(std::move(first), {}),
        state_(std::move(state)),
        addr_(std::move(addr)),
        session_(std::move(session)) {}

 protected:
  awaitable<StreamPtr> reopen() override {
    if (!session_) {
      const log::Logger root;  // a local: no temporary inside co_await (GCC 12)
      co_return co_await state_->open_pooled(addr_, root);
    }
    error_code ec;
    auto s = co_await session_->open_stream(ec);
    if (!s) throw system_error(ec, state_->where + ": open stream");
    co_return s;
  }
  void refused(std::string_view why) override { state_->refusals->add(why); }
  std::string server() const override { return fmt::format("{} {}", state_->where, addr_); }

 private:
  std::shared_ptr<MwsState> state_;
  std::string addr_;
  std::shared_ptr<net::MuxSession> session_;
};

class MwsDialer final : public Dialer {
 public:
  MwsDialer(const DialerOptions& o, bool tls) : state_(std::make_shared<MwsState>()) {
    auto& st = *state_;
    st.where = tls ? "dialer mwss" : "dialer mws";
    st.ws = net::ws_client_config(o.config.metadata, st.where);
    st.mux = net::mux_config(o.config.metadata, st.where);
    if (tls) st.tls = net::wss_client_context(o.config.tls, o.node_addr, st.ws);
    st.refusals = Refusals::of_node(log::Logger(), o.chain, o.node, st.where, o.node_addr);
  }

  awaitable<StreamPtr> dial(std::string_view addr, const log::Logger&) override {
    return state_->dial(addr);
  }

  // Over an existing stream (a later node of a route): a session for this one tunnel.
  awaitable<StreamPtr> handshake(StreamPtr s, std::string_view addr) override {
    auto session = co_await state_->open_session(std::move(s), addr);
    session->close_when_idle();
    error_code ec;
    auto stream = co_await session->open_stream(ec);
    if (!stream) throw system_error(ec, "mws: open stream");
    co_return std::make_unique<MwsTunnel>(std::move(stream), state_, std::string(addr),
                                          std::move(session));
  }

  awaitable<StreamPtr> connect(std::string_view addr, const log::Logger& log) override {
    auto stream = co_await state_->open_pooled(addr, log);
    co_return std::make_unique<MwsTunnel>(std::move(stream), state_, std::string(addr), nullptr);
  }

 private:
  std::shared_ptr<MwsState> state_;
};

GOST_REGISTER(DialerRegistry, "mws", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new MwsDialer(o, false));
});
GOST_REGISTER(DialerRegistry, "mwss", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new MwsDialer(o, true));
});

}  // namespace
}  // namespace gost
