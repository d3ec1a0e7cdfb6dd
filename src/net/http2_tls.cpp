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
  co_return Http2Session::client(std::move(s), std::move(cfg));
}

}  // namespace gost::net
