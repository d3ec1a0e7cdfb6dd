// Listener "udp": UDP port forwarding's front (`gost -L udp://:5353/8.8.8.8:53`, docs/PROTOCOLS.md
// "udp: port forwarding"). Every worker binds its own socket on the address (SO_REUSEPORT: the
// kernel keeps a peer's 4-tuple on one of them) and accept() yields one datagram flow per peer —
// the demultiplexing rudp's bindings use (net/bind: udp_flows), over the socket instead of a
// UDP-TUN stream. A flow ends after `ttl` without traffic and, unless `keepAlive` is set, once
// every request it took has had an answer (request/response, as GOST's udp listener by default;
// docs/PROTOCOLS.md "udp: differences").
#include "net/udp.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/component.hpp"
#include "net/bind.hpp"

namespace gost {
namespace {

class UdpListener final : public Listener {
 public:
  UdpListener(asio::io_context& ctx, const ListenerOptions& o) {
    const auto& md = o.config.metadata;
    const std::string where = "listener udp";
    // go-gost/x listener/udp/metadata.go; ≤ 0 is the default, as there. `udp.bufferSize` (the
    // spec's other name) counts only without a readBufferSize.
    options_.udp_buffer_size = 4096;
    if (auto n = md.get_int("readBufferSize"); !n || *n <= 0)
      if (auto u = md.get_int("udp.bufferSize"); u && *u > 0)
        options_.udp_buffer_size = static_cast<std::size_t>(std::min<std::int64_t>(*u, 65535));
    net::read_udp_flow_options(md, options_);
    options_.udp_keepalive = md.get_bool("keepalive").value_or(false);
    if (o.check_free) net::check_udp_address_free(o.addr, where);
    auto socket = net::bind_udp_listen(ctx, o.addr);
    error_code ec;
    auto local = socket.local_endpoint(ec);
    bound_ = ec ? o.addr : net::endpoint_text(local);
    // One per worker's socket: each warns at most once a second for its own drops.
    flows_ = net::udp_flows(std::make_unique<net::UdpSocketConn>(std::move(socket)),
                            ctx.get_executor(), bound_, options_, o.log,
                            std::make_shared<Refusals>(o.log, o.service, "udp"));
  }
  ~UdpListener() override { close(); }

  awaitable<StreamPtr> accept(error_code& ec) override {
    auto s = co_await flows_->accept(ec);
    // The socket was closed (the service retired): the accept loop ends on this.
    if (ec && closed_) ec = asio::error::operation_aborted;
    co_return s;
  }

  void close() override {
    closed_ = true;
    flows_->close();
  }
  std::string bound_address() const override { return bound_; }
  std::string network() const override { return "udp"; }

 private:
  BindOptions options_;
  std::string bound_;
  std::unique_ptr<Binding> flows_;
  bool closed_ = false;
};

GOST_REGISTER(ListenerRegistry, "udp", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new UdpListener(ctx, o));
});

}  // namespace
}  // namespace gost
