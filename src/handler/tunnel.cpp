// Handler "tunnel": GOST's tunnel server (docs/PROTOCOLS.md "tunnel"; go-gost/x handler/tunnel).
// Connectors register with relay BIND + a tunnel ID and keep an smux session (we are its client
// side: we open a stream per visitor); visitors CONNECT with a tunnel ID, or arrive at the
// `entrypoint` (HTTP routed by Host, TLS by SNI, relay directly), and are joined to a stream of
// one of the tunnel's connectors (tunnel_registry.hpp).
#include "core/tunnel.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <mutex>
#include <set>

#include "chain/chain.hpp"
#include "core/component.hpp"
#include "core/retirable.hpp"
#include "core/timeout.hpp"
#include "core/xid.hpp"
#include "handler/tunnel_registry.hpp"
#include "net/mux.hpp"
#include "policy/ingress.hpp"
#include "proto/http.hpp"
#include "proto/relay.hpp"
#include "proto/tls_hello.hpp"
#include "source/bind.hpp"

namespace gost {
namespace {

namespace rp = proto::relay;
namespace http = proto::http;
using std::chrono::nanoseconds;

struct TunnelRequest {
  std::uint8_t cmd = 0;
  rp::Features features;
  std::string pending;  // bytes that followed the request
};

// Reads one relay request exactly (4 + FEALEN bytes; what follows is kept), within `timeout`.
// `buf` holds bytes already read. nullopt: closed, timed out, bad version or malformed features
// (GOST answers a bad version with 01 01 00 00; nothing else gets a reply).
awaitable<std::optional<TunnelRequest>> read_request(Stream& s, nanoseconds timeout,
                                                     const log::Logger& log, std::string buf,
                                                     bool& bad_version) {
  std::size_t need = rp::kHeaderSize;
  error_code ec;
  {
    Deadline deadline(s.executor(), timeout, [&s] { s.close(); });
    for (;;) {
      if (auto h = rp::parse_header(buf)) {
        if (h->version != rp::kVersion) break;
        need = rp::kHeaderSize + h->features_length;
      }
      if (buf.size() >= need) break;
      co_await s.wait_readable(ec);
      if (ec) break;
      std::size_t old = buf.size();
      buf.resize(std::max(need, old + 4096));
      std::size_t n = co_await s.read_some(asio::buffer(buf.data() + old, buf.size() - old), ec);
      buf.resize(old + n);
      if (ec) break;
    }
  }
  auto h = rp::parse_header(buf);
  if (h && h->version != rp::kVersion) {
    log.warn(fmt::format("tunnel: bad relay version 0x{:02x}", h->version));
    bad_version = true;
    co_return std::nullopt;
  }
  if (!h || buf.size() < need) {
    log.debug(buf.empty() ? "connection closed before a request" : "truncated relay request");
    co_return std::nullopt;
  }
  auto f = rp::parse_features(std::string_view(buf).substr(rp::kHeaderSize, h->features_length));
  if (!f) {
    log.warn("tunnel: malformed relay request features");
    co_return std::nullopt;
  }
  co_return TunnelRequest{h->code, std::move(*f), buf.substr(need)};
}

awaitable<void> reply(Stream& s, rp::Status status) {
  error_code ignored;
  auto bytes = rp::encode_status(status);
  co_await write_all(s, asio::buffer(bytes), ignored);
}

// go-gost/x handler/tunnel parseTunnelID: "$<uuid>" is private; anything not a UUID is zero.
rp::TunnelId parse_endpoint(std::string_view text) {
  bool priv = !text.empty() && text.front() == '$';
  if (priv) text.remove_prefix(1);
  auto id = rp::TunnelId::parse(text).value_or(rp::TunnelId{});
  if (priv) id.set_flag(rp::TunnelId::kFlagPrivate);
  return id;
}

// The host name a connector's tunnel is reachable by without a rule: the first 8 bytes of
// md5(tunnel ID text) in hex (go-gost/x handler/tunnel bind.go).
std::string endpoint_name(const rp::TunnelId& tid) {
  std::string text = tid.to_string();
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(text.data(), text.size(), d, &len, EVP_md5(), nullptr);
  std::string out;
  for (int i = 0; i < 8; ++i) out += fmt::format("{:02x}", d[i]);
  return out;
}

rp::TunnelId random_id() {
  rp::TunnelId id;
  RAND_bytes(id.bytes.data(), 16);
  id.bytes[6] = (id.bytes[6] & 0x0F) | 0x40;  // a version-4 UUID, as uuid.NewRandom
  id.bytes[8] = (id.bytes[8] & 0x3F) | 0x80;
  return id;
}

std::string addr_text(const std::vector<rp::Address>& a, std::size_t i) {
  return i < a.size() ? a[i].to_string() : std::string();
}

// GOST's srcAddr/dstAddr: the first address feature is the source, a later one the destination.
std::string src_of(const rp::Features& f) { return addr_text(f.addresses, 0); }
std::string dst_of(const rp::Features& f) {
  return f.addresses.size() > 1 ? f.addresses.back().to_string() : std::string();
}

std::string host_of(std::string_view host_port) {
  auto hp = rp::parse_address(host_port);
  return hp ? hp->host : std::string();
}

// The header a connector's stream starts with: 01 00 FEALEN <source> <destination>.
std::string stream_header(std::string_view src, std::string_view dst) {
  rp::FeatureWriter w;
  w.address(src).address(dst);
  if (!w.ok) w = rp::FeatureWriter{};
  return rp::encode_with(static_cast<std::uint8_t>(rp::Status::ok), w).value_or(std::string());
}

// What the handler and its entrypoint share (the entrypoint's accept loops hold it).
struct TunnelState {
  std::string node;  // this server's node ID (a UUID, GOST's handler id)
  tunnel::Registry registry;
  std::shared_ptr<policy::Ingress> ingress;  // null without rules
  // GOST's ingress plugin instead (asked per lookup, told every registration).
  std::optional<source::PluginOptions> plugin;
  std::string service;
  nanoseconds entrypoint_read_timeout{std::chrono::seconds(15)};
  log::Logger log;

