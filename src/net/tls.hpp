// The shared TLS layer (docs/PROTOCOLS.md "tls") on OpenSSL 3: server/client contexts built from a
// config TLS block, GOST's default certificate, and TlsStream — TLS over any Stream (a TCP socket,
// a CONNECT tunnel, a SOCKS5 session ...), driven through memory BIOs so it composes with every
// transport.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "core/stream.hpp"

typedef struct ssl_ctx_st SSL_CTX;

namespace gost::net {

// An OpenSSL SSL_CTX, shared (immutable after construction) by every connection of a component.
class TlsContext {
 public:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* native() const { return ctx_; }
  bool is_server = false;
  std::string server_name;  // client side: SNI ("" = none, e.g. for an IP literal)
  std::string verify_name;  // client side: name or IP the certificate must match ("" = no check)
  std::string server_alpn;  // server side: ALPN preference list in wire format

 private:
  SSL_CTX* ctx_;
};
using TlsContextPtr = std::shared_ptr<const TlsContext>;

// Loads (or generates) the global default certificate (docs/PROTOCOLS.md
// "tls: default certificate") from the top-level `tls:` section. Called once at start-up, before
// any server context is built.
void init_default_certificate(const std::optional<config::TLS>& global);

// Server context: `tls` with certFile+keyFile → that pair (caFile → client certificates required);
// otherwise the global default certificate. `alpn` lists protocols the server accepts, in order of
// preference (after any `options.alpn`).
TlsContextPtr server_context(const std::optional<config::TLS>& tls,
                             const std::vector<std::string>& alpn = {});

// The certificate a server context would use, as PEM, for TLS stacks other than OpenSSL (QUIC
// runs on GnuTLS): the certificate and its chain, the private key, and the CA file whose client
// certificates are required ("" = none). Same rules as server_context().
struct ServerPem {
  std::string cert_chain, key, client_ca_file;
};
ServerPem server_pem(const std::optional<config::TLS>& tls);

// Client context: no verification unless `secure`; `caFile` pins a CA; SNI = serverName, else
// the host of `node_addr` unless it is an IP literal.
TlsContextPtr client_context(const std::optional<config::TLS>& tls, const std::string& node_addr,
                             const std::vector<std::string>& alpn = {});

// TLS handshakes over an existing stream; throw system_error on failure. The returned stream
// owns `inner`.
awaitable<StreamPtr> tls_accept(StreamPtr inner, TlsContextPtr ctx);
awaitable<StreamPtr> tls_connect(StreamPtr inner, TlsContextPtr ctx);
// The same within `timeout`: the stream is closed when it expires (<= 0: no limit).
awaitable<StreamPtr> tls_accept(StreamPtr inner, TlsContextPtr ctx,
                                std::chrono::nanoseconds timeout);
awaitable<StreamPtr> tls_connect(StreamPtr inner, TlsContextPtr ctx,
                                 std::chrono::nanoseconds timeout);

// The protocol selected by ALPN on a TLS stream ("" when none or not TLS).
std::string negotiated_alpn(Stream& s);

}  // namespace gost::net
