// Nodes, hops and node selection with failure marking (docs/PROTOCOLS.md "core: selection").
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/component.hpp"
#include "core/plugin.hpp"
#include "policy/bypass.hpp"
#include "policy/hosts.hpp"

namespace gost {

// Failure bookkeeping of one node: failed while count >= maxFails and the last failure is more
// recent than failTimeout.
class FailMarker {
 public:
  void mark();
  void reset() { count_.store(0, std::memory_order_relaxed); }
  bool failed(int max_fails, std::chrono::nanoseconds fail_timeout) const;

 private:
  std::atomic<int> count_{0};
  std::atomic<std::int64_t> last_failure_sec_{0};
};

struct Node {
  std::string name;
  std::string addr;
  std::shared_ptr<Dialer> dialer;        // null for forward targets
  std::shared_ptr<Connector> connector;  // null for forward targets
  int max_fails = 0;                     // 0: the selector's
  std::chrono::nanoseconds fail_timeout{0};
  bool backup = false;
  int weight = 1;
  // PROXY protocol header version sent to the node right after it is dialed (0: none); only the
  // first node of a route is dialed (docs/PROTOCOLS.md "PROXY protocol").
  int proxy_protocol = 0;
  FailMarker marker;
  policy::Bypasses bypass;                     // not selected for a target these bypass
  std::shared_ptr<const policy::Hosts> hosts;  // maps `addr` (its own, else its hop's)
  // `addr` with its host mapped by `hosts` (go-gost/x chain/route.go resolves each node's address).
  std::string dial_address() const;
};

// What a route is chosen for: the target as dialed (after the service's hosts mapping) and as the
// client asked for it; bypasses match either.
struct RouteTarget {
  std::string_view network = "tcp";
  std::string_view addr;
  std::string_view host;  // the requested address when the hosts mapping changed it, else empty
};

// policy::bypasses with the lists' plugins asked (GOST's BypassGroup, where a plugin is a
// blacklist; docs/ARCHITECTURE.md "Sources"): `client` is the client id, `host` and `path` what
// GOST's bypass options carry to a plugin (the requested address for a hop or node, nothing for a
// service). Tables see `target` as policy::bypasses does.
awaitable<bool> bypasses_async(const policy::Bypasses& list, const RouteTarget& target,
                               std::string_view client, std::string_view host,
                               std::string_view path);

// `addr` ("host:port") with its host mapped by a hosts plugin (go-gost/x internal/net Resolve:
// network "ip", the first IP answered); nullopt when the plugin maps nothing.
awaitable<std::optional<std::string>> map_address_async(const HostsPlugin& plugin,
                                                        std::string_view addr,
                                                        std::string_view client);

enum class Strategy { round, random, fifo, hash };

struct SelectorOptions {
  Strategy strategy = Strategy::round;
  int max_fails = 1;
  std::chrono::nanoseconds fail_timeout = std::chrono::seconds(10);
};
// "round"/"rr", "random"/"rand", "fifo"/"ha", "hash"; unknown → round (as GOST).
Strategy parse_strategy(std::string_view name);
// Reads a config selector (nullopt → defaults) and rejects strategies we do not implement.
SelectorOptions selector_options(const std::optional<config::Selector>& sel,
                                 std::string_view where);

class Hop {
 public:
  Hop(std::string name, std::vector<std::shared_ptr<Node>> nodes, SelectorOptions opts,
      policy::Bypasses bypass = {});
  // Picks a node (docs/PROTOCOLS.md "core: selection"); `hash_key` feeds the hash strategy. Null
  // when empty, when the hop's bypass covers `target`, or when every node's does (go-gost/x
  // hop/hop.go: such nodes are skipped).
  std::shared_ptr<Node> select(std::string_view hash_key = {}, const RouteTarget* target = nullptr);
  // `select` when a bypass of the hop or of a node is a plugin (`needs_async()`): the plugins are
  // asked on the caller's executor; `client` is the client id they are told.
  awaitable<std::shared_ptr<Node>> select_async(std::string_view hash_key,
                                                const RouteTarget& target, std::string_view client);
  bool needs_async() const { return plugin_bypass_; }
  // A forwarder's choice (docs/PROTOCOLS.md "cli: forwarding"): each node is its own target, so
  // a node whose bypass covers its own address (`network`, `addr`) is skipped; null when every
  // node is. `select_target_async` is every handler's one call: it asks the nodes' plugins
  // (telling them `client`) when some bypass is one (`needs_async()`), else it takes
  // `select_target`'s table-only path itself.
  std::shared_ptr<Node> select_target(std::string_view hash_key, std::string_view network);
  awaitable<std::shared_ptr<Node>> select_target_async(std::string_view hash_key,
                                                       std::string_view network,
                                                       std::string_view client);
  bool is_failed(const Node& n) const;
  const std::string& name() const { return name_; }
  const std::vector<std::shared_ptr<Node>>& nodes() const { return nodes_; }

 private:
  std::string name_;
  std::vector<std::shared_ptr<Node>> nodes_;
  SelectorOptions opts_;
  policy::Bypasses bypass_;
  bool node_bypass_ = false;    // some node has a bypass
  bool plugin_bypass_ = false;  // the hop's or a node's bypass has a plugin
  // The strategy's choice among `allowed` (not empty).
  std::shared_ptr<Node> pick(std::string_view hash_key,
                             const std::vector<std::shared_ptr<Node>>& allowed);
  std::atomic<std::uint64_t> counter_{0};
};

}  // namespace gost
