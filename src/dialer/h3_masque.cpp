// Dialer "h3-masque": the QUIC connections of MASQUE's client (docs/PROTOCOLS.md "masque"). It
// gives connector masque a net::masque::Opener, on which the connector opens one CONNECT (TCP) or
// CONNECT-UDP (UDP) request stream per tunnel; the connections are pooled per worker and node.
// Only as the first node of a chain: QUIC runs over UDP to the node, not over a previous node's
// stream.
#include <fmt/format.h>

#include "core/address.hpp"
#include "core/component.hpp"
#include "net/masque.hpp"

namespace gost {
namespace {

class MasqueDialer final : public Dialer {
 public:
  explicit MasqueDialer(const DialerOptions& o) : addr_(o.node_addr) {
    const auto& md = o.config.metadata;
    net::masque::ClientConfig cfg;
    cfg.node_addr = o.node_addr;
    // GOST (dialer/http3/masque): `host`, else the node address, without its port: the
    // :authority of a CONNECT-UDP and the TLS server name.
    std::string host = md.get_string("host").value_or("");
    if (host.empty()) host = o.node_addr;
    if (auto hp = split_host_port(host); hp && !hp->host.empty()) host = hp->host;
    cfg.authority = host;
    auto hp = split_host_port(o.node_addr);
    cfg.tls = net::quic::client_tls(o.config.tls, hp && !hp->host.empty() ? o.node_addr : host);
    // GOST's masque dialer keeps connections alive only with keepAlive=true (the h3 dialer's
    // default is on): the listener-side default.
    cfg.quic = net::quic::config_from(md, false, where_);
    cfg.quic.datagrams = true;
    client_ =
        std::make_shared<net::masque::Client>(std::move(cfg), log::root().with("dialer", where_));
  }

  awaitable<StreamPtr> dial(std::string_view, const log::Logger&) override {
    co_return std::make_unique<net::masque::Opener>(client_, co_await asio::this_coro::executor,
                                                    addr_);
  }
  awaitable<StreamPtr> handshake(StreamPtr s, std::string_view) override {
    if (dynamic_cast<net::masque::Opener*>(s.get())) co_return s;  // made by our dial()
    throw system_error(asio::error::operation_not_supported,
                       fmt::format("{}: only the first node of a chain can use it (QUIC runs "
                                   "over UDP to its node)",
                                   where_));
  }

 private:
  std::string where_ = "dialer h3-masque";
  std::string addr_;
  std::shared_ptr<net::masque::Client> client_;
};

GOST_REGISTER(DialerRegistry, "h3-masque",
              [](const DialerOptions& o) { return std::shared_ptr<Dialer>(new MasqueDialer(o)); });

}  // namespace
}  // namespace gost
