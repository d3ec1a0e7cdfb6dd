#include "chain/chain.hpp"

#include <fmt/format.h>

#include <charconv>

#include "core/address.hpp"
#include "core/metrics.hpp"
#include "core/tcp_stream.hpp"
#include "core/throttle.hpp"
#include "core/timeout.hpp"
#include "proto/proxy_protocol.hpp"

namespace gost {

std::vector<std::shared_ptr<Node>> Chain::route(std::string_view hash_key,
                                                const RouteTarget* target) const {
  std::vector<std::shared_ptr<Node>> nodes;
  nodes.reserve(hops_.size());
  for (const auto& hop : hops_) {
    auto n = hop->select(hash_key, target);
    if (!n) break;
    nodes.push_back(std::move(n));
  }
  return nodes;
}

awaitable<std::vector<std::shared_ptr<Node>>> Chain::route_async(std::string_view hash_key,
                                                                 const RouteTarget& target,
                                                                 std::string_view client) const {
  std::vector<std::shared_ptr<Node>> nodes;
  nodes.reserve(hops_.size());
  for (const auto& hop : hops_) {
    std::shared_ptr<Node> n;
    if (hop->needs_async())
      n = co_await hop->select_async(hash_key, target, client);
    else
      n = hop->select(hash_key, &target);
    if (!n) break;
    nodes.push_back(std::move(n));
  }
  co_return nodes;
}

awaitable<bool> Router::bypassed_async(std::string_view network, std::string_view address,
                                       std::string_view client) const {
  if (!bypass_plugin_) co_return bypassed(network, address);
  const RouteTarget target{network, address, {}};
  const std::string_view none;
  co_return co_await bypasses_async(opts_.bypass, target, client, none, none);
}

namespace {

// The address a node is dialed at: its hosts' mapping (GOST asks a hosts plugin with network
// "ip" and the client id: go-gost/x chain/route.go).
awaitable<std::string> node_address(const Node& node, const ConnInfo& conn) {
  if (node.hosts)
    if (const HostsPlugin* p = node.hosts->plugin()) {
      auto mapped = co_await map_address_async(*p, node.addr, conn.client_id);
      if (mapped) {
        conn.log.debug(fmt::format("hit host mapper: {} -> {}", node.addr, *mapped));
        co_return std::move(*mapped);
      }
      co_return node.addr;
    }
  co_return node.dial_address();
}

}  // namespace

awaitable<StreamPtr> dial_tcp(std::string_view addr) {
  auto hp = split_host_port(addr);
  if (!hp) throw system_error(asio::error::invalid_argument, fmt::format("bad address {}", addr));
  auto ex = co_await asio::this_coro::executor;
  tcp::socket sock(ex);
  // An IP literal needs no resolver (whose lookups run on a helper thread).
  error_code iec;
  auto ip = asio::ip::make_address(hp->host, iec);
  unsigned port = 0;
  auto [pend, pec] = std::from_chars(hp->port.data(), hp->port.data() + hp->port.size(), port);
  if (!iec && pec == std::errc() && pend == hp->port.data() + hp->port.size() && port <= 65535) {
    auto [cec] = co_await sock.async_connect(tcp::endpoint(ip, static_cast<unsigned short>(port)),
                                             use_nothrow);
    if (cec) throw system_error(cec, fmt::format("dial tcp {}", addr));
    co_return std::make_unique<TcpStream>(std::move(sock));
  }
  tcp::resolver resolver(ex);
  std::string host = hp->host.empty() ? std::string("localhost") : hp->host;
  auto [rec, results] = co_await resolver.async_resolve(host, hp->port, use_nothrow);
  if (rec) throw system_error(rec, fmt::format("resolve {}", addr));
  auto [cec, ep] = co_await asio::async_connect(sock, results, use_nothrow);
  if (cec) throw system_error(cec, fmt::format("dial tcp {}", addr));
  co_return std::make_unique<TcpStream>(std::move(sock));
}

namespace {

// A failed step of the route: `node` is marked and the error rethrown with the node named.
[[noreturn]] void fail_at(Node& node, const system_error& e) {
  node.marker.mark();
  auto context = error_context(e);
  throw system_error(e.code(), context.empty()
                                   ? fmt::format("{}@{}", node.name, node.addr)
                                   : fmt::format("{}@{}: {}", node.name, node.addr, context));
}

// Runs one step of the route; on failure marks `node` and rethrows with the node named.
template <class F>
awaitable<StreamPtr> node_step(Node& node, F step) {
  try {
    co_return co_await step();
  } catch (const system_error& e) {
    fail_at(node, e);
  }
}

// node_step for the BIND request: the node's failure is marked and named the same way.
template <class F>
awaitable<std::unique_ptr<Binding>> node_step_bind(Node& node, F step) {
  try {
    auto b = co_await step();
    node.marker.reset();
    co_return b;
  } catch (const system_error& e) {
    fail_at(node, e);
  }
}

}  // namespace

awaitable<StreamPtr> dial_route(const std::vector<std::shared_ptr<Node>>& route,
                                std::string_view network, std::string_view target,
                                const ConnInfo& conn, std::string_view chain) {
  StreamPtr s = co_await reach_last_node(route, conn, chain);
  co_return co_await route.back()->connector->connect(std::move(s), network, target, conn.log);
}

awaitable<std::unique_ptr<Binding>> bind_route(const std::vector<std::shared_ptr<Node>>& route,
                                               std::string_view network, std::string_view address,
                                               const BindOptions& options, const ConnInfo& conn,
                                               std::string_view chain) {
  StreamPtr s = co_await reach_last_node(route, conn, chain);
  Node& last = *route.back();
  co_return co_await node_step_bind(last, [&]() {
    return last.connector->bind(std::move(s), network, address, options, conn.log);
  });
}

awaitable<StreamPtr> reach_last_node(const std::vector<std::shared_ptr<Node>>& route,
                                     const ConnInfo& conn, std::string_view chain) {
  const log::Logger& log = conn.log;
  Node& first = *route.front();
  auto start = std::chrono::steady_clock::now();
  StreamPtr s = co_await node_step(first, [&]() -> awaitable<StreamPtr> {
    std::string addr;
    if (first.hosts && first.hosts->plugin())
      addr = co_await node_address(first, conn);
    else
      addr = first.dial_address();
    StreamPtr st;
    if (first.proxy_protocol > 0) {
      // GOST's dialers write the header on the connection they dialed, before the transport's
      // handshake: source the client, destination the address it connected to
      // (docs/PROTOCOLS.md "PROXY protocol").
      st = co_await first.dialer->dial(addr, log);
      std::string header =
          proto::proxy_protocol::build_for_node(first.proxy_protocol, conn.remote, conn.local);
      co_await write_all(*st, asio::buffer(header));
      st = co_await first.dialer->handshake(std::move(st), addr);
    } else {
      st = co_await first.dialer->connect(addr, log);
    }
    co_return co_await first.connector->handshake(std::move(st));
  });
  first.marker.reset();
  // GOST observes the first node's dial + handshake only, even when a later hop fails.
  if (auto* m = metrics::global(); m && !chain.empty())
    m->node_connect(
        chain, first.name,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  for (std::size_t k = 1; k < route.size(); ++k) {
    Node& prev = *route[k - 1];
    Node& node = *route[k];
    s = co_await node_step(node, [&]() -> awaitable<StreamPtr> {
      std::string addr;
      if (node.hosts && node.hosts->plugin())
        addr = co_await node_address(node, conn);
      else
        addr = node.dial_address();
      auto st = co_await prev.connector->connect(std::move(s), "tcp", addr, log);
      st = co_await node.dialer->handshake(std::move(st), node.addr);
      co_return co_await node.connector->handshake(std::move(st));
    });
    node.marker.reset();
  }
  co_return s;
}

awaitable<StreamPtr> Router::dial(std::string_view network, std::string_view address,
                                  const ConnInfo& conn) {
  auto s = co_await dial_target(network, address, conn);
  if (!opts_.client_limiter || network.substr(0, 3) != "tcp") co_return s;
  // Reads from the target are what the client gets (GOST's Out), writes what it sent (In).
  auto asking =
      opts_.client_limiter(std::string(network), conn.remote, std::string(address), conn.client_id);
  auto t = co_await std::move(asking);
  co_return throttled(std::move(s), std::move(t.out), std::move(t.in));
}

awaitable<StreamPtr> Router::dial_target(std::string_view network, std::string_view address,
                                         const ConnInfo& conn) {
  std::string last_error;
  std::string last_context;
  error_code last_code = asio::error::host_unreachable;
  // The service's hosts mapping (go-gost/x chain/router.go: Resolve before Route); hops and
  // nodes see both the mapped and the requested address.
  std::string mapped;
  if (opts_.hosts) {
    std::optional<std::string> m;
    if (const HostsPlugin* p = opts_.hosts->plugin())
      m = co_await map_address_async(*p, address, conn.client_id);
    else
      m = opts_.hosts->current()->map_address(address);
    if (m) {
      conn.log.debug(fmt::format("hit host mapper: {} -> {}", address, *m));
      mapped = std::move(*m);
    }
  }
  const std::string_view target = mapped.empty() ? address : std::string_view(mapped);
  const RouteTarget route_target{network, target, mapped.empty() ? std::string_view() : address};
  for (int attempt = 0; attempt <= opts_.retries; ++attempt) {
    std::vector<std::shared_ptr<Node>> route;
    if (opts_.chain) {
      const std::string_view hash_key = conn.client_id.empty() ? conn.remote : conn.client_id;
      if (opts_.chain->needs_async())
        route = co_await opts_.chain->route_async(hash_key, route_target, conn.client_id);
      else
        route = opts_.chain->route(hash_key, &route_target);
    }
    if (log::enabled(log::Level::debug)) {
      std::string path;
      for (auto& n : route) path += fmt::format("{}@{} > ", n->name, n->addr);
      conn.log.debug(fmt::format("route(retry={}) {}{}", attempt, path, target));
    }
    if (route.empty() && network.substr(0, 3) == "udp")
      throw system_error(asio::error::operation_not_supported,
                         "direct UDP is opened by the handler itself, not dialed by the router");
    try {
      if (route.empty()) co_return co_await with_timeout(dial_tcp(target), opts_.dial_timeout);
      std::string_view chain_name = opts_.chain->name();
      co_return co_await with_timeout(dial_route(route, network, target, conn, chain_name),
                                      opts_.dial_timeout);
    } catch (const system_error& e) {
      // gost_chain_errors_total: every failed attempt through a named chain, labelled with the
      // route's first node (GOST's behaviour, whichever hop failed).
      if (auto* m = metrics::global(); m && !route.empty())
        m->chain_error(opts_.chain->name(), route.front()->name);
      last_error = error_text(e);
      last_context = error_context(e);
      last_code = e.code();
      conn.log.error(fmt::format("route(retry={}) {}", attempt, last_error));
    }
  }
  if (conn.metrics) conn.metrics->fail();  // the handler returns this error (GOST counts it)
  throw system_error(last_code, last_context);
}

awaitable<std::unique_ptr<Binding>> Router::bind(std::string_view network, std::string_view address,
                                                 const BindOptions& options, const ConnInfo& conn) {
  // go-gost/x chain/router.go Bind: retries+1 attempts, each logged "route(retry=N) <error>".
  std::string last_context;
  error_code last_code = asio::error::host_unreachable;
  conn.log.debug(fmt::format("bind on {}/{}", address, network));
  for (int attempt = 0; attempt <= opts_.retries; ++attempt) {
    std::vector<std::shared_ptr<Node>> route;
    const RouteTarget route_target{network, address, {}};
    if (opts_.chain) route = opts_.chain->route(conn.remote, &route_target);
    if (route.empty())
      throw system_error(
          asio::error::operation_not_supported,
          fmt::format("bind on {}/{}: no route (the chain selected no node)", address, network));
    if (log::enabled(log::Level::debug)) {
      std::string path;
      for (auto& n : route) path += fmt::format("{}@{} > ", n->name, n->addr);
      conn.log.debug(fmt::format("route(retry={}) {}{}", attempt, path, address));
    }
    try {
      co_return co_await with_timeout(
          bind_route(route, network, address, options, conn, opts_.chain->name()),
          opts_.dial_timeout);
    } catch (const system_error& e) {
      if (auto* m = metrics::global()) m->chain_error(opts_.chain->name(), route.front()->name);
      last_context = error_context(e);
      last_code = e.code();
      conn.log.error(fmt::format("route(retry={}) {}", attempt, error_text(e)));
    }
  }
  throw system_error(last_code, last_context);
}

}  // namespace gost
