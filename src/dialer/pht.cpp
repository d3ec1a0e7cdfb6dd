// Dialers "pht" and "phts" (docs/PROTOCOLS.md "pht: client"): a tunnel made of HTTP/1.1 requests to
// the node, over TCP (TLS for phts). Only as the first node of a chain: a session needs several
// HTTP connections at once (the pull occupies one, pushes take others), while a later node is
// reached through a single stream.

#include <fmt/format.h>

#include "core/address.hpp"
#include "core/component.hpp"
#include "dialer/pht_client.hpp"
#include "net/pht_http1.hpp"
#include "net/tls.hpp"

namespace gost {
namespace {

class PhtDialer final : public PhtClientDialer {
 public:
  PhtDialer(const DialerOptions& o, bool tls)
      : PhtClientDialer(tls ? "dialer phts" : "dialer pht",
                        "a PHT session needs several HTTP connections to its node") {
    const auto& md = o.config.metadata;
    opts_ = net::pht::client_options(md);

    net::pht::Http1ClientConfig cfg;
    cfg.node_addr = o.node_addr;
    auto hp = split_host_port(o.node_addr).value_or(HostPort{});
    cfg.authority = net::pht::client_authority(md, o.node_addr);
    if (const auto* h = md.find("header")) {
      if (!h->is_map())
        throw config::ConfigError(fmt::format("{}: \"header\" must be a map", where_));
      for (const auto& [k, v] : std::get<config::ValueMap>(h->v))
        cfg.headers.push_back({k, v.as_string()});
    }
    if (tls) {
      // SNI: the node's serverName, which defaults to the node host; with neither, the host of
      // the authority (docs/PROTOCOLS.md "pht: client"). We speak HTTP/1.1 only, so that is all
      // ALPN offers.
      std::string sni_source = hp.host.empty() ? cfg.authority : o.node_addr;
      cfg.tls = net::client_context(o.config.tls, sni_source, {"http/1.1"});
    }
    carrier_ = net::pht::make_http1_client(std::move(cfg));
  }
};

GOST_REGISTER(DialerRegistry, "pht", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new PhtDialer(o, false));
});
GOST_REGISTER(DialerRegistry, "phts", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new PhtDialer(o, true));
});

}  // namespace
}  // namespace gost
