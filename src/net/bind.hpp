// The client side of a BIND (reverse forwarding, docs/PROTOCOLS.md "rtcp and rudp"): what a
// connector returns once the node listens. TCP: the node opens a mux stream per inbound
// connection, each starting with a header naming the peer (a relay response or a SOCKS5 reply);
// UDP: UDP-TUN frames on one stream, demultiplexed here into one flow per peer address.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/component.hpp"
#include "core/refusals.hpp"
#include "net/mux.hpp"
#include "net/udp.hpp"

namespace gost::net {

// Reads the header an inbound stream starts with and returns the peer's "host:port" (ec set and
// the stream dropped on failure).
using PeerHeaderReader = std::function<awaitable<std::string>(Stream&, error_code&)>;

// The longest a stream's header may take to arrive before the stream is dropped.
inline constexpr std::chrono::seconds kPeerHeaderTimeout{10};

// The streams `session` (its server side: the node opens them) accepts, each read past its header
// by `read_header`; each yielded stream reports the peer as remote_address() and `bound` as
// local_address().
std::unique_ptr<Binding> mux_binding(std::shared_ptr<MuxSession> session, std::string bound,
                                     PeerHeaderReader read_header, log::Logger log);

// One flow per peer over the UDP-TUN stream `tun` (each frame names the peer). A flow is a Stream
// and a PacketConn: a read returns one datagram from its peer (truncated to the buffer), a write
// sends one to it. A flow idle for `ttl` ends (EOF); at most `queue_size` datagrams wait per flow
// and `backlog` new flows wait for accept(): beyond that, datagrams are dropped (UDP).
std::unique_ptr<Binding> udp_binding(std::unique_ptr<UdpTunStream> tun, std::string bound,
                                     const BindOptions& options, log::Logger log);

// The options of a listener's peer flows (rudp, udp), GOST's keys: `ttl`, `readBufferSize`
// (≤ 65,535), `readQueueSize`, `backlog` (≤ 65,536); a missing or ≤ 0 value keeps `o`'s.
void read_udp_flow_options(const config::Metadata& md, BindOptions& o);

// The same over any datagram source: `conn` carries every peer's datagrams (listener udp: a UDP
// socket, each flow a peer of it), read and written on `ex`; the datagrams of new peers dropped
// for a full backlog are counted and warned about by `refusals`.
std::unique_ptr<Binding> udp_flows(std::unique_ptr<PacketConn> conn, asio::any_io_executor ex,
                                   std::string bound, const BindOptions& options, log::Logger log,
                                   std::shared_ptr<Refusals> refusals);

}  // namespace gost::net
