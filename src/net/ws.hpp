// WebSocket (RFC 6455) as a Stream over any Stream (TCP for ws, TLS for wss), with the handshakes
// of docs/PROTOCOLS.md "ws". The tunnelled bytes travel in binary messages; message boundaries mean
// nothing. mws/mwss put net/mux on top of this Stream.
//
// Reading decodes in place in the caller's buffer (no read buffer per connection). Writing: one
// frame per write_some on the server (header and payload in one gather write over TCP); the
// client masks into a pooled buffer held only during the write and fragments the message at its
// frame size, as gorilla does (4096 by default). Control replies (Pong, Close) are serialised
// with data frames, never written inside one.
//
// Closing: shutdown_write() sends a Close frame (1000, or the peer's code echoed) and reading
// goes on until the peer's Close or EOF — the RFC close handshake as a half-close, which also
// survives reverse proxies (nginx drops both directions of an upgraded connection on a FIN).
// GOST itself sends no Close frame and half-closes the transport (docs/PROTOCOLS.md "ws: closing"):
// a plain transport EOF reads as EOF, and so does a received Close frame.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "core/stream.hpp"
#include "net/tls.hpp"
#include "proto/ws.hpp"

namespace gost::net {

struct WsStreamOptions {
  bool client = false;  // clients mask their frames and expect unmasked ones
  // Payload bytes per frame written; 0 = default: 4096 for a client (gorilla's write buffer),
  // a whole write up to 64 KiB in one frame for a server.
  std::size_t frame_size = 0;
  // At most this many bytes read from the transport per read; 0 = the caller's buffer size.
  std::size_t read_size = 0;
  proto::ws::DecoderLimits limits;
  // Client keep-alive: a Ping every `keepalive`; the connection is dropped when no Pong came for
  // 2 × keepalive (data does not count, as in GOST). 0 = off.
  std::chrono::nanoseconds keepalive{0};
};

// A WebSocket stream over `inner` after a completed handshake.
StreamPtr make_ws_stream(StreamPtr inner, WsStreamOptions o);

// TCP keep-alive on the socket under a stream (a no-op for streams without one).
struct TcpKeepalive {
  bool enabled = false;
  std::chrono::nanoseconds idle{0}, interval{0};  // 0 = system default
  int count = 0;
};
void apply_tcp_keepalive(Stream& s, const TcpKeepalive& k);

// ---- server ------------------------------------------------------------------------------------

struct WsServerConfig {
  std::string path = std::string(proto::ws::kDefaultPath);
  std::vector<proto::http::Header> headers;  // added to the 101
  // GOST has no limit by default; a client that never finishes its request head must not hold a
  // connection forever, so ours is 15 s unless configured.
  std::chrono::nanoseconds read_header_timeout = std::chrono::seconds(15);
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(15);  // writing the 101
  WsStreamOptions stream;
};
// The listener options of docs/PROTOCOLS.md "ws: options" (`ws.`-prefixed keys first). Throws
// config::ConfigError for values we refuse (enableCompression, a malformed header map).
WsServerConfig ws_server_config(const config::Metadata& md, std::string_view where);

// Serves the HTTP/1.1 upgrade on an accepted stream (docs/PROTOCOLS.md "ws: handshake"): error
// statuses are answered (and the connection kept for another request unless it asked to close); a
// request followed by more bytes is dropped without an answer. Throws when the connection ends
// without an upgrade.
awaitable<StreamPtr> ws_accept(StreamPtr s, const WsServerConfig& cfg);

// ---- client ------------------------------------------------------------------------------------

struct WsClientConfig {
  std::string host;  // Host header; empty = the node address
  std::string path = std::string(proto::ws::kDefaultPath);
  std::vector<proto::http::Header> headers;
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(15);
  WsStreamOptions stream;
  TcpKeepalive tcp_keepalive;
};
// The dialer options of docs/PROTOCOLS.md "ws: options". Throws config::ConfigError like
// ws_server_config.
WsClientConfig ws_client_config(const config::Metadata& md, std::string_view where);

// Sends the upgrade request on `s` (TLS already done for wss) and checks the 101. Bytes that came
// with the 101 are kept for the stream. Throws on failure.
awaitable<StreamPtr> ws_connect(StreamPtr s, const WsClientConfig& cfg, std::string_view node_addr);

// The wss client TLS context. SNI: the node's serverName, else the host of the node address (none
// for an IP); only when both are empty the host of the `host` option, as gorilla falls back to it.
TlsContextPtr wss_client_context(const std::optional<config::TLS>& tls,
                                 const std::string& node_addr, const WsClientConfig& cfg);
// The client side of a ws/wss connection over `s`: TLS when `tls` is set, then the upgrade, all
// within cfg.handshake_timeout.
awaitable<StreamPtr> ws_client_handshake(StreamPtr s, const WsClientConfig& cfg, TlsContextPtr tls,
                                         std::string_view node_addr);

}  // namespace gost::net
