// MASQUE over HTTP/3 (docs/PROTOCOLS.md "masque"), on the QUIC engine (net/quic): a TCP tunnel is
// one request stream of a CONNECT (its body both ways), a UDP flow one request stream of a
// CONNECT-UDP whose datagrams travel as HTTP/3 datagrams (QUIC DATAGRAM frames), or as DATAGRAM
// capsules on the stream where those cannot go. The server side is listener http3 + handler
// masque (the request comes as the accepted Stream: quic::request_of), the client side dialer
// h3-masque (sessions pooled per worker and node) + connector masque.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "core/stream.hpp"
#include "net/quic.hpp"

namespace gost::net::masque {

// A CONNECT-UDP flow on request stream `st` (either side, once its exchange succeeded), as a
// Stream of whole datagrams and a PacketConn whose reads report `peer` and whose writes go to the
// flow whatever address they name. Reads take QUIC datagrams and DATAGRAM capsules alike (other
// context IDs and capsule types are dropped); writes go as QUIC datagrams, as capsules when
// the peer takes none or the datagram does not fit a packet. A stream that breaks the capsule
// protocol ends the flow. Dropped before it ended, the stream is reset.
StreamPtr datagram_flow(std::shared_ptr<quic::RequestStream> st, std::string peer);

// ---- client -----------------------------------------------------------------------------------

struct ClientConfig {
  std::string node_addr;  // where the QUIC connection goes
  std::string authority;  // :authority of a CONNECT-UDP (the node's host)
  quic::ClientTls tls;
  quic::Config quic;
};

// A dialer's QUIC connections to one node, pooled per worker (another one opens when one has no
// stream credit left; spare ones close after a few idle seconds).
class Client {
 public:
  Client(ClientConfig cfg, log::Logger log);
  ~Client();
  // A request stream with `head` (its body follows) on a connection of the calling worker.
  // Throws system_error.
  awaitable<std::shared_ptr<quic::RequestStream>> open(const quic::Headers& head);
  const std::string& authority() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// What dialer h3-masque gives connector masque: not a byte stream but a hold on the node's
// connections, on which the connector opens its CONNECT streams (as dialer http2 does).
class Opener final : public NoByteStream {
 public:
  Opener(std::shared_ptr<Client> client, asio::any_io_executor ex, std::string node)
      : client_(std::move(client)), ex_(std::move(ex)), node_(std::move(node)) {}
  Client& client() { return *client_; }
  std::shared_ptr<Client> shared_client() const { return client_; }

  asio::any_io_executor executor() override { return ex_; }
  void close() override {}
  std::string remote_address() const override { return node_; }
  std::string local_address() const override { return {}; }

 private:
  std::shared_ptr<Client> client_;
  asio::any_io_executor ex_;
  std::string node_;
};

// A UDP association through a MASQUE proxy (connector masque asked for "udp" without a target:
// SOCKS5 UDP ASSOCIATE through the chain): a PacketConn with one CONNECT-UDP flow per target,
// opened by `open` on the first datagram to it and closed after `idle` without a datagram
// either way. A target whose flow cannot be opened loses that datagram (logged), not the
// association. As a Stream it carries nothing (operation_not_supported).
using OpenFlow = std::function<awaitable<StreamPtr>(std::string target)>;
StreamPtr udp_association(asio::any_io_executor ex, OpenFlow open, std::chrono::nanoseconds idle,
                          log::Logger log);

}  // namespace gost::net::masque
