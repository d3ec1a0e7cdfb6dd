#include "app/program.hpp"

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <map>
#include <thread>

#include "app/metrics_server.hpp"
#include "chain/chain.hpp"
#include "core/component.hpp"
#include "core/memory.hpp"
#include "core/metrics.hpp"
#include "core/tcp_stream.hpp"
#include "core/xid.hpp"
#include "net/tls.hpp"

namespace gost::app {
namespace {

using config::ConfigError;

struct ServiceRuntime {
  std::string name;
  std::shared_ptr<Handler> handler;
  std::vector<std::unique_ptr<Listener>> listeners;  // one per worker
  log::Logger log;
};

class Builder {
 public:
  explicit Builder(const config::Config& cfg) : cfg_(cfg) {
    for (const auto& a : cfg.authers) {
      Auther auther;
      for (const auto& u : a.auths) auther.add(u.username, u.password);
      authers_.emplace(a.name, std::move(auther));
    }
    for (const auto& h : cfg.hops) hops_.emplace(h.name, &h);
  }

  std::shared_ptr<Chain> chain(const std::string& name, std::string_view where) {
    if (auto it = chains_.find(name); it != chains_.end()) return it->second;
    const config::Chain* found = nullptr;
    for (const auto& c : cfg_.chains)
      if (c.name == name) found = &c;
    if (!found) throw ConfigError(fmt::format("{}: chain \"{}\" is not defined", where, name));
    std::vector<std::shared_ptr<Hop>> hops;
    for (const auto& h : found->hops) hops.push_back(hop(resolve_hop(h, name), "chain " + name));
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
        from_hop.push_back({n.name, n.addr, n.network, n.metadata});
      list = &from_hop;
    }
    for (const auto& fn : *list) {
      auto n = std::make_shared<Node>();
      n->name = fn.name;
      n->addr = fn.addr;
      node_selection_metadata(*n, fn.metadata);
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

  std::shared_ptr<Hop> hop(const config::Hop& h, const std::string& where) {
    std::string hwhere = fmt::format("{} hop {}", where, h.name);
    reject_unsupported(h.metadata, {"interface", "so_mark", "proxyProtocol", "netns"}, hwhere);
    std::vector<std::shared_ptr<Node>> nodes;
    for (const auto& cn : h.nodes) {
      std::string nwhere = fmt::format("{} node {}", hwhere, cn.name);
      reject_unsupported(cn.metadata, {"interface", "so_mark", "proxyProtocol", "netns"}, nwhere);
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
      n->connector = (*cf)(ConnectorOptions{cn.connector, cn.addr});
      n->dialer = (*df)(DialerOptions{cn.dialer, cn.addr});
      nodes.push_back(std::move(n));
    }
    return std::make_shared<Hop>(h.name, std::move(nodes), selector_options(h.selector, hwhere));
  }

  const config::Config& cfg_;
  std::map<std::string, Auther> authers_;
  std::map<std::string, const config::Hop*> hops_;
  std::map<std::string, std::shared_ptr<Chain>> chains_;
};

awaitable<void> serve_connection(Listener& listener, std::shared_ptr<Handler> handler,
                                 StreamPtr stream, log::Logger base, std::string_view service) {
  memory::ConnectionScope counted;
  ConnInfo conn;
  conn.sid = new_xid();
  conn.remote = stream->remote_address();
  conn.local = stream->local_address();
  conn.log = base.with({{"remote", conn.remote}, {"local", conn.local}, {"sid", conn.sid}});
  // GOST's request metrics; the raw accepted connection counts its bytes (spec §1.4).
  metrics::Request request(service, conn.remote);
  if (request.traffic()) {
    conn.metrics = &request;
    if (auto* tcp = dynamic_cast<TcpStream*>(stream.get())) tcp->count_traffic(request.traffic());
  }
  auto start = std::chrono::steady_clock::now();
  conn.log.info(fmt::format("{} <> {}", conn.remote, conn.local));
  try {
    stream = co_await listener.handshake(std::move(stream));
    co_await handler->handle(std::move(stream), conn);
  } catch (const system_error& e) {
    auto code = e.code();
    bool quiet = code == asio::error::eof || code == asio::error::operation_aborted ||
                 code == asio::error::connection_reset || code == asio::error::timed_out ||
                 code == asio::error::broken_pipe || code == asio::error::bad_descriptor;
    conn.log.write(quiet ? log::Level::debug : log::Level::error, error_text(e));
    request.fail();
  } catch (const std::exception& e) {
    conn.log.error(error_text(e));
    request.fail();
  }
  conn.log.info(fmt::format("{} >< {}", conn.remote, conn.local),
                {{"duration", (std::chrono::steady_clock::now() - start).count()},
                 {"inputBytes", static_cast<std::int64_t>(conn.input_bytes)},
                 {"outputBytes", static_cast<std::int64_t>(conn.output_bytes)}});
}

awaitable<void> accept_loop(Listener& listener, std::shared_ptr<Handler> handler, log::Logger log,
                            std::string_view service) {
  auto ex = co_await asio::this_coro::executor;
  auto backoff = std::chrono::seconds(1);
  for (;;) {
    error_code ec;
    auto stream = co_await listener.accept(ec);
    if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
    if (ec) {
      log.warn(fmt::format("accept: {}, retrying in {}s", ec.message(), backoff.count()));
      asio::steady_timer t(ex, backoff);
      co_await t.async_wait(use_nothrow);
      backoff = std::min(backoff * 2, std::chrono::seconds(5));
      continue;
    }
    backoff = std::chrono::seconds(1);
    asio::co_spawn(ex, serve_connection(listener, handler, std::move(stream), log, service),
                   asio::detached);
  }
}

// GOST ignores option keys it does not know; so do we, but say so once per key: a typo
// (`?keepAlive=ture` is fine, `?keeplive=true` is not) should not go unnoticed.
void warn_unknown_keys(const config::Config& cfg, const config::MetadataKeyLog& seen) {
  std::vector<std::string> warned;
  auto check = [&](const config::Metadata& md, const std::string& where) {
    for (const auto& [key, value] : md.entries) {
      if (seen.seen(key) || std::find(warned.begin(), warned.end(), key) != warned.end()) continue;
      warned.push_back(key);
      log::root().warn(fmt::format("{}: unknown option \"{}\" ignored", where, key));
    }
  };
  for (const auto& sc : cfg.services) {
    std::string where = fmt::format("service {}", sc.name);
    check(sc.metadata, where);
    check(sc.handler.metadata, where);
    check(sc.listener.metadata, where);
  }
  for (const auto& c : cfg.chains) {
    // Only chains a service uses were built (and read their options).
    bool used = std::any_of(cfg.services.begin(), cfg.services.end(),
                            [&](const auto& sc) { return sc.handler.chain == c.name; });
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

// The `@metrics` endpoint of a `metrics` section with an address (spec/observability.md §1.1).
std::unique_ptr<MetricsServer> make_metrics_server(const config::Config& cfg) {
  const auto& mc = *cfg.metrics;
  std::shared_ptr<const Authenticator> auth;
  if (!mc.auther.empty()) {
    // A named auther replaces `auth`; GOST lets everyone in when the name is not defined.
    auto it = std::find_if(cfg.authers.begin(), cfg.authers.end(),
                           [&](const auto& a) { return a.name == mc.auther; });
    if (it == cfg.authers.end()) {
      log::root().warn(fmt::format(
          "metrics: auther \"{}\" is not defined: the endpoint is not authenticated", mc.auther));
    } else {
      Auther a;
      for (const auto& u : it->auths) a.add(u.username, u.password);
      auth = std::make_shared<Authenticator>(std::vector<Auther>{std::move(a)});
    }
  } else if (mc.auth && !mc.auth->username.empty()) {
    Auther a;
    a.add(mc.auth->username, mc.auth->password);
    auth = std::make_shared<Authenticator>(std::vector<Auther>{std::move(a)});
  }
  auto server = std::make_unique<MetricsServer>(*metrics::global(), mc.addr, mc.path, auth);
  log::root()
      .with({{"kind", "service"}, {"service", "@metrics"}})
      .info(fmt::format("listening on {}", server->bound_address()));
  return server;
}

}  // namespace

struct Program::Impl {
  std::vector<std::unique_ptr<asio::io_context>> workers;
  std::vector<std::unique_ptr<ServiceRuntime>> services;
  std::unique_ptr<MetricsServer> metrics_server;
};

Program::Program(const config::Config& cfg, unsigned worker_count) : impl_(new Impl) {
  net::init_default_certificate(cfg.tls);
  const bool metrics_on = cfg.metrics && !cfg.metrics->addr.empty();
  if (metrics_on) metrics::enable();  // before any service can count
  for (unsigned i = 0; i < worker_count; ++i)
    impl_->workers.push_back(std::make_unique<asio::io_context>(1));
  config::MetadataKeyLog key_log;
  Builder builder(cfg);
  for (const auto& sc : cfg.services) {
    std::string where = fmt::format("service {}", sc.name);
    // Service metadata keys GOST reads that this implementation does not implement.
    reject_unsupported(
        sc.metadata,
        {"interface", "so_mark", "proxyProtocol", "netns", "netns.out", "preUp", "postUp",
         "preDown", "postDown", "enableStats", "observer.period", "observePeriod", "labels"},
        where);
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
    if (!sc.listener.chain.empty())
      throw ConfigError(fmt::format("{}: listener chains are not supported", where));

    auto rt = std::make_unique<ServiceRuntime>();
    rt->name = sc.name;
    rt->log = log::root().with(
        {{"kind", "service"}, {"service", sc.name}, {"handler", htype}, {"listener", ltype}});

    RouterOptions ro;
    if (!sc.handler.chain.empty() && !sc.metadata.get_bool("ignoreChain").value_or(false))
      ro.chain = builder.chain(sc.handler.chain, where);
    ro.retries = sc.handler.retries;
    if (auto d = sc.metadata.get_duration("dialTimeout"); d && d->count() > 0) ro.dial_timeout = *d;

    HandlerOptions ho;
    ho.service = sc.name;
    ho.config = sc.handler;
    ho.service_metadata = sc.metadata;
    ho.router = std::make_shared<Router>(ro);
    ho.auth = builder.authenticator(sc.handler, where);
    if (sc.forwarder) ho.forwarder = builder.forwarder(*sc.forwarder, where);
    ho.log = rt->log;
    if (ho.auth && (htype == "tcp" || htype == "forward"))
      rt->log.warn(
          fmt::format("{}: handler {} has no authentication: auth is ignored", where, htype));
    rt->handler = (*hf)(ho);

    ListenerOptions lo;
    lo.addr = sc.addr;
    lo.config = sc.listener;
    lo.service_metadata = &sc.metadata;
    lo.log = rt->log;
    for (auto& w : impl_->workers) {
      lo.first = rt->listeners.empty();
      rt->listeners.push_back((*lf)(*w, lo));
      // An ephemeral port (":0") is chosen by the first bind; the others join it.
      if (rt->listeners.size() == 1 && lo.addr.ends_with(":0")) {
        auto bound = rt->listeners.front()->bound_address();
        lo.addr = lo.addr.substr(0, lo.addr.size() - 1) + bound.substr(bound.rfind(':') + 1);
      }
    }
    rt->log.info(fmt::format("listening on {}/{}", rt->listeners.front()->bound_address(),
                             rt->listeners.front()->network()));
    impl_->services.push_back(std::move(rt));
  }
  warn_unknown_keys(cfg, key_log);
  if (metrics_on) impl_->metrics_server = make_metrics_server(cfg);
}

Program::~Program() = default;

void Program::run() {
  // Signals are delivered to this thread only (blocked everywhere before workers start).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  for (auto& svc : impl_->services)
    for (std::size_t i = 0; i < svc->listeners.size(); ++i)
      asio::co_spawn(*impl_->workers[i],
                     accept_loop(*svc->listeners[i], svc->handler, svc->log, svc->name),
                     asio::detached);
  if (auto* m = metrics::global())
    m->add_services(static_cast<std::int64_t>(impl_->services.size()));
  if (impl_->metrics_server) impl_->metrics_server->start();
  std::vector<std::thread> threads;
  for (auto& w : impl_->workers)
    threads.emplace_back([ctx = w.get()] {
      auto guard = asio::make_work_guard(*ctx);
      ctx->run();
    });

  for (;;) {
    // Wake up once a second to give memory back after a load drop (core/memory.hpp).
    const timespec tick{1, 0};
    int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig < 0) {
      memory::release_after_load_drop();
      continue;
    }
    if (sig == SIGHUP) {
      log::root().warn("SIGHUP: configuration reload is not supported by this implementation");
      continue;
    }
    log::root().info(fmt::format("received signal {}, shutting down",
                                 sig == SIGINT ? "interrupt" : "terminated"));
    break;
  }
  for (std::size_t i = 0; i < impl_->workers.size(); ++i) {
    asio::post(*impl_->workers[i], [this, i] {
      for (auto& svc : impl_->services) svc->listeners[i]->close();
    });
  }
  for (auto& w : impl_->workers) w->stop();
  for (auto& t : threads) t.join();
  if (auto* m = metrics::global())
    m->add_services(-static_cast<std::int64_t>(impl_->services.size()));
  if (impl_->metrics_server) impl_->metrics_server->stop();
}

}  // namespace gost::app
