// Handlers "tcp" and "forward": port forwarding to the service's fixed targets (docs/PROTOCOLS.md
// "cli: forwarding"), directly or through the chain. "rtcp" and "rudp" serve the connections and
// datagram flows a reverse listener accepts the same way (docs/PROTOCOLS.md "rtcp and rudp";
// go-gost/x handler/forward/remote).
#include <fmt/format.h>

#include "chain/chain.hpp"
#include "core/tunnel.hpp"
#include "net/udp.hpp"
#include "net/udp_relay.hpp"

namespace gost {
namespace {

class ForwardHandler final : public Handler {
 public:
  explicit ForwardHandler(const HandlerOptions& o) : opts_(o) {
    if (!o.forwarder || o.forwarder->nodes().empty())
      throw config::ConfigError(
          fmt::format("{}: handler {} needs a forward target (e.g. tcp://:8080/host:port)",
                      o.service, o.config.type));
    idle_timeout_ =
        o.config.metadata.get_duration("idleTimeout").value_or(std::chrono::nanoseconds(0));
  }

  awaitable<void> handle(StreamPtr client, ConnInfo& conn) override {
    std::string target;
    StreamPtr upstream = co_await dial(conn, target);
    if (!upstream) co_return;  // no node, or bypassed
    // Made apart from the co_await: a temporary in a co_await expression takes a frame slot.
    auto relaying = relay_to_end(std::move(client), std::move(upstream), std::move(target), conn,
                                 {.idle_timeout = idle_timeout_});
    co_await std::move(relaying);
  }

 private:
  // The target's choice, the bypass check, the dial and its fail marks in a coroutine of their
  // own: what they need does not stay in handle()'s frame while the tunnel lasts. Null: no node
  // may be used, or the target is bypassed.
  awaitable<StreamPtr> dial(ConnInfo& conn, std::string& target) {
    // A node whose bypass covers its address is skipped (docs/PROTOCOLS.md "cli: forwarding").
    std::shared_ptr<Node> chosen =
        co_await opts_.forwarder->select_target_async(conn.remote, "tcp", conn.client_id);
    if (!chosen) {
      conn.log.error("node not available");  // go-gost/x handler/forward/local
      co_return nullptr;
    }
    Node& node = *chosen;
    target = node.addr;
    add_log_field(conn, "dst", node.addr);
    // The service's bypass (go-gost/x handler/forward: closed, nothing dialed).
    bool refused = co_await opts_.router->bypassed_async("tcp", node.addr, conn.client_id);
    if (refused) {
      conn.log.debug(fmt::format("bypass: {}", node.addr));
      co_return nullptr;
    }
    try {
      auto upstream = co_await opts_.router->dial("tcp", node.addr, conn);
      node.marker.reset();
      co_return upstream;
    } catch (const system_error&) {
      node.marker.mark();
      throw;
    }
  }

  HandlerOptions opts_;
  std::chrono::nanoseconds idle_timeout_{0};
};

// A datagram flow's view for relay_datagrams: what the peer sends goes to the target, what comes
// back goes to the peer.
class TargetedFlow final : public net::PacketConn {
 public:
  TargetedFlow(net::PacketConn& flow, std::string target)
      : flow_(flow), target_(std::move(target)) {}
  awaitable<std::size_t> read_from(asio::mutable_buffer buf, std::string& addr,
                                   error_code& ec) override {
    auto n = co_await flow_.read_from(buf, addr, ec);
    addr = target_;
    co_return n;
  }
  awaitable<void> write_to(asio::const_buffer buf, std::string_view, error_code& ec) override {
    return flow_.write_to(buf, target_, ec);
  }
  void close() override { flow_.close(); }

 private:
  net::PacketConn& flow_;
  std::string target_;
};

// "udp" and "rudp": each peer's flow to a target of the forwarder, over a local UDP socket or
// through the handler's chain; the flow ends after the listener's ttl without traffic (and, on
// listener udp without keepAlive, once every request it took has had an answer).
class UdpForwardHandler final : public Handler {
 public:
  explicit UdpForwardHandler(const HandlerOptions& o) : opts_(o) {
    if (!o.forwarder || o.forwarder->nodes().empty())
      throw config::ConfigError(
          fmt::format("{}: handler {} needs a forward target (e.g. {}://:5353/127.0.0.1:53)",
                      o.service, o.config.type, o.config.type));
  }

  awaitable<void> handle(StreamPtr client, ConnInfo& conn) override {
    auto* flow = dynamic_cast<net::PacketConn*>(client.get());
    if (!flow)
      throw system_error(
          asio::error::operation_not_supported,
          fmt::format("handler {}: not a datagram flow (listener udp or rudp serves it)",
                      opts_.config.type));
    std::shared_ptr<Node> node =
        co_await opts_.forwarder->select_target_async(conn.remote, "udp", conn.client_id);
    if (!node) {
      conn.log.error("node not available");
      co_return;
    }
    add_log_field(conn, "dst", fmt::format("{}/udp", node->addr));
    // GOST's forward handler: a UDP "connection" to the target — through the chain its last
    // node's UDP CONNECT (relay: LEN-framed datagrams), directly a connected UDP socket.
    StreamPtr up;
    try {
      up = co_await net::dial_udp_target(*opts_.router, node->addr, conn);
      node->marker.reset();
    } catch (const system_error&) {
      node->marker.mark();
      throw;
    }
    auto* packets = dynamic_cast<net::PacketConn*>(up.get());
    if (!packets)
      throw system_error(asio::error::operation_not_supported,
                         "UDP through this chain is not supported: the last node's connector does "
                         "not carry datagrams");
    TargetedFlow targeted(*flow, node->addr);
    conn.log.debug(fmt::format("{} <-> {}", conn.remote, node->addr));
    co_await net::relay_datagrams(
        targeted, *packets, nullptr, conn,
        {.buffer_size = kBufferSize, .tag = opts_.config.type, .router = opts_.router.get()});
    conn.log.debug(fmt::format("{} >-< {}", conn.remote, node->addr));
  }

 private:
  static constexpr std::size_t kBufferSize = 16384;
  HandlerOptions opts_;
};

HandlerFactory forward_factory() {
  return [](const HandlerOptions& o) { return std::shared_ptr<Handler>(new ForwardHandler(o)); };
}

GOST_REGISTER(HandlerRegistry, "tcp", forward_factory());
GOST_REGISTER(HandlerRegistry, "forward", forward_factory());
GOST_REGISTER(HandlerRegistry, "rtcp", forward_factory());
GOST_REGISTER(HandlerRegistry, "rudp", [](const HandlerOptions& o) {
  return std::shared_ptr<Handler>(new UdpForwardHandler(o));
});
GOST_REGISTER(HandlerRegistry, "udp", [](const HandlerOptions& o) {
  return std::shared_ptr<Handler>(new UdpForwardHandler(o));
});

}  // namespace
}  // namespace gost