  bool has_ingress() const { return ingress || plugin; }
  // The endpoint the ingress names for `host` ("" when none).
  awaitable<std::string> endpoint(std::string host) const {
    if (plugin) co_return co_await source::plugin_ingress_get(*plugin, service, std::move(host));
    co_return ingress ? ingress->endpoint(host) : std::string();
  }
  // The connector-side tunnel of `host` by the ingress (zero when none).
  awaitable<rp::TunnelId> route(std::string host) const {
    if (!has_ingress() || host.empty()) co_return rp::TunnelId{};
    co_return parse_endpoint(co_await endpoint(std::move(host)));
  }
  // A connector's rule: into the table, or told to the plugin (not awaited: registration does
  // not wait for it, and GOST ignores its answer).
  void set_rule(std::string host, std::string tunnel, asio::any_io_executor ex) const {
    if (plugin) {
      asio::co_spawn(
          ex, source::plugin_ingress_set(*plugin, service, std::move(host), std::move(tunnel)),
          asio::detached);
      return;
    }
    if (ingress) ingress->set_rule({std::move(host), std::move(tunnel)});
  }
};

// Relays `client` and the connector stream `cc`, sending `pending` (bytes read past the request)
// first.
awaitable<void> join(Stream& client, Stream& cc, std::string pending, const std::string& target,
                     ConnInfo& conn) {
  error_code ec;
  if (!pending.empty()) {
    co_await write_all(cc, asio::buffer(pending), ec);
    if (ec) co_return;
    std::string().swap(pending);  // not kept for the tunnel's life
  }
  RelayOptions options;
  co_await relay_logged(client, cc, target, conn, options);
}

// ---- the entrypoint ---------------------------------------------------------------------------

// Entrypoint addresses our running handlers hold: a reload builds the new handler while the old
// one still listens, so its listener joins the old one's SO_REUSEPORT group instead of refusing
// the address as taken (docs/ARCHITECTURE.md "Reload and the runtime": check_free).
struct HeldAddresses {
  std::mutex mu;
  std::multiset<std::string> held;
};
HeldAddresses& held_entrypoints() {
  static HeldAddresses h;
  return h;
}

// GOST's entrypoint (entrypoint.go): a TCP listener on the server whose connections are routed by
// their first bytes: 0x01 a relay CONNECT naming the tunnel, 0x16 a TLS ClientHello (by SNI),
// anything else HTTP/1 (by Host).
class Entrypoint : public std::enable_shared_from_this<Entrypoint> {
 public:
  Entrypoint(std::shared_ptr<TunnelState> state, std::string service)
      : state_(std::move(state)), service_(std::move(service)) {}

