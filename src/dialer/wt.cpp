// Dialer "wt": the WebTransport data channel (docs/PROTOCOLS.md "wt"): a tunnel is one
// bidirectional stream of a WebTransport session, sessions pooled per worker and node
// (net/wt). Only as the first node of a chain: QUIC runs over UDP to the node, not over a
// previous node's stream.
//
// A stream the server refuses (GOST's listener ends it at once, a FIN and no data, when its
// connection queue is full; ours does the same) is opened again and what the tunnel wrote is sent
// again (net/refused_retry, docs/PROTOCOLS.md "wt: refused streams"), each refusal counted and
// logged (core/refusals).
#include "net/wt.hpp"

#include <fmt/format.h>

#include "core/address.hpp"
#include "core/component.hpp"
#include "core/refusals.hpp"
#include "net/refused_retry.hpp"

namespace gost {
namespace {

// What the dialer and its tunnels share (a tunnel's retry outlives a reload's dialer).
struct WtState {
  std::string where = "dialer wt";
  std::string addr;
  std::shared_ptr<net::wt::Client> client;
  RefusalsPtr refusals;
};

class WtTunnel final : public net::RefusedRetryStream {
 public:
  WtTunnel(StreamPtr first, std::shared_ptr<WtState> state)
      : RefusedRetryStream(std::move(first), {}), state_(std::move(state)) {}

 protected:
  awaitable<StreamPtr> reopen() override {
    auto client = state_->client;
    co_return co_await client->open();
  }
  void refused(std::string_view why) override { state_->refusals->add(why); }
  std::string server() const override { return fmt::format("{} {}", state_->where, state_->addr); }

 private:
  std::shared_ptr<WtState> state_;
};

class WtDialer final : public Dialer {
 public:
  explicit WtDialer(const DialerOptions& o) : state_(std::make_shared<WtState>()) {
    const auto& md = o.config.metadata;
    const auto& where = state_->where;
    net::wt::ClientConfig cfg;
    cfg.node_addr = o.node_addr;
    // GOST (dialer/http3/wt): `host` (else the node address), without its port, is the
    // :authority; `path` defaults to /wt; `header` is added to the CONNECT.
    std::string host = md.get_string("wt.host").value_or("");
    if (host.empty()) host = md.get_string("host").value_or("");
    if (host.empty()) host = o.node_addr;
    if (auto hp = split_host_port(host); hp && !hp->host.empty()) host = hp->host;
    cfg.authority = host;
    cfg.path = md.get_string("wt.path").value_or("");
    if (cfg.path.empty()) cfg.path = md.get_string("path").value_or("");
    if (cfg.path.empty()) cfg.path = "/wt";
    cfg.headers = net::h2_header_map(md, where, "wt.header");
    if (cfg.headers.empty()) cfg.headers = net::h2_header_map(md, where);
    // SNI: serverName, else the node host, else the authority's host (as the h3 dialer).
    auto hp = split_host_port(o.node_addr);
    cfg.tls = net::quic::client_tls(o.config.tls, hp && !hp->host.empty() ? o.node_addr : host);
    cfg.quic = net::quic::config_from(md, true, where);
    state_->addr = o.node_addr;
    state_->client =
        std::make_shared<net::wt::Client>(std::move(cfg), log::root().with("dialer", where));
    state_->refusals = Refusals::of_node(log::Logger(), o.chain, o.node, where, o.node_addr);
  }

  awaitable<StreamPtr> dial(std::string_view, const log::Logger&) override {
    auto state = state_;
    auto first = co_await state->client->open();
    co_return std::make_unique<WtTunnel>(std::move(first), std::move(state));
  }
  awaitable<StreamPtr> handshake(StreamPtr s, std::string_view) override {
    if (dynamic_cast<WtTunnel*>(s.get())) co_return s;  // made by our dial()
    throw system_error(asio::error::operation_not_supported,
                       fmt::format("{}: only the first node of a chain can use it (QUIC runs "
                                   "over UDP to its node)",
                                   state_->where));
  }

 private:
  std::shared_ptr<WtState> state_;
};

GOST_REGISTER(DialerRegistry, "wt",
              [](const DialerOptions& o) { return std::shared_ptr<Dialer>(new WtDialer(o)); });

}  // namespace
}  // namespace gost
