// The HTTP/3 request carrier of PHT (net/pht.hpp, docs/PROTOCOLS.md "pht: HTTP/3") over net/quic:
// the server side serves each HTTP/3 request stream as one PHT exchange; the client side sends each
// push and pull as its own request stream on a QUIC connection kept per worker and node (more
// connections are opened when one has no stream credit left: a pull holds its stream as long as the
// tunnel lives).
#pragma once

#include <memory>
#include <string>

#include "net/pht.hpp"
#include "net/quic.hpp"

namespace gost::net::pht {

// Serves one HTTP/3 request (its head is complete) with `server`.
awaitable<void> serve_h3(std::shared_ptr<quic::RequestStream> stream,
                         std::shared_ptr<PhtServer> server, log::Logger log);

struct H3ClientConfig {
  std::string node_addr;  // where the QUIC connection goes
  std::string authority;  // :authority (docs/PROTOCOLS.md "pht: client")
  quic::ClientTls tls;
  quic::Config quic;
};

std::shared_ptr<ClientCarrier> make_h3_client(H3ClientConfig cfg, log::Logger log);

}  // namespace gost::net::pht
