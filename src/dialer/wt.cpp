// Dialer "wt": the WebTransport data channel (docs/PROTOCOLS.md "wt"): a tunnel is one
// bidirectional stream of a WebTransport session, sessions pooled per worker and node
// (net/wt). Only as the first node of a chain: QUIC runs over UDP to the node, not over a
// previous node's stream.
#include "net/wt.hpp"

#include <fmt/format.h>

#include "core/address.hpp"
#include "core/component.hpp"

namespace gost {
namespace {

class WtDialer final : public Dialer {
 public:
  explicit WtDialer(const DialerOptions& o) {
    const auto& md = o.config.metadata;
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
    cfg.headers = net::h2_header_map(md, where_, "wt.header");
    if (cfg.headers.empty()) cfg.headers = net::h2_header_map(md, where_);
    // SNI: serverName, else the node host, else the authority's host (as the h3 dialer).
    auto hp = split_host_port(o.node_addr);
    cfg.tls = net::quic::client_tls(o.config.tls, hp && !hp->host.empty() ? o.node_addr : host);
    cfg.quic = net::quic::config_from(md, true, where_);
    client_ = std::make_shared<net::wt::Client>(std::move(cfg), log::root().with("dialer", where_));
  }

  awaitable<StreamPtr> dial(std::string_view, const log::Logger&) override {
    co_return co_await client_->open();
  }
  awaitable<StreamPtr> handshake(StreamPtr s, std::string_view) override {
    if (net::wt::is_stream(*s)) co_return s;  // made by our dial()
    throw system_error(asio::error::operation_not_supported,
                       fmt::format("{}: only the first node of a chain can use it (QUIC runs "
                                   "over UDP to its node)",
                                   where_));
  }

 private:
  std::string where_ = "dialer wt";
  std::shared_ptr<net::wt::Client> client_;
};

GOST_REGISTER(DialerRegistry, "wt",
              [](const DialerOptions& o) { return std::shared_ptr<Dialer>(new WtDialer(o)); });

}  // namespace
}  // namespace gost
