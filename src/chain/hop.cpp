#include "chain/hop.hpp"

#include <fmt/format.h>

#include <boost/crc.hpp>
#include <random>

#include "core/address.hpp"

namespace gost {
namespace {

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::uint32_t crc32_ieee(std::string_view s) {
  boost::crc_32_type crc;
  crc.process_bytes(s.data(), s.size());
  return crc.checksum();
}

thread_local std::minstd_rand rng{std::random_device{}()};

}  // namespace

void FailMarker::mark() {
  count_.fetch_add(1, std::memory_order_relaxed);
  last_failure_sec_.store(now_seconds(), std::memory_order_relaxed);
}

bool FailMarker::failed(int max_fails, std::chrono::nanoseconds fail_timeout) const {
  int count = count_.load(std::memory_order_relaxed);
  if (count == 0 || count < max_fails) return false;
  auto since =
      std::chrono::seconds(now_seconds() - last_failure_sec_.load(std::memory_order_relaxed));
  return since < fail_timeout;
}

Strategy parse_strategy(std::string_view name) {
  if (name == "random" || name == "rand") return Strategy::random;
  if (name == "fifo" || name == "ha") return Strategy::fifo;
  if (name == "hash") return Strategy::hash;
  return Strategy::round;
}

SelectorOptions selector_options(const std::optional<config::Selector>& sel,
                                 std::string_view where) {
  SelectorOptions o;
  if (!sel) return o;
  auto s = sel->strategy;
  if (s == "parallel" || s == "lowestlatency" || s == "lowest" || s == "ll")
    throw config::ConfigError(fmt::format(
        "{}: selector strategy \"{}\" is not supported by this implementation", where, s));
  o.strategy = parse_strategy(s);
  o.max_fails = sel->maxFails > 0 ? sel->maxFails : 1;
  o.fail_timeout = sel->failTimeout.count() > 0 ? sel->failTimeout : std::chrono::seconds(10);
  return o;
}

Hop::Hop(std::string name, std::vector<std::shared_ptr<Node>> nodes, SelectorOptions opts,
         policy::Bypasses bypass)
    : name_(std::move(name)), nodes_(std::move(nodes)), opts_(opts), bypass_(std::move(bypass)) {
  plugin_bypass_ = policy::has_plugin(bypass_);
  for (const auto& n : nodes_) {
    node_bypass_ = node_bypass_ || !n->bypass.empty();
    plugin_bypass_ = plugin_bypass_ || policy::has_plugin(n->bypass);
  }
}

std::string Node::dial_address() const {
  if (hosts)
    if (auto mapped = hosts->current()->map_address(addr)) return *mapped;
  return addr;
}

namespace {
bool bypassed(const policy::Bypasses& list, const RouteTarget& t) {
  return policy::bypasses(list, t.network, t.addr, t.host);
}
}  // namespace

bool Hop::is_failed(const Node& n) const {
  int max_fails = n.max_fails > 0 ? n.max_fails : opts_.max_fails;
  auto timeout = n.fail_timeout.count() > 0 ? n.fail_timeout : opts_.fail_timeout;
  return n.marker.failed(max_fails, timeout);
}

std::shared_ptr<Node> Hop::select(std::string_view hash_key, const RouteTarget* target) {
  if (nodes_.empty()) return nullptr;
  if (target && !bypass_.empty() && bypassed(bypass_, *target)) return nullptr;
  // The nodes this target may use: all, or those whose bypass does not cover it.
  std::vector<std::shared_ptr<Node>> allowed_storage;
  const std::vector<std::shared_ptr<Node>>* allowed = &nodes_;
  if (target && node_bypass_) {
    for (const auto& n : nodes_)
      if (n->bypass.empty() || !bypassed(n->bypass, *target)) allowed_storage.push_back(n);
    if (allowed_storage.empty()) return nullptr;
    allowed = &allowed_storage;
  }
  return pick(hash_key, *allowed);
}

awaitable<std::shared_ptr<Node>> Hop::select_async(std::string_view hash_key,
                                                   const RouteTarget& target,
                                                   std::string_view client) {
  if (nodes_.empty()) co_return nullptr;
  // GOST tells a hop's and a node's plugin the requested address as `host` (go-gost/x
  // chain/router.go: Route(ctx, network, ipAddr, WithHostRouteOption(address))).
  const std::string_view host = target.host.empty() ? target.addr : target.host;
  const std::string_view no_path;
  if (!bypass_.empty()) {
    const bool cut = co_await bypasses_async(bypass_, target, client, host, no_path);
    if (cut) co_return nullptr;
  }
  std::vector<std::shared_ptr<Node>> allowed;
  for (const auto& n : nodes_) {
    bool skipped = false;
    if (!n->bypass.empty())
      skipped = co_await bypasses_async(n->bypass, target, client, host, no_path);
    if (!skipped) allowed.push_back(n);
  }
  if (allowed.empty()) co_return nullptr;
  co_return pick(hash_key, allowed);
}

std::shared_ptr<Node> Hop::select_target(std::string_view hash_key, std::string_view network) {
  if (nodes_.empty()) return nullptr;
  if (!node_bypass_) return pick(hash_key, nodes_);
  std::vector<std::shared_ptr<Node>> allowed;
  for (const auto& n : nodes_)
    if (n->bypass.empty() || !policy::bypasses(n->bypass, network, n->addr)) allowed.push_back(n);
  if (allowed.empty()) return nullptr;
  return pick(hash_key, allowed);
}

awaitable<std::shared_ptr<Node>> Hop::select_target_async(std::string_view hash_key,
                                                          std::string_view network,
                                                          std::string_view client) {
  if (!plugin_bypass_) co_return select_target(hash_key, network);
  const std::string_view no_path;
  std::vector<std::shared_ptr<Node>> allowed;
  for (const auto& n : nodes_) {
    bool skipped = false;
    if (!n->bypass.empty()) {
      const RouteTarget target{.network = network, .addr = n->addr};
      skipped = co_await bypasses_async(n->bypass, target, client, n->addr, no_path);
    }
    if (!skipped) allowed.push_back(n);
  }
  if (allowed.empty()) co_return nullptr;
  co_return pick(hash_key, allowed);
}

std::shared_ptr<Node> Hop::pick(std::string_view hash_key,
                                const std::vector<std::shared_ptr<Node>>& allowed_nodes) {
  const auto* allowed = &allowed_nodes;
  if (allowed->size() == 1) return allowed->front();
  std::vector<Node*> live;
  live.reserve(allowed->size());
  for (auto& n : *allowed)
    if (!is_failed(*n)) live.push_back(n.get());
  // Last resort: every node failed → the first one, so a hop never goes dark.
  if (live.empty()) return allowed->front();
  // Backup nodes only when no primary remains.
  std::vector<Node*> primary;
  for (auto* n : live)
    if (!n->backup) primary.push_back(n);
  auto& pool = primary.empty() ? live : primary;

  Node* chosen = nullptr;
  switch (opts_.strategy) {
    case Strategy::fifo:
      chosen = pool.front();
      break;
    case Strategy::random: {
      int total = 0;
      for (auto* n : pool) total += std::max(n->weight, 1);
      int r = std::uniform_int_distribution<int>(0, total - 1)(rng);
      for (auto* n : pool) {
        r -= std::max(n->weight, 1);
        if (r < 0) {
          chosen = n;
          break;
        }
      }
      break;
    }
    case Strategy::hash:
      if (!hash_key.empty()) {
        chosen = pool[crc32_ieee(hash_key) % pool.size()];
        break;
      }
      chosen = pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(rng)];
      break;
    case Strategy::round:
      chosen = pool[counter_.fetch_add(1, std::memory_order_relaxed) % pool.size()];
      break;
  }
  for (auto& n : *allowed)
    if (n.get() == chosen) return n;
  return allowed->front();
}

