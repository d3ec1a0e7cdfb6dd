// Relaying datagrams for proxy handlers (SOCKS5 UDP ASSOCIATE / UDP-TUN, UDP over HTTP): where
// they go (a local UDP socket, or the datagram view of a chain stream) and the two-way pump.
#pragma once

#include <memory>
#include <string_view>

#include "core/component.hpp"
#include "net/udp.hpp"

namespace gost {
class Router;
}

namespace gost::net {

// The upstream of a UDP relay: a local socket, or the datagram view of a chain stream.
struct UdpUpstream {
  StreamPtr stream;
  std::unique_ptr<UdpSocketConn> socket;
  PacketConn* conn = nullptr;
};

// Through the router's chain when it has one (the last node's connector must carry datagrams,
// e.g. socks5), otherwise an unconnected local UDP socket. Throws system_error.
awaitable<UdpUpstream> open_udp_upstream(Router& router, ConnInfo& conn);

// A UDP "connection" to `addr` as GOST's handlers dial one: through the router's chain its last
// node's UDP CONNECT, directly a connected UDP socket (net::dial_udp). A Stream of whole datagrams
// that is also a PacketConn (dynamic_cast). Throws system_error.
awaitable<StreamPtr> dial_udp_target(Router& router, const std::string& addr, ConnInfo& conn);

struct DatagramRelayOptions {
  std::size_t buffer_size = 4096;  // udpBufferSize
  bool resolve_domain = false;     // udp.resolveDomain: report sources as IPs
  std::string_view tag = "udp";    // log prefix
  // The service's router: a datagram to a target its bypass covers is dropped (go-gost/x
  // internal/net/udp relay: "bypass: <addr>").
  const Router* router = nullptr;
};

// Moves datagrams both ways until one side fails; `control` (if any) is drained meanwhile and its
// end ends the relay too. Counts bytes into `conn`.
awaitable<void> relay_datagrams(PacketConn& client, PacketConn& upstream, Stream* control,
                                ConnInfo& conn, DatagramRelayOptions o);

}  // namespace gost::net
