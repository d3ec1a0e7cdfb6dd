// The HTTP/1.1 request carrier of PHT (net/pht.hpp) over our Streams: the server side serves
// keep-alive connections (plain or TLS) request by request; the client side keeps a small pool of
// idle connections per worker and node.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "net/pht.hpp"
#include "net/tls.hpp"
#include "proto/http.hpp"

namespace gost::net::pht {

// Serves HTTP/1.x requests on one accepted connection until it ends. Limits: request head 30 s
// (GOST's ReadHeaderTimeout) and 64 KiB; an idle keep-alive connection is closed after 120 s
// (GOST: never); a reply write or a body read that makes no progress for 30 s ends the
// connection; a connection that carried a pull is closed when the pull ends.
awaitable<void> serve_http1(StreamPtr conn, std::shared_ptr<PhtServer> server, log::Logger log);

struct Http1ClientConfig {
  std::string node_addr;                     // where connections go
  std::string authority;                     // the Host header (docs/PROTOCOLS.md "pht: client")
  TlsContextPtr tls;                         // set: phts
  std::vector<proto::http::Header> headers;  // the `header` option
  // Idle connections kept per worker for the next request (Go keeps 2 per host, 100 overall;
  // a quarter of the PushQueue's bound, so that pushes rarely need a new connection).
  std::size_t max_idle = 64;
  std::chrono::nanoseconds idle_timeout = std::chrono::seconds(90);  // Go's IdleConnTimeout
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(15);
};

std::shared_ptr<ClientCarrier> make_http1_client(Http1ClientConfig cfg);

}  // namespace gost::net::pht
