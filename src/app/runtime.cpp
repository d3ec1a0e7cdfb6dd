#include "app/runtime.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <set>

#include "app/connection.hpp"
#include "app/fleet_climiter.hpp"
#include "app/traffic_plugin.hpp"
#include "chain/chain.hpp"
#include "core/address.hpp"
#include "core/component.hpp"
#include "core/metrics.hpp"
#include "core/retirable.hpp"
#include "policy/admission.hpp"
#include "policy/bypass.hpp"
#include "policy/hosts.hpp"
#include "source/bind.hpp"
#include "source/loader.hpp"

namespace gost::app {
namespace {

using config::ConfigError;

// `x` and `xs` of a service, hop or node (`bypass` + `bypasses`, `admission` + `admissions`).
std::vector<std::string> names_of(const std::string& one, const std::vector<std::string>& many) {
  auto out = many;
  out.push_back(one);
  return out;
}

// Built limiters by name (docs/ARCHITECTURE.md "Limiters"). An apply() reuses the ones whose
// lines are unchanged, so that a service rebuilt for another reason keeps sharing its `$`
// budgets and counts with the others; a changed limiter is built anew and applies to new
// connections (the running ones keep the old). A limiter with sources keeps its loader while an
// entry holds it.
struct LimiterCache {
  template <class L>
  struct Entry {
    config::Limiter config;
    std::shared_ptr<policy::LimiterHolder<L>> built;  // null: no inline line, no source
  };
  std::map<std::string, Entry<policy::TrafficLimiter>> traffic;
  std::map<std::string, Entry<policy::ConnLimiter>> conn;
  std::map<std::string, Entry<policy::RateLimiter>> rate;
};

// An empty control of that name: the holder of a plugin (GOST's plugin replaces the rules).
template <class T>
T named(const std::string& name) {
  T t;
  t.name = name;
  return t;
}

class Builder {
 public:
  const config::Config& config() const { return cfg_; }
  Builder(const config::Config& cfg, const LimiterCache& previous)
      : cfg_(cfg), previous_(previous) {
    // Sources are read here the first time, then on the source thread (docs/ARCHITECTURE.md
    // "Sources"); a holder keeps its loader.
    for (const auto& a : cfg.authers) authers_.emplace(a.name, source::make_auther(a));
    for (const auto& h : cfg.hops) hops_.emplace(h.name, &h);
    // The controls (docs/PROTOCOLS.md "config: controls"): one holder per name, shared by every
    // service, hop and node that names it.
    // A `plugin` replaces a control's matchers and sources (go-gost/x config/parsing): its
    // holder has no rules of its own and carries the plugin (core/plugin.hpp).
    for (const auto& a : cfg.admissions)
      if (auto plugin = source::http_plugin(a.sources, "admission " + a.name,
                                            "clients are refused while it fails")) {
        auto h = std::make_shared<policy::Admission>(named<config::Admission>(a.name));
        h->set_plugin(std::make_shared<source::HttpAdmissionPlugin>(std::move(*plugin)));
        admissions_[a.name] = std::move(h);
      } else {
        admissions_[a.name] = source::with_sources(
            std::make_shared<policy::Admission>(a),
            source::loader_sources(a.sources, "admission " + a.name, "set"),
            log::root().with({{"kind", "admission"}, {"admission", a.name}}),
            [](policy::Admission& h, const source::Data& d) { h.update(d.lines); });
      }
    for (const auto& b : cfg.bypasses)
      if (auto plugin = source::http_plugin(b.sources, "bypass " + b.name,
                                            "targets are not bypassed while it fails")) {
        auto h = std::make_shared<policy::Bypass>(named<config::Bypass>(b.name));
        h->set_plugin(std::make_shared<source::HttpBypassPlugin>(std::move(*plugin)));
        bypasses_[b.name] = std::move(h);
      } else {
        bypasses_[b.name] = source::with_sources(
            std::make_shared<policy::Bypass>(b),
            source::loader_sources(b.sources, "bypass " + b.name, "set"),
            log::root().with({{"kind", "bypass"}, {"bypass", b.name}}),
            [](policy::Bypass& h, const source::Data& d) { h.update(d.lines); });
      }
    for (const auto& h : cfg.hosts)
      if (auto plugin = source::http_plugin(h.sources, "hosts " + h.name,
                                            "names are not mapped while it fails")) {
        auto holder = std::make_shared<policy::Hosts>(named<config::Hosts>(h.name));
        holder->set_plugin(std::make_shared<source::HttpHostsPlugin>(std::move(*plugin)));
        hosts_[h.name] = std::move(holder);
      } else {
        hosts_[h.name] = source::with_sources(
            std::make_shared<policy::Hosts>(h),
            source::loader_sources(h.sources, "hosts " + h.name, "set-or-list"),
            log::root().with({{"kind", "hosts"}, {"hosts", h.name}}),
            [](policy::Hosts& holder, const source::Data& d) {
              // "IP name [aliases...]" a line (go-gost/x hosts/hosts.go
              // parseLine).
              std::vector<config::HostMapping> mappings;
              for (const auto& line : d.lines)
                for (auto& m : policy::parse_hosts_line(line)) mappings.push_back(std::move(m));
              holder.update(mappings);
            });
      }
  }

  // Names were checked by reject_unbuilt(); empty names are skipped.
  policy::Admissions admissions(const std::vector<std::string>& names) const {
    return pick(admissions_, names);
  }
  policy::Bypasses bypasses(const std::vector<std::string>& names) const {
    return pick(bypasses_, names);
  }
  std::shared_ptr<const policy::Hosts> hosts(const std::string& name) const {
    auto it = hosts_.find(name);
    return it == hosts_.end() ? nullptr : it->second;
  }