  void start(const std::string& addr, const std::vector<asio::io_context*>& workers) {
    auto* lf = ListenerRegistry::find("tcp");
    if (!lf) throw config::ConfigError("handler tunnel: no tcp listener for the entrypoint");
    ListenerOptions lo;
    lo.addr = addr;
    lo.config.type = "tcp";
    lo.service = service_;
    lo.log = state_->log;
    bool ours = false;
    {
      auto& h = held_entrypoints();
      std::lock_guard lock(h.mu);
      ours = h.held.contains(addr);
    }
    for (auto* w : workers) {
      lo.first = listeners_.empty();
      lo.check_free = lo.first && !ours;
      listeners_.push_back({w, std::shared_ptr<Listener>((*lf)(*w, lo))});
      if (listeners_.size() == 1 && lo.addr.ends_with(":0")) {
        auto bound = listeners_.front().listener->bound_address();
        lo.addr = lo.addr.substr(0, lo.addr.size() - 1) + bound.substr(bound.rfind(':') + 1);
      }
    }
    address_ = listeners_.front().listener->bound_address();
    held_ = addr;
    {
      auto& h = held_entrypoints();
      std::lock_guard lock(h.mu);
      h.held.insert(held_);
    }
    for (auto& l : listeners_)
      asio::co_spawn(*l.worker, accept_loop(shared_from_this(), l.listener), asio::detached);
    state_->log.info(fmt::format("entrypoint: {}", address_));
  }

  void stop() {
    for (auto& l : listeners_) asio::post(*l.worker, [ln = l.listener] { ln->close(); });
    if (!held_.empty()) {
      auto& h = held_entrypoints();
      std::lock_guard lock(h.mu);
      if (auto it = h.held.find(held_); it != h.held.end()) h.held.erase(it);
      held_.clear();
    }
  }

 private:
  struct Bound {
    asio::io_context* worker;
    std::shared_ptr<Listener> listener;
  };

  static awaitable<void> accept_loop(std::shared_ptr<Entrypoint> self,
                                     std::shared_ptr<Listener> l) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer backoff(ex);
    for (;;) {
      error_code ec;
      StreamPtr s = co_await l->accept(ec);
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) break;
      if (ec || !s) {  // EMFILE and the like: a short pause, as a service's accept loop
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(use_nothrow);
        continue;
      }
      asio::co_spawn(ex, serve(self, std::move(s)), asio::detached);
    }
  }

  static awaitable<void> serve(std::shared_ptr<Entrypoint> self, StreamPtr s) {
    ConnInfo conn;
    conn.remote = s->remote_address();
    conn.local = s->local_address();
    conn.log = self->state_->log.with({{"kind", "entrypoint"},
                                       {"remote", conn.remote},
                                       {"local", conn.local},
                                       {"sid", new_xid()}});
    try {
      co_await self->handle(*s, conn);
    } catch (const std::exception& e) {
      conn.log.debug(fmt::format("entrypoint: {}", error_text(e)));
    }
    s->close();
  }

