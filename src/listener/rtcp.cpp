// Listeners "rtcp" and "rudp": reverse forwarding (docs/PROTOCOLS.md "rtcp and rudp"). The
// listener asks the last node of its chain to listen on the service's address (relay BIND, SOCKS5
// MBIND / UDP-TUN) and its accept() yields what arrives there: one stream per inbound connection
// (rtcp) or per peer's datagram flow (rudp). When the binding ends (the server or the link went
// away) accept() fails; the service's accept loop logs "accept: ..., retrying in Ns" and backs off
// (1, 2, 4, 5, 5 ... s) and the next accept() binds again (go-gost/x listener/rtcp, rudp).
//
// One binding per service: the first worker's listener binds; the others only wait to be closed
// (two bindings of one address would refuse each other at the node).
#include <fmt/format.h>

#include "chain/chain.hpp"
#include "core/component.hpp"
#include "net/bind.hpp"

namespace gost {
namespace {

class ReverseListener final : public Listener {
 public:
  ReverseListener(asio::io_context& ctx, const ListenerOptions& o, std::string network)
      : addr_(o.addr),
        network_(std::move(network)),
        router_(o.router),
        active_(o.first),
        log_(o.log),
        closed_wait_(ctx) {
    closed_wait_.expires_at(asio::steady_timer::time_point::max());
    const auto& md = o.config.metadata;
    std::string where = fmt::format("listener {}", o.config.type);
    if (!router_)
      throw config::ConfigError(
          fmt::format("{}: needs a chain to bind through (-F, or the listener's chain), e.g. "
                      "gost -L {}://:2222/127.0.0.1:22 -F relay+ws://server:8443",
                      where, network_ == "udp" ? "rudp" : "rtcp"));
    if (o.service_metadata && o.service_metadata->get_int("proxyProtocol").value_or(0) > 0)
      throw config::ConfigError(fmt::format(
          "{}: proxyProtocol is not supported (inbound connections come over the chain)", where));
    if (network_ == "udp") {
      // go-gost/x listener/rudp/metadata.go (≤ 0: the default).
      net::read_udp_flow_options(md, options_);
    } else {
      // Read (GOST's rtcp listener parses it) but without effect: our limiters have no refresh.
      (void)md.get_duration("limiter.refreshInterval");
    }
    conn_.log = log_;
  }

  awaitable<StreamPtr> accept(error_code& ec) override {
    if (!active_) {
      while (!closed_) co_await closed_wait_.async_wait(use_nothrow);
      ec = asio::error::operation_aborted;
      co_return nullptr;
    }
    if (closed_) {
      ec = asio::error::operation_aborted;
      co_return nullptr;
    }
    if (!binding_) {
      try {
        auto b = co_await router_->bind(network_, addr_, options_, conn_);
        binding_ = std::shared_ptr<Binding>(std::move(b));
      } catch (const system_error& e) {
        ec = usable(e.code());
        co_return nullptr;
      }
      if (closed_) {
        binding_->close();
        binding_.reset();
        ec = asio::error::operation_aborted;
        co_return nullptr;
      }
      log_.info(fmt::format("bind on {}/{} OK", binding_->address(), network_));
    }
    auto binding = binding_;  // kept alive while its accept() runs, whatever close() does
    auto s = co_await binding->accept(ec);
    if (closed_) {
      ec = asio::error::operation_aborted;
      co_return nullptr;
    }
    if (ec || !s) {
      // The binding has ended: the next accept() binds again.
      log_.debug(fmt::format("bind on {}/{}: ended ({})", binding->address(), network_,
                             ec ? ec.message() : "closed"));
      binding->close();
      if (binding_ == binding) binding_.reset();
      ec = usable(ec ? ec : asio::error::eof);
      co_return nullptr;
    }
    co_return s;
  }

  void close() override {
    closed_ = true;
    closed_wait_.cancel();
    if (binding_) binding_->close();
  }
  std::string bound_address() const override { return addr_; }
  std::string network() const override { return network_; }

 private:
  // The accept loop stops on operation_aborted/bad_descriptor (the listener is closed): a
  // binding's end must not look like that.
  static error_code usable(error_code ec) {
    if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor)
      return asio::error::connection_aborted;
    return ec;
  }

  std::string addr_;
  std::string network_;
  std::shared_ptr<Router> router_;
  bool active_;
  log::Logger log_;
  asio::steady_timer closed_wait_;
  bool closed_ = false;
  BindOptions options_;
  ConnInfo conn_;
  std::shared_ptr<Binding> binding_;
};

GOST_REGISTER(ListenerRegistry, "rtcp", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new ReverseListener(ctx, o, "tcp"));
});
GOST_REGISTER(ListenerRegistry, "rudp", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new ReverseListener(ctx, o, "udp"));
});

}  // namespace
}  // namespace gost