  // Names were checked by reject_unbuilt(); an empty name is no limiter.
  std::shared_ptr<policy::TrafficLimiters> traffic_limiter(const std::string& name) {
    return limiter(cfg_.limiters, previous_.traffic, limiters_.traffic, "limiter", name);
  }
  std::shared_ptr<policy::ConnLimiters> conn_limiter(const std::string& name) {
    return limiter(cfg_.climiters, previous_.conn, limiters_.conn, "climiter", name);
  }
  std::shared_ptr<policy::RateLimiters> rate_limiter(const std::string& name) {
    return limiter(cfg_.rlimiters, previous_.rate, limiters_.rate, "rlimiter", name);
  }
  // The limiters of this configuration after apply(): those built or reused now, and the
  // unchanged ones that kept services hold.
  LimiterCache limiters() const {
    LimiterCache c = limiters_;
    auto keep = [](const auto& list, const auto& old, auto& now) {
      for (const auto& [name, e] : old)
        if (!now.contains(name))
          for (const auto& l : list)
            if (l.name == name && l == e.config) now.emplace(name, e);
    };
    keep(cfg_.limiters, previous_.traffic, c.traffic);
    keep(cfg_.climiters, previous_.conn, c.conn);
    keep(cfg_.rlimiters, previous_.rate, c.rate);
    return c;
  }

  const std::map<std::string, Auther>& authers() const { return authers_; }

  // The plugin of the traffic limiter `name`, when it has one (a grpc one is refused).
  std::optional<source::PluginOptions> traffic_plugin(const std::string& name) const {
    for (const auto& l : cfg_.limiters)
      if (l.name == name && !name.empty())
        return source::http_plugin(l.sources, "limiter " + name,
                                   "its connections are not limited while it fails");
    return std::nullopt;
  }

  std::shared_ptr<Chain> chain(const std::string& name, std::string_view where) {
    if (auto it = chains_.find(name); it != chains_.end()) return it->second;
    const config::Chain* found = nullptr;
    for (const auto& c : cfg_.chains)
      if (c.name == name) found = &c;
    if (!found) throw ConfigError(fmt::format("{}: chain \"{}\" is not defined", where, name));
    std::vector<std::shared_ptr<Hop>> hops;
    for (const auto& h : found->hops) hops.push_back(hop(resolve_hop(h, name), name));
    auto c = std::make_shared<Chain>(name, std::move(hops));
    chains_.emplace(name, c);
    return c;
  }

  std::shared_ptr<const Authenticator> authenticator(const config::Handler& h,
                                                     std::string_view where) {
    std::vector<Auther> list;
    auto names = h.authers;
    if (!h.auther.empty()) names.insert(names.begin(), h.auther);
    for (const auto& n : names) {
      auto it = authers_.find(n);
      if (it == authers_.end())
        throw ConfigError(fmt::format("{}: auther \"{}\" is not defined", where, n));
      list.push_back(it->second);
    }
    if (list.empty() && h.auth && !h.auth->username.empty()) {
      Auther single;
      single.add(h.auth->username, h.auth->password);
      list.push_back(std::move(single));
    }
    if (list.empty()) return nullptr;
    return std::make_shared<Authenticator>(std::move(list));
  }

  std::shared_ptr<Hop> forwarder(const config::Forwarder& f, std::string_view where) {
    std::vector<std::shared_ptr<Node>> nodes;
    const std::vector<config::ForwardNode>* list = &f.nodes;
    std::vector<config::ForwardNode> from_hop;
    std::string ref = !f.hop.empty() ? f.hop : f.name;
    if (list->empty() && !ref.empty()) {
      auto it = hops_.find(ref);
      if (it == hops_.end())
        throw ConfigError(fmt::format("{}: hop \"{}\" is not defined", where, ref));
      for (const auto& n : it->second->nodes)
        from_hop.push_back({.name = n.name,
                            .addr = n.addr,
                            .network = n.network,
                            .bypass = n.bypass,
                            .bypasses = n.bypasses,
                            .metadata = n.metadata});
      list = &from_hop;
    }
    for (const auto& fn : *list) {
      auto n = std::make_shared<Node>();
      n->name = fn.name;
      n->addr = fn.addr;
      node_selection_metadata(*n, fn.metadata);
      // Skipped when its bypass covers its own address (docs/PROTOCOLS.md "cli: forwarding").
      n->bypass = bypasses(names_of(fn.bypass, fn.bypasses));
      nodes.push_back(std::move(n));
    }
    return std::make_shared<Hop>("forwarder", std::move(nodes),
                                 selector_options(f.selector, std::string(where) + ".forwarder"));
  }

 private:
  const config::Hop& resolve_hop(const config::Hop& h, const std::string& chain_name) {
    if (!h.nodes.empty()) return h;
    auto it = hops_.find(h.name);
    if (it == hops_.end())
      throw ConfigError(
          fmt::format("chain {}: hop \"{}\" has no nodes and no top-level hop of that "
                      "name exists",
                      chain_name, h.name));
    return *it->second;
  }

  static void node_selection_metadata(Node& n, const config::Metadata& md) {
    n.max_fails = static_cast<int>(md.get_int("maxFails").value_or(0));
    n.fail_timeout = md.get_duration("failTimeout").value_or(std::chrono::nanoseconds(0));
    n.backup = md.get_bool("backup").value_or(false);
    n.weight = static_cast<int>(md.get_int("weight").value_or(1));
  }

