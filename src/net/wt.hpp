// WebTransport data channel (docs/PROTOCOLS.md "wt"), on the QUIC engine (net/quic): the server
// side answers the extended CONNECT of a session and hands its streams on, the client side keeps
// sessions per worker and node and opens one bidirectional stream per tunnel. Each tunnel is one
// WebTransport stream, as a Stream (raw bytes, FIN = half-close).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/stream.hpp"
#include "net/quic.hpp"

namespace gost::net::wt {

// A WebTransport stream as a Stream. Dropped before it ended both ways, it is reset.
StreamPtr make_stream(std::shared_ptr<quic::RequestStream> st);

// Server: refuses a stream it has no room for as GOST's listener does (webtransport-go's
// Stream.Close(): a FIN and no data), which our client retries. What the client already sent
// for it is read and dropped until it resets or ends the stream; after 64 KiB or 5 s without a
// byte the stream is reset.
void refuse(std::shared_ptr<quic::RequestStream> st);

// Serves one HTTP/3 request of the wt listener as GOST 3.2.6 does: an extended CONNECT
// (`:protocol` webtransport or webtransport-h3) on `path` is a session (200; each of its streams
// goes to `on_stream`, until the request stream ends); anything else on `path` gets 500; another
// path 404 "404 page not found".
using OnStream = std::function<void(std::shared_ptr<quic::RequestStream>)>;
awaitable<void> serve_request(std::shared_ptr<quic::RequestStream> req, std::string path,
                              OnStream on_stream, log::Logger log);

struct ClientConfig {
  std::string node_addr;  // where the QUIC connection goes
  std::string authority;  // :authority of the CONNECT
  std::string path = "/wt";
  quic::Headers headers;  // the `header` option
  quic::ClientTls tls;
  quic::Config quic;
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(10);  // the CONNECT's answer
};

// A dialer's sessions: one WebTransport session per QUIC connection, kept per worker (the
// session pool), another opened when one has no stream credit left.
class Client {
 public:
  Client(ClientConfig cfg, log::Logger log);
  ~Client();
  // A new tunnel: one stream of a session of the calling worker. Throws system_error.
  awaitable<StreamPtr> open();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace gost::net::wt
