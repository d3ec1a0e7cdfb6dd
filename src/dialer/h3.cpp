// Dialers "http3" and "h3": PHT over HTTP/3 (docs/PROTOCOLS.md "pht: HTTP/3"): the tunnel's pushes
// and pulls are HTTP/3 requests on QUIC connections pooled per worker and node (net/pht_h3). Only
// as the first node of a chain: QUIC runs over UDP to the node, not over a previous node's stream.

#include <fmt/format.h>

#include "core/address.hpp"
#include "core/component.hpp"
#include "dialer/pht_client.hpp"
#include "net/pht_h3.hpp"

namespace gost {
namespace {

class H3Dialer final : public PhtClientDialer {
 public:
  H3Dialer(const DialerOptions& o, std::string where)
      : PhtClientDialer(std::move(where), "QUIC runs over UDP to its node") {
    const auto& md = o.config.metadata;
    // GOST's HTTP/3 dialer has no `header` option (docs/PROTOCOLS.md "pht: HTTP/3"): refuse it
    // rather than ignore.
    reject_unsupported(md, {"header"}, where_);
    opts_ = net::pht::client_options(md);
    net::pht::H3ClientConfig cfg;
    cfg.node_addr = o.node_addr;
    cfg.authority = net::pht::client_authority(md, o.node_addr);
    // SNI: the node's serverName, which defaults to the node host; with neither, the host of the
    // authority (docs/PROTOCOLS.md "pht: HTTP/3").
    auto hp = split_host_port(o.node_addr);
    std::string sni_source = hp && !hp->host.empty() ? o.node_addr : cfg.authority;
    cfg.tls = net::quic::client_tls(o.config.tls, sni_source);
    cfg.quic = net::quic::config_from(md, true, where_);
    carrier_ = net::pht::make_h3_client(std::move(cfg), log::root().with("dialer", where_));
  }
};

GOST_REGISTER(DialerRegistry, "http3", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new H3Dialer(o, "dialer http3"));
});
GOST_REGISTER(DialerRegistry, "h3", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new H3Dialer(o, "dialer h3"));
});

}  // namespace
}  // namespace gost