  std::shared_ptr<Hop> hop(const config::Hop& h, const std::string& chain_name) {
    std::string hwhere = fmt::format("chain {} hop {}", chain_name, h.name);
    reject_unsupported(h.metadata, {"interface", "so_mark", "netns"}, hwhere);
    std::vector<std::shared_ptr<Node>> nodes;
    for (const auto& cn : h.nodes) {
      std::string nwhere = fmt::format("{} node {}", hwhere, cn.name);
      reject_unsupported(cn.metadata, {"interface", "so_mark", "netns"}, nwhere);
      auto n = std::make_shared<Node>();
      n->name = cn.name;
      n->addr = cn.addr;
      node_selection_metadata(*n, cn.metadata);
      std::string ctype = cn.connector.type.empty() ? "http" : cn.connector.type;
      std::string dtype = cn.dialer.type.empty() ? "tcp" : cn.dialer.type;
      auto* cf = ConnectorRegistry::find(ctype);
      if (!cf)
        throw ConfigError(fmt::format(
            "{}: connector \"{}\" is not supported by this implementation (connectors: {})", nwhere,
            ctype, registry_names<ConnectorRegistry>()));
      auto* df = DialerRegistry::find(dtype);
      if (!df)
        throw ConfigError(
            fmt::format("{}: dialer \"{}\" is not supported by this implementation (dialers: {})",
                        nwhere, dtype, registry_names<DialerRegistry>()));
      // Dialer http2 yields no byte stream, only HTTP/2 sessions for connector http2's CONNECT
      // (GOST's pair works the same way): any other connector on it would fail every tunnel.
      if ((dtype == "http2") != (ctype == "http2"))
        throw ConfigError(fmt::format(
            "{}: connector \"{}\" with dialer \"{}\": the HTTP/2 proxy mode pairs connector "
            "http2 with dialer http2 (-F http2://...); use dialer h2 to carry {} over HTTP/2",
            nwhere, ctype, dtype, ctype == "http2" ? "another connector" : ctype));
      // Dialer h3-masque likewise yields only HTTP/3 connections for connector masque's CONNECTs.
      if ((dtype == "h3-masque") != (ctype == "masque"))
        throw ConfigError(fmt::format(
            "{}: connector \"{}\" with dialer \"{}\": MASQUE pairs connector masque with dialer "
            "h3-masque (-F masque+h3-masque://...)",
            nwhere, ctype, dtype));
      // PROXY protocol toward the node (docs/PROTOCOLS.md "PROXY protocol"): the node's own
      // `proxyProtocol`, else the hop's (GOST copies hop metadata into its nodes).
      auto pp = cn.metadata.get_int("proxyProtocol");
      if (!pp) pp = h.metadata.get_int("proxyProtocol");
      // 1 is v1; any other positive version is v2 (pires' HeaderProxyFromAddrs).
      n->proxy_protocol = static_cast<int>(std::clamp<std::int64_t>(pp.value_or(0), 0, 2));
      // The header goes between dial() and handshake(); a multiplexing dialer opens its pooled
      // sessions inside connect(), where there is no such point.
      if (n->proxy_protocol > 0 && dtype != "tcp" && dtype != "tls" && dtype != "ws" &&
          dtype != "wss")
        throw ConfigError(fmt::format(
            "{}: proxyProtocol is not supported with dialer \"{}\" (only tcp, tls, ws, wss)",
            nwhere, dtype));
      n->connector = (*cf)(ConnectorOptions{cn.connector, cn.addr});
      n->dialer = (*df)(DialerOptions{cn.dialer, cn.addr, chain_name, cn.name});
      n->bypass = bypasses(names_of(cn.bypass, cn.bypasses));
      n->hosts = hosts(cn.hosts.empty() ? h.hosts : cn.hosts);  // a node inherits its hop's
      nodes.push_back(std::move(n));
    }
    return std::make_shared<Hop>(h.name, std::move(nodes), selector_options(h.selector, hwhere),
                                 bypasses(names_of(h.bypass, h.bypasses)));
  }

  template <class T>
  static std::vector<std::shared_ptr<const T>> pick(
      const std::map<std::string, std::shared_ptr<T>>& all, const std::vector<std::string>& names) {
    std::vector<std::shared_ptr<const T>> out;
    for (const auto& n : names)
      if (auto it = all.find(n); !n.empty() && it != all.end()) out.push_back(it->second);
    return out;
  }

  template <class L>
  std::shared_ptr<policy::LimiterHolder<L>> limiter(
      const std::vector<config::Limiter>& list,
      const std::map<std::string, LimiterCache::Entry<L>>& previous,
      std::map<std::string, LimiterCache::Entry<L>>& built, const char* kind,
      const std::string& name) {
    if (name.empty()) return nullptr;
    if (auto it = built.find(name); it != built.end()) return it->second.built;
    const config::Limiter* found = nullptr;
    for (const auto& l : list)
      if (l.name == name) found = &l;
    if (!found) return nullptr;                 // reject_unbuilt() names it first
    if (found->sources.plugin) return nullptr;  // a plugin replaces the lines (traffic_plugin())
    if (auto it = previous.find(name); it != previous.end() && it->second.config == *found)
      return built.emplace(name, it->second).first->second.built;
    const std::string where = fmt::format("{} {}", kind, name);
    auto logger = log::root().with("kind", kind).with(kind, name);
    auto warn = [logger, where](const std::vector<std::string>& ignored) {
      for (const auto& line : ignored)
        logger.warn(fmt::format("{}: limit \"{}\" ignored (GOST ignores it too)", where, line));
    };
    auto holder = std::make_shared<policy::LimiterHolder<L>>(found->limits);
    warn(holder->update({}));
    // Lines from `file`, `redis` (a set, or a list with `type: list`) and `http`, read now and
    // every `reload` (go-gost/x limiter/traffic, conn, rate: load() and parsing's RedisSetLoader
    // or RedisListLoader); only a change reaches update().
    auto sources = source::loader_sources(found->sources, where, "set-or-list");
    const bool has_sources = !sources.empty();
    // A change warns about the loaded lines it ignores (the inline ones were warned about above).
    holder = source::with_sources(
        std::move(holder), std::move(sources), logger,
        [warn, inline_lines = found->limits](policy::LimiterHolder<L>& h, const source::Data& d) {
          auto ignored = h.update(d.lines);
          std::erase_if(ignored, [&](const std::string& line) {
            return std::find(inline_lines.begin(), inline_lines.end(), line) != inline_lines.end();
          });
          warn(ignored);
        });
    if (!has_sources && !holder->current()) holder.reset();
    built.emplace(name, LimiterCache::Entry<L>{*found, holder});
    return holder;
  }

