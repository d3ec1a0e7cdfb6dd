// Handlers "tcp" and "forward": port forwarding to the service's fixed targets (docs/PROTOCOLS.md
// "cli: forwarding"), directly or through the chain.
#include <fmt/format.h>

#include "chain/chain.hpp"
#include "core/tunnel.hpp"

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
    auto node = opts_.forwarder->select(conn.remote);
    add_log_field(conn, "dst", node->addr);
    StreamPtr upstream = co_await dial(*node, conn);
    if (!upstream) co_return;  // bypassed
    // Made apart from the co_await: a temporary in a co_await expression takes a frame slot.
    auto relaying =
        relay_logged(*client, *upstream, node->addr, conn, {.idle_timeout = idle_timeout_});
    co_await std::move(relaying);
  }

 private:
  // The bypass check, the dial and its fail marks in a coroutine of their own: what they need does
  // not stay in handle()'s frame while the tunnel lasts. Null: the target is bypassed.
  awaitable<StreamPtr> dial(Node& node, ConnInfo& conn) {
    // The service's bypass (go-gost/x handler/forward: closed, nothing dialed).
    bool refused;
    if (opts_.router->bypass_needs_async())
      refused = co_await opts_.router->bypassed_async("tcp", node.addr, conn.client_id);
    else
      refused = opts_.router->bypassed("tcp", node.addr);
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

HandlerFactory forward_factory() {
  return [](const HandlerOptions& o) { return std::shared_ptr<Handler>(new ForwardHandler(o)); };
}

GOST_REGISTER(HandlerRegistry, "tcp", forward_factory());
GOST_REGISTER(HandlerRegistry, "forward", forward_factory());

}  // namespace
}  // namespace gost