  awaitable<void> handle(Stream& s, ConnInfo& conn);
  awaitable<void> handle_relay(Stream& s, std::string buf, ConnInfo& conn);
  awaitable<void> handle_tls(Stream& s, std::string buf, ConnInfo& conn);
  awaitable<void> handle_http(Stream& s, std::string buf, ConnInfo& conn);

  std::shared_ptr<TunnelState> state_;
  std::string service_;
  std::vector<Bound> listeners_;
  std::string address_;
  std::string held_;  // the configured address, in held_entrypoints() while we listen
};

awaitable<void> Entrypoint::handle(Stream& s, ConnInfo& conn) {
  std::string buf(4096, '\0');
  error_code ec;
  std::size_t n = 0;
  {
    Deadline deadline(s.executor(), state_->entrypoint_read_timeout, [&s] { s.close(); });
    n = co_await s.read_some(asio::buffer(buf), ec);
  }
  if (ec || n == 0) co_return;
  buf.resize(n);
  if (buf[0] == static_cast<char>(rp::kVersion))
    co_await handle_relay(s, std::move(buf), conn);
  else if (buf[0] == 0x16)
    co_await handle_tls(s, std::move(buf), conn);
  else
    co_await handle_http(s, std::move(buf), conn);
}

// A relay CONNECT at the entrypoint names its tunnel itself; no ingress (entrypoint.go
// handleConnect).
awaitable<void> Entrypoint::handle_relay(Stream& s, std::string buf, ConnInfo& conn) {
  bool bad_version = false;
  auto req = co_await read_request(s, state_->entrypoint_read_timeout, conn.log, buf, bad_version);
  if (!req) co_return;
  auto tid = req->features.tunnel.value_or(rp::TunnelId{});
  if (tid.is_zero()) {
    conn.log.warn("entrypoint: invalid tunnel ID");
    co_await reply(s, rp::Status::bad_request);
    co_return;
  }
  std::string network =
      (req->cmd & rp::kFlagUdp) ||
              req->features.network.value_or(0) == static_cast<std::uint16_t>(rp::Network::udp)
          ? "udp"
          : "tcp";
  std::string src = src_of(req->features), dst = dst_of(req->features);
  std::string tunnel = tid.to_string();
  auto cc =
      co_await tunnel::dial_connector(state_->registry, tunnel, network, stream_header(src, dst));
  if (!cc) {
    conn.log.error(fmt::format("entrypoint: tunnel {} not available", tunnel));
    co_await reply(s, rp::Status::service_unavailable);
    co_return;
  }
  co_await reply(s, rp::Status::ok);
  add_log_field(conn, "tunnel", tunnel);
  co_await join(s, *cc, std::move(req->pending), dst, conn);
}

// TLS: routed by the ClientHello's server name; the record goes to the connector first
// (entrypoint.go HandleTLS).
awaitable<void> Entrypoint::handle_tls(Stream& s, std::string buf, ConnInfo& conn) {
  error_code ec;
  {
    Deadline deadline(s.executor(), state_->entrypoint_read_timeout, [&s] { s.close(); });
    for (;;) {
      if (buf.size() >= proto::tls::kRecordHeader) {
        if (!proto::tls::is_handshake_record(buf)) co_return;
        std::size_t need = proto::tls::kRecordHeader + proto::tls::record_length(buf);
        if (need > proto::tls::kRecordHeader + proto::tls::kMaxRecord) co_return;
        if (buf.size() >= need) break;
      }
      std::size_t old = buf.size();
      buf.resize(old + 4096);
      std::size_t n = co_await s.read_some(asio::buffer(buf.data() + old, 4096), ec);
      buf.resize(old + n);
      if (ec) co_return;
    }
  }
  std::size_t rec = proto::tls::kRecordHeader + proto::tls::record_length(buf);
  std::string sni;
  if (proto::tls::parse_client_hello(std::string_view(buf).substr(0, rec), sni) ==
      proto::tls::HelloStatus::bad)
    co_return;
  std::string host = sni.empty() ? std::string() : sni + ":443";
  auto tid = co_await state_->route(sni);
  if (tid.is_zero() || tid.is_private()) {
    conn.log.error(fmt::format("entrypoint: no route to host {}", host));
    co_return;
  }
  std::string tunnel = tid.to_string();
  add_log_field(conn, "tunnel", tunnel);
  auto cc = co_await tunnel::dial_connector(state_->registry, tunnel, "tcp",
                                            stream_header(conn.remote, host));
  if (!cc) {
    conn.log.error(fmt::format("entrypoint: tunnel {} not available", tunnel));
    co_return;
  }
  co_await join(s, *cc, std::move(buf), host, conn);
}