  const config::Config& cfg_;
  const LimiterCache& previous_;
  LimiterCache limiters_;
  // Not const: a source (src/source/) updates a holder in place.
  std::map<std::string, std::shared_ptr<policy::Admission>> admissions_;
  std::map<std::string, std::shared_ptr<policy::Bypass>> bypasses_;
  std::map<std::string, std::shared_ptr<policy::Hosts>> hosts_;
  std::map<std::string, Auther> authers_;
  std::map<std::string, const config::Hop*> hops_;
  std::map<std::string, std::shared_ptr<Chain>> chains_;
};

// ---- what changed ------------------------------------------------------------------------

template <class T>
const T* by_name(const std::vector<T>& list, const std::string& name) {
  for (const auto& x : list)
    if (x.name == name) return &x;
  return nullptr;
}

template <class T>
bool same_named(const std::vector<T>& a, const std::vector<T>& b, const std::string& name) {
  const T* x = by_name(a, name);
  const T* y = by_name(b, name);
  return (!x && !y) || (x && y && *x == *y);
}

template <class T>
bool same_all(const std::vector<T>& a, const std::vector<T>& b,
              const std::vector<std::string>& names) {
  for (const auto& n : names)
    if (!n.empty() && !same_named(a, b, n)) return false;
  return true;
}

// The bypasses and hosts a hop and its nodes name (docs/PROTOCOLS.md "config: controls").
bool same_hop_references(const config::Hop& h, const config::Config& a, const config::Config& b) {
  if (!same_all(a.bypasses, b.bypasses, names_of(h.bypass, h.bypasses))) return false;
  if (!same_all(a.hosts, b.hosts, {h.hosts})) return false;
  for (const auto& n : h.nodes) {
    if (!same_all(a.bypasses, b.bypasses, names_of(n.bypass, n.bypasses))) return false;
    if (!same_all(a.hosts, b.hosts, {n.hosts})) return false;
  }
  return true;
}

// Everything a service refers to by name and binds when it is built. (Loggers are looked up by
// name at each line: a logger change needs no rebuild.)
bool same_references(const config::Service& s, const config::Config& a, const config::Config& b) {
  for (const std::string* name : {&s.handler.chain, &s.listener.chain}) {
    if (name->empty()) continue;
    if (!same_named(a.chains, b.chains, *name)) return false;
    if (const auto* chain = by_name(b.chains, *name))
      for (const auto& h : chain->hops) {
        if (h.nodes.empty() && !same_named(a.hops, b.hops, h.name)) return false;
        const config::Hop* used = h.nodes.empty() ? by_name(b.hops, h.name) : &h;
        if (used && !same_hop_references(*used, a, b)) return false;
      }
  }
  if (s.forwarder) {
    const std::string& ref = !s.forwarder->hop.empty() ? s.forwarder->hop : s.forwarder->name;
    if (!ref.empty() && !same_named(a.hops, b.hops, ref)) return false;
    if (const auto* h = ref.empty() ? nullptr : by_name(b.hops, ref))
      if (!same_hop_references(*h, a, b)) return false;
    for (const auto& n : s.forwarder->nodes)
      if (!same_all(a.bypasses, b.bypasses, names_of(n.bypass, n.bypasses))) return false;
  }
  if (!same_all(a.authers, b.authers, names_of(s.handler.auther, s.handler.authers))) return false;
  if (!same_all(a.admissions, b.admissions, names_of(s.admission, s.admissions))) return false;
  if (!same_all(a.bypasses, b.bypasses, names_of(s.bypass, s.bypasses))) return false;
  if (!same_all(a.hosts, b.hosts, {s.hosts})) return false;
  // The tunnel handler's `ingress` option names an `ingresses[]` entry (docs/PROTOCOLS.md
  // "tunnel: ingress").
  if (auto ingress = s.handler.metadata.get_string("ingress");
      ingress && !ingress->empty() && !same_named(a.ingresses, b.ingresses, *ingress))
    return false;
  if (!same_all(a.limiters, b.limiters, {s.limiter, s.handler.limiter})) return false;
  if (!same_all(a.climiters, b.climiters, {s.climiter})) return false;
  return same_all(a.rlimiters, b.rlimiters, {s.rlimiter});
}

// ---- what is not built yet -------------------------------------------------------------------

// Sections and keys the model holds that this implementation does not carry out yet: refused by
// name, never silently ignored (docs/ARCHITECTURE.md "Errors, limits and logs").
// `file`, `redis`, `http` and `reload` are read by src/source/ for authers, admissions, bypasses,
// hosts and limiters; `plugin` for authers, admissions, bypasses, hosts and traffic limiters
// (a service's, not a handler's client scope), not for climiters and rlimiters.
// GOST has no connection or request-rate limiter plugin (go-gost/x limiter/conn and
// limiter/rate; its config parsing ignores the block): refused rather than ignored.
void reject_plugin(const config::Sources& s, const std::string& where) {
  if (s.plugin)
    throw ConfigError(fmt::format(
        "{}: plugin: GOST has no plugin for this limiter (only traffic limiters take one)", where));
}

template <class T>
void check_defined(const std::vector<T>& list, const std::vector<std::string>& names,
                   const char* kind, const std::string& where) {
  for (const auto& n : names)
    if (!n.empty() && !by_name(list, n))
      throw ConfigError(fmt::format("{}: {} \"{}\" is not defined", where, kind, n));
}

void check_hop_references(const config::Hop& h, const config::Config& c, const std::string& where) {
  check_defined(c.bypasses, names_of(h.bypass, h.bypasses), "bypass", where);
  check_defined(c.hosts, {h.hosts}, "hosts", where);
  for (const auto& n : h.nodes) {
    const std::string nwhere = fmt::format("{} node {}", where, n.name);
    check_defined(c.bypasses, names_of(n.bypass, n.bypasses), "bypass", nwhere);
    check_defined(c.hosts, {n.hosts}, "hosts", nwhere);
  }
}

// GOST registers every named object per kind: a second object of one name is a load error.
template <class T>
void check_unique(const std::vector<T>& list, const char* section) {
  std::set<std::string> seen;
  for (const auto& x : list)
    if (!seen.insert(x.name).second)
      throw ConfigError(fmt::format("{}: duplicate name \"{}\"", section, x.name));
}

void reject_unbuilt(const config::Config& c) {
  check_unique(c.admissions, "admissions");
  check_unique(c.bypasses, "bypasses");
  check_unique(c.hosts, "hosts");
  check_unique(c.limiters, "limiters");
  check_unique(c.climiters, "climiters");
  check_unique(c.rlimiters, "rlimiters");
  for (const auto& l : c.limiters)  // type http only, checked even when no service names it
    (void)source::http_plugin(l.sources, "limiter " + l.name, "");
  for (const auto& l : c.climiters) reject_plugin(l.sources, "climiter " + l.name);
  for (const auto& l : c.rlimiters) reject_plugin(l.sources, "rlimiter " + l.name);
  for (const auto& s : c.services) {
    const std::string where = "service " + s.name;
    check_defined(c.admissions, names_of(s.admission, s.admissions), "admission", where);
    check_defined(c.bypasses, names_of(s.bypass, s.bypasses), "bypass", where);
    check_defined(c.hosts, {s.hosts}, "hosts", where);
    check_defined(c.limiters, {s.limiter, s.handler.limiter}, "limiter", where);
    check_defined(c.climiters, {s.climiter}, "climiter", where);
    check_defined(c.rlimiters, {s.rlimiter}, "rlimiter", where);
    if (s.forwarder)
      for (const auto& n : s.forwarder->nodes)
        check_defined(c.bypasses, names_of(n.bypass, n.bypasses), "bypass",
                      fmt::format("{} forwarder node {}", where, n.name));
  }
  for (const auto& ch : c.chains)
    for (const auto& h : ch.hops)
      check_hop_references(h, c, fmt::format("chain {} hop {}", ch.name, h.name));
  for (const auto& h : c.hops) check_hop_references(h, c, "hop " + h.name);
}

// Services are matched by name; a repeated name is told apart by its occurrence.
std::vector<std::string> service_keys(const config::Config& c) {
  std::map<std::string, int> seen;
  std::vector<std::string> keys;
  for (const auto& s : c.services) {
    int n = seen[s.name]++;
    keys.push_back(n == 0 ? s.name : fmt::format("{}#{}", s.name, n));
  }
  return keys;
}

// ---- running services ----------------------------------------------------------------------

struct ServiceInstance {
  config::Service config;  // listeners may keep a pointer to its metadata: never moved
  std::string key;
  std::shared_ptr<Handler> handler;
  std::vector<std::shared_ptr<Listener>> listeners;  // one per worker
  log::Logger log;
  std::string address;  // as bound, e.g. "[::]:8080"
  std::shared_ptr<const policy::Admissions> admissions;
  ServiceLimiters limiters;
  std::int64_t created = 0;
  bool serving = false;
  // A reload's replacement took its listening sockets over: its listeners close without a grace
  // (no connection can meet them closing; the new configuration serves at once).
  bool handed_over = false;
};

// The addresses our own replaced or removed services hold, with their service.
using Released = std::map<std::string, ServiceInstance*>;

std::unique_ptr<ServiceInstance> build_service(const config::Service& sc, Builder& builder,
                                               const std::vector<asio::io_context*>& workers,
                                               Released& released) {
  auto rt = std::make_unique<ServiceInstance>();
  rt->config = sc;
  std::string where = fmt::format("service {}", sc.name);
  // Service metadata keys GOST reads that this implementation does not implement.
  reject_unsupported(sc.metadata,
                     {"interface", "so_mark", "netns", "netns.out", "preUp", "postUp", "preDown",
                      "postDown", "enableStats", "observer.period", "observePeriod", "labels"},
                     where);
  // GOST's forward handlers send a PROXY header to their target from the handler's own
  // `proxyProtocol`; a service's is read by its listener (docs/PROTOCOLS.md "PROXY protocol").
  if (sc.handler.metadata.get_int("proxyProtocol").value_or(0) > 0)
    throw ConfigError(fmt::format(
        "{}: handler option proxyProtocol (a PROXY header to the forwarding target) is not "
        "supported by this implementation",
        where));
  std::string htype = sc.handler.type.empty() ? "auto" : sc.handler.type;
  std::string ltype = sc.listener.type.empty() ? "tcp" : sc.listener.type;
  auto* hf = HandlerRegistry::find(htype);
  if (!hf)
    throw ConfigError(
        fmt::format("{}: handler \"{}\" is not supported by this implementation (handlers: {})",
                    where, htype, registry_names<HandlerRegistry>()));
  auto* lf = ListenerRegistry::find(ltype);
  if (!lf)
    throw ConfigError(
        fmt::format("{}: listener \"{}\" is not supported by this implementation (listeners: {})",
                    where, ltype, registry_names<ListenerRegistry>()));
  // A listener's own chain is what the reverse listeners bind through (docs/PROTOCOLS.md "rtcp
  // and rudp"); no other listener of ours dials out.
  const bool reverse = ltype == "rtcp" || ltype == "rudp";
  if (!sc.listener.chain.empty() && !reverse)
    throw ConfigError(
        fmt::format("{}: listener chains are not supported (listener {})", where, ltype));

  rt->log =
      log::service_logger(sc.logger, sc.loggers)
          .with(
              {{"kind", "service"}, {"service", sc.name}, {"handler", htype}, {"listener", ltype}});

  RouterOptions ro;
  if (!sc.handler.chain.empty() && !sc.metadata.get_bool("ignoreChain").value_or(false))
    ro.chain = builder.chain(sc.handler.chain, where);
  ro.retries = sc.handler.retries;
  // The command line's `?admission=`, `?bypass=`, `?hosts=` stay in the service and listener
  // metadata as GOST leaves them (docs/PROTOCOLS.md "cli: query keys"): looked up here, so that
  // they are not reported as unknown options.
  for (const char* key : {"admission", "bypass", "hosts", "climiter", "rlimiter", "limiter.in",
                          "limiter.out", "limiter.conn.in", "limiter.conn.out"}) {
    (void)sc.metadata.contains(key);
    (void)sc.listener.metadata.contains(key);
  }
  ro.bypass = builder.bypasses(names_of(sc.bypass, sc.bypasses));
  ro.hosts = builder.hosts(sc.hosts);
  rt->admissions = std::make_shared<const policy::Admissions>(
      builder.admissions(names_of(sc.admission, sc.admissions)));
  if (auto d = sc.metadata.get_duration("dialTimeout"); d && d->count() > 0) ro.dial_timeout = *d;
  // Limiters (docs/ARCHITECTURE.md "Limiters"): the service's, applied per connection.
  rt->limiters.traffic = builder.traffic_limiter(sc.limiter);
  rt->limiters.conn = builder.conn_limiter(sc.climiter);
  rt->limiters.rate = builder.rate_limiter(sc.rlimiter);
  if (auto plugin = builder.traffic_plugin(sc.limiter)) {
    // go-gost/x config/parsing/service: the cache's refresh period and scope filter.
    auto refresh = sc.metadata.get_duration("limiter.refreshInterval");
    auto scope = sc.metadata.get_string("limiter.scope").value_or("");
    if (!scope.empty() && scope != "service" && scope != "conn")
      throw ConfigError(fmt::format(
          "{}: limiter.scope \"{}\": not supported with a plugin limiter (service, conn)", where,
          scope));
    rt->limiters.traffic_plugin = std::make_shared<TrafficPluginLimiter>(
        std::move(*plugin), sc.name, scope, refresh.value_or(std::chrono::nanoseconds(0)));
  }
  // Ours: the climiter's counts held across a fleet in Redis (app/fleet_climiter.hpp).
  if (auto addr = sc.metadata.get_string("climiter.redis"); addr && !addr->empty()) {
    if (!rt->limiters.conn)
      throw ConfigError(fmt::format(
          "{}: climiter.redis: the service has no climiter with limits to count", where));
    auto hp = split_host_port(*addr);
    if (!hp || hp->host.empty() || hp->port.empty())
      throw ConfigError(fmt::format("{}: climiter.redis \"{}\": want host:port", where, *addr));
    FleetConnCounter::Options fo;
    fo.redis.addr = *addr;
    fo.redis.db = static_cast<int>(sc.metadata.get_int("climiter.redis.db").value_or(0));
    fo.redis.username = sc.metadata.get_string("climiter.redis.username").value_or("");
    fo.redis.password = sc.metadata.get_string("climiter.redis.password").value_or("");
    fo.redis.key = sc.metadata.get_string("climiter.redis.key").value_or("gost:climiter");
    fo.service = sc.name;
    auto ttl = sc.metadata.get_duration("climiter.redis.ttl").value_or(std::chrono::seconds(30));
    fo.ttl = std::max<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(ttl), std::chrono::seconds(1));
    rt->limiters.conn_fleet = FleetConnCounter::make(std::move(fo));
  }
  if (auto plugin = builder.traffic_plugin(sc.handler.limiter)) {
    // GOST's client scope: the handler's tunnels, per authenticated client (go-gost/x handlers
    // wrap the client's connection after authentication; we limit the tunnel the router dials).
    auto refresh = sc.metadata.get_duration("limiter.refreshInterval");
    auto lim = std::make_shared<TrafficPluginLimiter>(
        std::move(*plugin), sc.name, "client", refresh.value_or(std::chrono::nanoseconds(0)));
    ro.client_limiter = [lim](std::string network, std::string src, std::string addr,
                              std::string client) {
      return lim->for_connection(std::move(network), std::move(src), std::move(addr),
                                 std::move(client));
    };
  } else if (builder.traffic_limiter(sc.handler.limiter))
    rt->log.warn(fmt::format(
        "{}: handler limiter \"{}\" has no effect: GOST applies a handler's limiter per client "
        "(plugin limiters only); name it on the service to limit its connections",
        where, sc.handler.limiter));

