// The TLS side of the HTTP/2 client session, apart from net/http2.cpp so that the HTTP/2 engine
// (and its fuzz target) does not depend on net/tls.
#include <fmt/format.h>

#include "net/http2.hpp"
#include "net/tls.hpp"

namespace gost::net {

awaitable<std::shared_ptr<Http2Session>> http2_client_session(StreamPtr s, TlsContextPtr tls,
                                                              std::chrono::nanoseconds tls_timeout,
                                                              Http2Config cfg, std::string where) {
  if (tls) {
    s = co_await tls_connect(std::move(s), std::move(tls), tls_timeout);
    auto alpn = negotiated_alpn(*s);
    if (alpn != "h2")
      throw system_error(asio::error::operation_not_supported,
                         fmt::format("{}: server did not select h2 (ALPN \"{}\")", where, alpn));
  }
  // Handed out once the server's SETTINGS arrived: until then the peer's stream limit is taken
  // to be 100 (RFC 9113 §6.5.2), so a burst would open more streams than a server with a lower
  // limit allows — those it refuses are retried, but those nghttp2 itself then holds back (its
  // queue of streams beyond the limit) wait for a slot that tunnels holding their streams never
  // free (issue 16 §1).
  // A server sends SETTINGS as soon as the connection starts, so this costs no round trip.
  auto session = Http2Session::client(std::move(s), std::move(cfg));
  if (!co_await session->wait_peer_settings())
    throw system_error(asio::error::connection_reset,
                       fmt::format("{}: the server sent no SETTINGS", where));
  co_return session;
}

}  // namespace gost::net