// HTTP/1: the request head is read (bounded), routed by its Host, and sent to the connector as
// GOST's http.Transport writes it (Connection: close: GOST's entrypoint keeps no backend
// connection alive by default) with Gost-Sid and Gost-Forwarded-Node; then bytes are relayed.
// No route or a private tunnel: 502; no connector: 503 (entrypoint.go httpRoundTrip).
awaitable<void> Entrypoint::handle_http(Stream& s, std::string buf, ConnInfo& conn) {
  http::Request req;
  std::size_t head_len = 0;
  error_code ec;
  {
    Deadline deadline(s.executor(), state_->entrypoint_read_timeout, [&s] { s.close(); });
    for (;;) {
      auto st = http::parse_request(buf, req, head_len);
      if (st == http::ParseStatus::complete) break;
      if (st != http::ParseStatus::incomplete) {
        conn.log.debug("entrypoint: not an HTTP request");
        co_return;  // closed without a reply, as Go's http.ReadRequest error
      }
      std::size_t old = buf.size();
      buf.resize(old + 4096);
      std::size_t n = co_await s.read_some(asio::buffer(buf.data() + old, 4096), ec);
      buf.resize(old + n);
      if (ec) co_return;
    }
  }
  std::string host = req.headers.get("Host") ? *req.headers.get("Host") : std::string();
  std::string origin = req.target;
  if (auto uri = http::split_absolute_uri(req.target)) {
    if (host.empty()) host = uri->authority;
    origin = uri->path;
  }
  auto framing = http::request_framing(req);
  if (!framing || host.empty()) {
    conn.log.debug("entrypoint: bad request");
    co_return;
  }
  // httpRoundTrip: a Host without a port is host:80.
  std::string host_port = host;
  if (host_of(host) == host || host.back() == ']') host_port += ":80";
  add_log_field(conn, "host", host_port);
  auto fail = [&](int status) -> awaitable<void> {
    std::string bytes = http::response_empty(status, req.version_minor);
    error_code ignored;
    co_await write_all(s, asio::buffer(bytes), ignored);
  };
  auto tid = co_await state_->route(host_port);
  if (tid.is_zero() || tid.is_private()) {
    conn.log.error(tid.is_zero() ? fmt::format("no route to host {}", host_port)
                                 : fmt::format("tunnel {} is private for host {}", tid.to_string(),
                                               host_port));
    co_await fail(502);
    co_return;
  }
  std::string tunnel = tid.to_string();
  add_log_field(conn, "tunnel", tunnel);
  auto cc = co_await tunnel::dial_connector(state_->registry, tunnel, "tcp",
                                            stream_header(conn.remote, host_port));
  if (!cc) {
    conn.log.error(fmt::format("entrypoint: tunnel {} not available", tunnel));
    co_await fail(503);
    co_return;
  }
  if (!req.headers.get("Gost-Sid")) req.headers.set("Gost-Sid", std::string(conn.log.field("sid")));
  req.headers.set("Gost-Forwarded-Node", state_->node);
  std::string head = http::serialize_upstream_request(req, origin, host, *framing, false);
  head.append(buf, head_len);
  co_await join(s, *cc, std::move(head), host_port, conn);
}

// ---- the handler ------------------------------------------------------------------------------