  HandlerOptions ho;
  ho.service = sc.name;
  ho.config = sc.handler;
  ho.service_metadata = sc.metadata;
  ho.router = std::make_shared<Router>(ro);
  ho.auth = builder.authenticator(sc.handler, where);
  if (sc.forwarder) ho.forwarder = builder.forwarder(*sc.forwarder, where);
  ho.log = rt->log;
  ho.workers = workers;
  ho.ingresses = builder.config().ingresses;
  if (ho.auth && (htype == "tcp" || htype == "forward"))
    rt->log.warn(
        fmt::format("{}: handler {} has no authentication: auth is ignored", where, htype));
  rt->handler = (*hf)(ho);

  ListenerOptions lo;
  if (reverse && !sc.listener.chain.empty()) {
    RouterOptions lro;
    lro.chain = builder.chain(sc.listener.chain, where);
    lro.dial_timeout = ro.dial_timeout;
    lo.router = std::make_shared<Router>(lro);
  }
  lo.addr = sc.addr;
  lo.config = sc.listener;
  lo.service_metadata = &rt->config.metadata;
  lo.service = sc.name;
  lo.handler = htype;
  lo.log = rt->log;
  // A reload that keeps the address: each worker's new listener takes the old one's socket over
  // (no connection queued meanwhile is lost); an ephemeral port is chosen anew.
  auto old = released.find(lo.addr);
  const bool inherit = old != released.end() && old->second->listeners.size() == workers.size() &&
                       !lo.addr.ends_with(":0");
  bool handed_over = inherit;
  for (auto* w : workers) {
    lo.first = rt->listeners.empty();
    lo.check_free = lo.first && old == released.end();
    if (inherit) lo.inherit = old->second->listeners[rt->listeners.size()]->share_socket();
    handed_over = handed_over && lo.inherit.has_value();
    rt->listeners.push_back((*lf)(*w, lo));
    lo.inherit.reset();
    // An ephemeral port (":0") is chosen by the first bind; the others join it.
    if (rt->listeners.size() == 1 && lo.addr.ends_with(":0")) {
      auto bound = rt->listeners.front()->bound_address();
      lo.addr = lo.addr.substr(0, lo.addr.size() - 1) + bound.substr(bound.rfind(':') + 1);
    }
  }
  // Every old socket has a new holder now (a TCP listener took it; a QUIC one ignores it).
  if (handed_over && rt->listeners.front()->share_socket()) old->second->handed_over = true;
  rt->address = rt->listeners.front()->bound_address();
  // The PROXY header is read on TCP connections (listener/tcp.cpp): a QUIC listener has no byte
  // stream in front of its handshake to carry one.
  if (sc.metadata.get_int("proxyProtocol").value_or(0) > 0 &&
      rt->listeners.front()->network() != "tcp")
    throw ConfigError(fmt::format(
        "{}: proxyProtocol is not supported with listener {} (PROXY headers come on TCP)", where,
        ltype));
  rt->created = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  return rt;
}

// GOST ignores option keys it does not know; so do we, but say so once per key: a typo
// (`?keepAlive=ture` is fine, `?keeplive=true` is not) should not go unnoticed.
void warn_unknown_keys(const config::Config& cfg, const std::vector<const config::Service*>& built,
                       const config::MetadataKeyLog& seen) {
  std::vector<std::string> warned;
  auto check = [&](const config::Metadata& md, const std::string& where) {
    for (const auto& [key, value] : md.entries) {
      if (seen.seen(key) || std::find(warned.begin(), warned.end(), key) != warned.end()) continue;
      warned.push_back(key);
      log::root().warn(fmt::format("{}: unknown option \"{}\" ignored", where, key));
    }
  };
  for (const auto* sc : built) {
    std::string where = fmt::format("service {}", sc->name);
    check(sc->metadata, where);
    check(sc->handler.metadata, where);
    check(sc->listener.metadata, where);
  }
  for (const auto& c : cfg.chains) {
    // Only chains a service uses were built (and read their options).
    bool used = std::any_of(built.begin(), built.end(), [&](const auto* sc) {
      return sc->handler.chain == c.name || sc->listener.chain == c.name;
    });
    if (!used) continue;
    for (const auto& h : c.hops) {
      for (const auto& n : h.nodes) {
        std::string where = fmt::format("chain {} hop {} node {}", c.name, h.name, n.name);
        check(n.metadata, where);
        check(n.connector.metadata, where);
        check(n.dialer.metadata, where);
      }
    }
  }
}

// Closes a listener on its own worker after `grace`: the handshakes a replaced listener had in
// progress before its replacement took the new connections over finish meanwhile (a listener
// closed under them resets them). The coroutine holds the last reference the runtime had, so the
// listener also goes away there once its accept loop and connections are done.
awaitable<void> close_after(std::shared_ptr<Listener> listener, std::chrono::milliseconds grace) {
  if (grace.count() > 0) {
    asio::steady_timer t(co_await asio::this_coro::executor, grace);
    co_await t.async_wait(use_nothrow);
  }
  listener->close();
}

void retire(asio::io_context& worker, std::shared_ptr<Listener> l,
            std::chrono::milliseconds grace) {
  asio::co_spawn(worker, close_after(std::move(l), grace), asio::detached);
}

}  // namespace