awaitable<bool> bypasses_async(const policy::Bypasses& list, const RouteTarget& target,
                               std::string_view client, std::string_view host,
                               std::string_view path) {
  // Every member is asked, as GOST's group does (a plugin server sees each question).
  policy::BypassVotes votes;
  for (const auto& b : list) {
    if (const BypassPlugin* p = b->plugin()) {  // never a whitelist
      std::string network(target.network), addr(target.addr), c(client), h(host), pa(path);
      const bool result = co_await p->contains(std::move(network), std::move(addr), std::move(c),
                                               std::move(h), std::move(pa));
      votes.add(false, result);
      continue;
    }
    const auto rules = b->current();
    votes.add(rules->whitelist, rules->bypasses(target.network, target.addr, target.host));
  }
  co_return votes.bypassed();
}

awaitable<std::optional<std::string>> map_address_async(const HostsPlugin& plugin,
                                                        std::string_view addr,
                                                        std::string_view client) {
  auto hp = split_host_port(addr);
  if (!hp || hp->host.empty()) co_return std::nullopt;
  std::string network("ip"), host(hp->host), c(client);
  auto ips = co_await plugin.lookup(std::move(network), std::move(host), std::move(c));
  if (ips.empty()) co_return std::nullopt;
  co_return join_host_port(ips.front(), hp->port);
}

}  // namespace gost