class TunnelHandler final : public Handler, public Retirable {
 public:
  explicit TunnelHandler(const HandlerOptions& o) : opts_(o) {
    const auto& md = o.config.metadata;
    const std::string where = "handler tunnel";
    reject_unsupported_handler_options(md, where);
    reject_unsupported(md,
                       {"sd", "entrypoint.ProxyProtocol", "entrypoint.proxyProtocol",
                        "observePeriod", "observer.period", "observer.observePeriod",
                        "observer.resetTraffic", "limiter.refreshInterval"},
                       where);
    // GOST's tunnel handler and connector default to smux version 2 (1 MiB stream window).
    mux_ = net::mux_config(md, where, 2, 2, 1048576);
    auto rt = md.get_duration("readTimeout").value_or(nanoseconds(0));
    read_timeout_ = rt.count() <= 0 ? std::chrono::seconds(15) : rt;
    direct_ = md.get_bool("tunnel.direct").value_or(false);
    (void)md.get_duration(
        "tunnel.ttl");  // GOST's sweep period of closed connectors: ours go at once
    entrypoint_id_ = parse_endpoint(md.get_string("entrypoint.id").value_or(""));
    (void)md.get_bool("entrypoint.keepalive");    // see docs/PROTOCOLS.md "tunnel: differences"
    (void)md.get_bool("entrypoint.compression");  // requests are forwarded as they come

    state_ = std::make_shared<TunnelState>();
    state_->node = random_id().to_string();
    state_->log = o.log.with({{"node", state_->node}});
    auto ert = md.get_duration("entrypoint.readTimeout").value_or(nanoseconds(0));
    if (ert.count() > 0) state_->entrypoint_read_timeout = ert;
    // go-gost/x handler/tunnel metadata.go: a named ingress, else the `tunnel` option's rules.
    if (auto name = md.get_string("ingress"); name && !name->empty()) {
      auto it = std::find_if(o.ingresses.begin(), o.ingresses.end(),
                             [&](const config::Ingress& i) { return i.name == *name; });
      if (it == o.ingresses.end())
        throw config::ConfigError(fmt::format("{}: ingress \"{}\" is not defined", where, *name));
      state_->service = o.service;
      // GOST's plugin replaces everything else of the ingress.
      state_->plugin = source::http_plugin(it->sources, "ingress " + it->name,
                                           "hosts are not routed while it fails");
      // Its file/redis/http sources: read now and every `reload`, their rules between the
      // configured ones and what connectors register (policy::Ingress::update).
      if (!state_->plugin)
        state_->ingress = source::with_sources(
            std::make_shared<policy::Ingress>(it->rules),
            source::loader_sources(it->sources, "ingress " + it->name, "hash-or-set"),
            log::root().with({{"kind", "ingress"}, {"ingress", it->name}}),
            [](policy::Ingress& in, const source::Data& d) {
              std::vector<config::IngressRule> rules;
              for (const auto& line : d.lines)
                if (auto r = policy::parse_ingress_line(line)) rules.push_back(std::move(*r));
              in.update(rules);
            });
    } else {
      auto rules = policy::parse_tunnel_rules(md.get_string("tunnel").value_or(""));
      if (!rules.empty()) state_->ingress = std::make_shared<policy::Ingress>(rules);
    }

    if (auto ep = md.get_string("entrypoint"); ep && !ep->empty()) {
      if (o.workers.empty())
        throw config::ConfigError("handler tunnel: entrypoint without workers");
      entrypoint_ = std::make_shared<Entrypoint>(state_, o.service + "-ep-" + *ep);
      entrypoint_->start(*ep, o.workers);
    }
  }
  ~TunnelHandler() override {
    if (entrypoint_) entrypoint_->stop();
  }

  // The service is retired (reload, removal): GOST closes the handler — its entrypoint and every
  // connector's session — so connectors register again with the service that replaces it.
  void retire() override {
    if (entrypoint_) entrypoint_->stop();
    for (auto& c : state_->registry.all()) asio::post(c->executor, [c] { c->session->close(); });
  }