ServicePlan plan_services(const config::Config& running, const config::Config& next) {
  ServicePlan plan;
  const bool tls_same = running.tls == next.tls;
  auto old_keys = service_keys(running);
  auto new_keys = service_keys(next);
  for (std::size_t i = 0; i < next.services.size(); ++i) {
    auto it = std::find(old_keys.begin(), old_keys.end(), new_keys[i]);
    if (it == old_keys.end()) {
      plan.added.push_back(new_keys[i]);
      continue;
    }
    const auto& old = running.services[static_cast<std::size_t>(it - old_keys.begin())];
    bool same = tls_same && old == next.services[i] && same_references(old, running, next);
    (same ? plan.kept : plan.changed).push_back(new_keys[i]);
  }
  for (const auto& k : old_keys)
    if (std::find(new_keys.begin(), new_keys.end(), k) == new_keys.end()) plan.removed.push_back(k);
  return plan;
}

// How long a replaced or removed service's listeners stay open once the new ones serve.
constexpr std::chrono::milliseconds kRetireGrace{200};

struct Runtime::Impl {
  std::vector<asio::io_context*> workers;
  mutable std::mutex mu;
  config::Config config;
  std::vector<std::unique_ptr<ServiceInstance>> services;
  LimiterCache limiters;
  // The authers of the running configuration, sources and plugins included: what @api and
  // @metrics check (Runtime::authenticate).
  std::map<std::string, Auther> authers;
  bool started = false;

