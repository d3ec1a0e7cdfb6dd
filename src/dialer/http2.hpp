// What dialer `http2` gives connector `http2` (docs/PROTOCOLS.md "http2: client"): not a byte
// stream but a hold on the node's HTTP/2 sessions, on which the connector opens its CONNECT stream.
// GOST's pair works the same way (the dialer's "connection" is an HTTP client); no other connector
// can use it.
#pragma once

#include "core/stream.hpp"
#include "net/http2.hpp"

namespace gost {

class Http2ProxyOpener : public NoByteStream {
 public:
  // Opens a stream with `request` on a session of the node (pooled per worker for the first node
  // of a route) and returns it with its response head, whatever the status. Throws on failure.
  virtual awaitable<net::Http2StreamPtr> open(const net::H2Headers& request) = 0;
  // Not a byte stream: bytes go through the stream open() returns.
};

}  // namespace gost
