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
    conn.log = conn.log.with("dst", node->addr);
    if (opts_.router->bypassed("tcp", node->addr)) {  // go-gost/x handler/forward: closed
      conn.log.debug(fmt::format("bypass: {}", node->addr));
      co_return;
    }
    StreamPtr upstream;
    try {
      upstream = co_await opts_.router->dial("tcp", node->addr, conn);
    } catch (const system_error&) {
      node->marker.mark();
      throw;
    }
    node->marker.reset();
    co_await relay_logged(*client, *upstream, node->addr, conn, {.idle_timeout = idle_timeout_});
  }

 private:
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