  void serve(ServiceInstance& s) {
    for (std::size_t i = 0; i < s.listeners.size(); ++i)
      asio::co_spawn(
          *workers[i],
          accept_loop(s.listeners[i], s.handler, s.log, s.config.name, s.admissions, s.limiters),
          asio::detached);
    s.serving = true;
  }

  void close(ServiceInstance& s, std::chrono::milliseconds grace = {}) {
    for (std::size_t i = 0; i < s.listeners.size(); ++i) retire(*workers[i], s.listeners[i], grace);
    s.listeners.clear();
    // A handler with state of its own beyond its connections (core/retirable.hpp).
    if (auto* r = dynamic_cast<Retirable*>(s.handler.get())) r->retire();
  }
};

Runtime::Runtime(std::vector<asio::io_context*> workers) : impl_(new Impl) {
  impl_->workers = std::move(workers);
}

Runtime::~Runtime() = default;

ServicePlan Runtime::apply(const config::Config& next) {
  std::lock_guard lock(impl_->mu);
  return apply_locked(next);
}

ServicePlan Runtime::update(const std::function<void(config::Config&)>& change) {
  std::lock_guard lock(impl_->mu);
  config::Config next = impl_->config;
  change(next);
  return apply_locked(next);
}

ServicePlan Runtime::apply_locked(const config::Config& next) {
  auto& im = *impl_;
  reject_unbuilt(next);
  ServicePlan plan = plan_services(im.config, next);
  auto new_keys = service_keys(next);
  std::map<std::string, ServiceInstance*> running;
  for (auto& s : im.services) running.emplace(s->key, s.get());
  // Addresses our own replaced or removed services hold: a new listener may bind beside them.
  Released released;
  for (const auto* keys : {&plan.changed, &plan.removed})
    for (const auto& k : *keys) released.emplace(running.at(k)->config.addr, running.at(k));

  std::vector<std::unique_ptr<ServiceInstance>> built;
  std::vector<std::unique_ptr<ServiceInstance>> next_services;
  LimiterCache next_limiters;
  std::map<std::string, Auther> next_authers;
  {
    config::MetadataKeyLog key_log;
    Builder builder(next, im.limiters);
    std::vector<const config::Service*> built_configs;
    try {
      for (std::size_t i = 0; i < next.services.size(); ++i) {
        if (std::find(plan.kept.begin(), plan.kept.end(), new_keys[i]) != plan.kept.end()) continue;
        auto s = build_service(next.services[i], builder, im.workers, released);
        s->key = new_keys[i];
        built_configs.push_back(&s->config);
        built.push_back(std::move(s));
      }
    } catch (...) {
      for (auto& s : built) im.close(*s);  // bound, never served: nothing was touched
      for (auto& s : im.services) s->handed_over = false;
      throw;
    }
    warn_unknown_keys(next, built_configs, key_log);
    next_limiters = builder.limiters();
    next_authers = builder.authers();
  }
  // Committed: the new services in configuration order, the kept ones as they are.
  for (const auto& key : new_keys) {
    auto b =
        std::find_if(built.begin(), built.end(), [&](const auto& s) { return s && s->key == key; });
    if (b != built.end()) {
      next_services.push_back(std::move(*b));
      continue;
    }
    auto o = std::find_if(im.services.begin(), im.services.end(),
                          [&](const auto& s) { return s && s->key == key; });
    next_services.push_back(std::move(*o));
  }
  for (auto& s : next_services) {
    if (s->serving || s->listeners.empty()) continue;
    s->log.info(fmt::format("listening on {}/{}", s->address, s->listeners.front()->network()));
    if (im.started) im.serve(*s);
  }
  // The old instances of changed services and the removed ones: their replacements accept now.
  std::int64_t gone = 0;
  for (auto& s : im.services) {
    if (!s) continue;
    s->log.debug(fmt::format("service {} shutdown", s->config.name));
    im.close(*s, s->handed_over ? std::chrono::milliseconds(0) : kRetireGrace);
    ++gone;
  }
  if (auto* m = metrics::global(); m && im.started)
    m->add_services(static_cast<std::int64_t>(built.size()) - gone);
  im.services = std::move(next_services);
  im.config = next;
  im.limiters = std::move(next_limiters);
  im.authers = std::move(next_authers);
  return plan;
}

