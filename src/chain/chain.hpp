// A chain of hops and the router that dials targets through it (docs/PROTOCOLS.md "core: routes").
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "chain/hop.hpp"
#include "policy/limiter.hpp"

namespace gost {

class Chain {
 public:
  Chain(std::string name, std::vector<std::shared_ptr<Hop>> hops)
      : name_(std::move(name)), hops_(std::move(hops)) {
    for (const auto& h : hops_) needs_async_ = needs_async_ || h->needs_async();
  }
  const std::string& name() const { return name_; }
  // One node per hop, in order; stops at the first hop that selects nothing (a hop's bypass
  // covers `target`, or every node's does): the nodes chosen so far carry the traffic.
  std::vector<std::shared_ptr<Node>> route(std::string_view hash_key,
                                           const RouteTarget* target = nullptr) const;
  // `route` when a hop's or node's bypass is a plugin (`needs_async()`; Hop::select_async).
  awaitable<std::vector<std::shared_ptr<Node>>> route_async(std::string_view hash_key,
                                                            const RouteTarget& target,
                                                            std::string_view client) const;
  bool needs_async() const { return needs_async_; }

 private:
  std::string name_;
  std::vector<std::shared_ptr<Hop>> hops_;
  bool needs_async_ = false;
};

// Opens a stream through `route` (dial the first node, connect through each next one, finally
// ask the last node for `target`). Marks nodes failed/healthy as it goes. `chain` names the route
// for metrics (gost_chain_node_connect_duration_seconds); empty = not a named chain. `conn` is the
// client's connection: its log, and its addresses for a PROXY protocol header to the first node.
awaitable<StreamPtr> dial_route(const std::vector<std::shared_ptr<Node>>& route,
                                std::string_view network, std::string_view target,
                                const ConnInfo& conn, std::string_view chain);

// The first part of dial_route: a stream to the last node of `route`, its connector's handshake
// done, ready for connect() or bind().
awaitable<StreamPtr> reach_last_node(const std::vector<std::shared_ptr<Node>>& route,
                                     const ConnInfo& conn, std::string_view chain);

// Asks the last node of `route` to listen on `address` (reverse forwarding, docs/PROTOCOLS.md
// "rtcp and rudp").
awaitable<std::unique_ptr<Binding>> bind_route(const std::vector<std::shared_ptr<Node>>& route,
                                               std::string_view network, std::string_view address,
                                               const BindOptions& options, const ConnInfo& conn,
                                               std::string_view chain);

// Direct TCP connection (host names resolved by the OS resolver).
awaitable<StreamPtr> dial_tcp(std::string_view addr);

struct RouterOptions {
  std::shared_ptr<Chain> chain;  // null = direct
  int retries = 0;
  std::chrono::nanoseconds dial_timeout = std::chrono::seconds(15);
  policy::Bypasses bypass;                     // the service's (`bypass`, `bypasses`)
  std::shared_ptr<const policy::Hosts> hosts;  // the service's: maps target host names
  // GOST's client-scope traffic limiter (a handler's `limiter` with a plugin, app/traffic_plugin):
  // the budgets of a TCP tunnel of `client` (the authenticated user) from `src` to `addr`; a
  // dialed stream it limits is wrapped (in: what the client sends, out: what it gets).
  using ClientLimiter = std::function<awaitable<policy::TrafficLimiter::Throttles>(
      std::string network, std::string src, std::string addr, std::string client)>;
  ClientLimiter client_limiter;
};

class Router {
 public:
  explicit Router(RouterOptions o)
      : opts_(std::move(o)), bypass_plugin_(policy::has_plugin(opts_.bypass)) {}
  // Dials `address` through the chain (or directly), with retries and a per-attempt timeout;
  // the client-scope limiter's budgets wrap the stream.
  awaitable<StreamPtr> dial(std::string_view network, std::string_view address,
                            const ConnInfo& conn);
  // Asks the chain's last node to listen on `address` (rtcp/rudp listeners), with retries and the
  // per-attempt timeout. Throws; a router without a chain cannot bind.
  awaitable<std::unique_ptr<Binding>> bind(std::string_view network, std::string_view address,
                                           const BindOptions& options, const ConnInfo& conn);
  bool has_chain() const { return opts_.chain != nullptr; }
  // The service's bypass covers this target: the handler refuses it with its protocol's answer
  // and dials nothing (docs/PROTOCOLS.md "config: controls").
  // bypassed(): the table only, never suspends (net/udp_relay asks it per datagram unless
  // bypass_needs_async()); bypassed_async(): what the handlers ask once per request, which takes
  // the table-only path itself when no bypass is a plugin.
  bool bypassed(std::string_view network, std::string_view address) const {
    return !opts_.bypass.empty() && policy::bypasses(opts_.bypass, network, address);
  }
  bool bypass_needs_async() const { return bypass_plugin_; }
  // The service's plugin is told the client id and no host or path (go-gost/x handlers:
  // Contains(ctx, network, addr) with the client id in the context).
  awaitable<bool> bypassed_async(std::string_view network, std::string_view address,
                                 std::string_view client) const;

 private:
  awaitable<StreamPtr> dial_target(std::string_view network, std::string_view address,
                                   const ConnInfo& conn);
  RouterOptions opts_;
  bool bypass_plugin_ = false;
};

}  // namespace gost
