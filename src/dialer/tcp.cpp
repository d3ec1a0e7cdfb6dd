// Dialers "tcp" (a plain TCP connection to the node) and "tls".
#include "chain/chain.hpp"
#include "core/component.hpp"
#include "net/tls.hpp"

namespace gost {
namespace {

class TcpDialer final : public Dialer {
 public:
  awaitable<StreamPtr> dial(std::string_view addr, const log::Logger&) override {
    co_return co_await dial_tcp(addr);
  }
};

GOST_REGISTER(DialerRegistry, "tcp", [](const DialerOptions& o) {
  reject_unsupported(o.config.metadata, {"mptcp"}, "dialer tcp");
  return std::shared_ptr<Dialer>(new TcpDialer());
});

// Dialer "tls": TCP, then a TLS client handshake; over an existing stream for later chain nodes.
class TlsDialer final : public Dialer {
 public:
  explicit TlsDialer(const DialerOptions& o)
      : tls_(net::client_context(o.config.tls, o.node_addr)) {}

  awaitable<StreamPtr> dial(std::string_view addr, const log::Logger&) override {
    co_return co_await dial_tcp(addr);
  }
  awaitable<StreamPtr> handshake(StreamPtr s, std::string_view) override {
    co_return co_await net::tls_connect(std::move(s), tls_);
  }

 private:
  net::TlsContextPtr tls_;
};

GOST_REGISTER(DialerRegistry, "tls",
              [](const DialerOptions& o) { return std::shared_ptr<Dialer>(new TlsDialer(o)); });

}  // namespace
}  // namespace gost