void Runtime::start() {
  std::lock_guard lock(impl_->mu);
  impl_->started = true;
  for (auto& s : impl_->services)
    if (!s->serving) impl_->serve(*s);
  if (auto* m = metrics::global())
    m->add_services(static_cast<std::int64_t>(impl_->services.size()));
}

void Runtime::stop() {
  std::lock_guard lock(impl_->mu);
  for (auto& s : impl_->services) impl_->close(*s);
  if (auto* m = metrics::global(); m && impl_->started)
    m->add_services(-static_cast<std::int64_t>(impl_->services.size()));
  impl_->services.clear();
  impl_->started = false;
}

config::Config Runtime::config() const {
  std::lock_guard lock(impl_->mu);
  return impl_->config;
}

std::optional<bool> Runtime::authenticate(const std::string& auther, const std::string& user,
                                          const std::string& password, const std::string& service,
                                          const std::string& client) const {
  Auther a;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->authers.find(auther);
    if (it == impl_->authers.end()) return std::nullopt;
    a = it->second;
  }
  if (!a.plugin()) return a.authenticate(user, password).has_value();
  // The plugin's question runs on the source thread; its own timeout bounds the wait.
  const Authenticator one({a});
  auto answer =
      asio::co_spawn(source::executor(), one.authenticate_async(service, user, password, client),
                     asio::use_future);
  try {
    return answer.get().has_value();
  } catch (const std::exception&) {
    return false;
  }
}

std::vector<Runtime::Status> Runtime::status() const {
  std::lock_guard lock(impl_->mu);
  std::vector<Status> out;
  for (const auto& s : impl_->services) out.push_back({s->config.name, s->created, s->address});
  return out;
}

}  // namespace gost::app