  awaitable<void> handle(StreamPtr client, ConnInfo& conn) override;

 private:
  awaitable<void> bind(StreamPtr client, TunnelRequest req, const rp::TunnelId& tid,
                       ConnInfo& conn);
  awaitable<void> connect(StreamPtr client, TunnelRequest req, const rp::TunnelId& tid,
                          ConnInfo& conn);

  HandlerOptions opts_;
  net::MuxConfig mux_;
  nanoseconds read_timeout_{0};
  bool direct_ = false;
  rp::TunnelId entrypoint_id_;
  std::shared_ptr<TunnelState> state_;
  std::shared_ptr<Entrypoint> entrypoint_;
};

awaitable<void> TunnelHandler::handle(StreamPtr client, ConnInfo& conn) {
  bool bad_version = false;
  auto req = co_await read_request(*client, read_timeout_, conn.log, std::string(), bad_version);
  if (!req) {
    if (bad_version) co_await reply(*client, rp::Status::bad_request);
    co_return;
  }
  const auto& f = req->features;
  auto tid = f.tunnel.value_or(rp::TunnelId{});
  if (tid.is_zero()) {
    conn.log.warn("tunnel: invalid tunnel ID");
    co_await reply(*client, rp::Status::bad_request);
    co_return;
  }
  if (f.auth) add_log_field(conn, "user", f.auth->user);
  if (opts_.auth) {
    std::string user = f.auth ? f.auth->user : "";
    std::string pass = f.auth ? f.auth->password : "";
    std::optional<std::string> id =
        co_await opts_.auth->authenticate_async(opts_.service, user, pass, conn.remote);
    if (!id) {
      conn.log.warn(fmt::format("{}: authentication failed", conn.remote));
      co_await reply(*client, rp::Status::unauthorized);
      conn.failed();
      co_return;
    }
    conn.client_id = *id;
  }
  conn.authenticated();
  switch (req->cmd & rp::kCmdMask) {
    case rp::kCmdConnect:
      co_await connect(std::move(client), std::move(*req), tid, conn);
      break;
    case rp::kCmdBind:
      co_await bind(std::move(client), std::move(*req), tid, conn);
      break;
    default:
      conn.log.warn(fmt::format("tunnel: unknown command 0x{:02x}", req->cmd & rp::kCmdMask));
      co_await reply(*client, rp::Status::bad_request);
  }
}

// A connector registers (bind.go): the response names the address it is reachable by and its
// connector ID; then the connection becomes an smux session whose client side we are.
awaitable<void> TunnelHandler::bind(StreamPtr client, TunnelRequest req, const rp::TunnelId& tid,
                                    ConnInfo& conn) {
  const auto& f = req.features;
  bool udp = (req.cmd & rp::kFlagUdp) ||
             f.network.value_or(0) == static_cast<std::uint16_t>(rp::Network::udp);
  std::string network = udp ? "udp" : "tcp";
  std::string tunnel = tid.to_string();
  if (state_->registry.connectors(tunnel) >= tunnel::Registry::kMaxConnectorsPerTunnel) {
    conn.log.error(fmt::format("tunnel {}: too many connectors", tunnel));
    co_await reply(*client, rp::Status::service_unavailable);
    co_return;
  }
  rp::TunnelId cid = random_id();
  if (udp) cid.set_flag(rp::TunnelId::kFlagUdp);
  cid.set_weight(tid.weight());

  std::string endpoint = endpoint_name(tid);
  std::string dst = dst_of(f);
  auto dst_addr = rp::parse_address(dst).value_or(rp::Address{});
  std::string host = dst.empty() ? std::string() : dst_addr.host;
  if (host.empty() || !state_->has_ingress()) {
    host = endpoint;
  } else if (host != endpoint) {
    auto rule = co_await state_->endpoint(host);
    if (!rule.empty() && rule != tunnel) host = endpoint;
  }
  rp::Address bound = rp::parse_address(host).value_or(rp::Address{});
  bound.port = dst_addr.port;
  rp::FeatureWriter w;
  w.address(bound).tunnel(cid);
  auto response = rp::encode_with(static_cast<std::uint8_t>(rp::Status::ok), w);
  if (!response) co_return;
  error_code ec;
  co_await write_all(*client, asio::buffer(*response), ec);
  if (ec) co_return;

  auto session = net::MuxSession::client(std::move(client), mux_);
  auto c = std::make_shared<tunnel::Connector>();
  c->id = cid;
  c->session = session;
  c->executor = co_await asio::this_coro::executor;
  if (!state_->registry.add(tunnel, c)) {
    conn.log.error(fmt::format("tunnel {}: too many tunnels or connectors", tunnel));
    session->close();
    co_return;
  }
  if (state_->has_ingress()) {
    state_->set_rule(endpoint, tunnel, c->executor);
    state_->set_rule(host, tunnel, c->executor);
  }
  add_log_field(conn, "tunnel", tunnel);
  conn.log.info(fmt::format("{}/{}: tunnel={}, connector={}, weight={} established",
                            bound.to_string(), network, tunnel, cid.to_string(), cid.weight()));
  co_await session->wait_closed();
  c->closed = true;
  state_->registry.remove(tunnel, c.get());
  conn.log.info(fmt::format("tunnel={}, connector={} closed", tunnel, cid.to_string()));
}

// A visitor (connect.go): the destination's host must route to the visitor's own tunnel (by the
// ingress, or any host with tunnel.direct); the response is sent at once, the connector's stream
// starts with a relay response naming source and destination.
awaitable<void> TunnelHandler::connect(StreamPtr client, TunnelRequest req, const rp::TunnelId& tid,
                                       ConnInfo& conn) {
  const auto& f = req.features;
  bool udp = (req.cmd & rp::kFlagUdp) ||
             f.network.value_or(0) == static_cast<std::uint16_t>(rp::Network::udp);
  std::string network = udp ? "udp" : "tcp";
  std::string src = src_of(f), dst = dst_of(f);
  add_log_field(conn, "dst", fmt::format("{}/{}", dst, network));
  add_log_field(conn, "tunnel", tid.to_string());
  bool refused = co_await opts_.router->bypassed_async(network, dst, conn.client_id);
  if (refused) {
    conn.log.debug(fmt::format("bypass: {}", dst));
    co_await reply(*client, rp::Status::forbidden);
    co_return;
  }
  std::string host = host_of(dst);
  auto route = co_await state_->route(host);
  if (!entrypoint_id_.is_zero() && tid.same_id(entrypoint_id_)) {
    if (route.is_zero() || route.is_private()) {
      conn.log.error(route.is_zero() ? fmt::format("no route to host {}", host)
                                     : fmt::format("tunnel {} is private for host {}",
                                                   route.to_string(), host));
      co_await reply(*client, route.is_zero() ? rp::Status::network_unreachable
                                              : rp::Status::host_unreachable);
      co_return;
    }
  } else {
    if (direct_) route = tid;
    if (!route.same_id(tid)) {
      conn.log.error(fmt::format("no route to host {}", host));
      co_await reply(*client, rp::Status::host_unreachable);
      co_return;
    }
  }
  std::string tunnel = route.to_string();
  auto cc =
      co_await tunnel::dial_connector(state_->registry, tunnel, network, stream_header(src, dst));
  if (!cc) {
    conn.log.error(fmt::format("tunnel {} not available", tunnel));
    co_await reply(*client, rp::Status::service_unavailable);
    co_return;
  }
  co_await reply(*client, rp::Status::ok);
  co_await join(*client, *cc, std::move(req.pending), dst, conn);
}

GOST_REGISTER(HandlerRegistry, "tunnel", [](const HandlerOptions& o) {
  return std::shared_ptr<Handler>(new TunnelHandler(o));
});

}  // namespace
}  // namespace gost
