// Handlers "socks5" and "socks": SOCKS5 with GOST's TLS methods (0x80/0x82), RFC 1929, CONNECT,
// BIND, UDP ASSOCIATE and UDP-TUN (docs/PROTOCOLS.md "socks5").
#include "proto/socks5.hpp"

#include <fmt/format.h>

#include <random>

#include "chain/chain.hpp"
#include "core/address.hpp"
#include "core/metrics.hpp"
#include "core/tcp_stream.hpp"
#include "core/timeout.hpp"
#include "core/tunnel.hpp"
#include "net/mux.hpp"
#include "net/tls.hpp"
#include "net/udp.hpp"
#include "net/udp_relay.hpp"

namespace gost {
namespace {

namespace socks5 = proto::socks5;
using net::udp;
using std::chrono::nanoseconds;

constexpr std::size_t kMaxBindPending = 64 * 1024;

std::string host_of(std::string_view addr) {
  auto hp = split_host_port(addr);
  return hp ? hp->host : std::string();
}

// The client side of a UDP association: datagrams `RSV FRAG ATYP ADDR PORT DATA` on a UDP socket,
// accepted only from the control connection's client IP (any port); replies go to the address of
// the most recent client datagram. The client's datagrams, as they are on the wire, count for the
// request's metrics like the bytes of its control connection (go-gost/gost#533: GOST counts the
// target side of the association instead, under the target's IP).
class AssociateConn final : public net::PacketConn {
 public:
  AssociateConn(udp::socket s, std::optional<asio::ip::address> client_ip, std::size_t buffer_size,
                const log::Logger& log, metrics::SinkPtr sink)
      : socket_(std::move(s)),
        client_ip_(client_ip),
        rbuf_(buffer_size),
        log_(log),
        sink_(std::move(sink)) {}

  awaitable<std::size_t> read_from(asio::mutable_buffer buf, std::string& addr,
                                   error_code& ec) override {
    for (;;) {
      udp::endpoint from;
      auto [e, n] = co_await socket_.async_receive_from(asio::buffer(rbuf_), from, use_nothrow);
      if (e) {
        ec = e;
        co_return 0;
      }
      auto ip = net::parse_ip(from.address().to_string());
      if (client_ip_ && ip != client_ip_) {
        log_.debug(fmt::format("socks5: udp datagram from {} dropped (not the client)",
                               net::endpoint_text(from)));
        continue;
      }
      if (sink_) sink_->input(n);
      std::string_view data(rbuf_.data(), n);
      socks5::UdpHeader h;
      auto p = socks5::parse_udp_header(data, h);
      if (p.status != socks5::Status::complete) {
        log_.warn(fmt::format("socks5: malformed udp datagram from {} dropped",
                              net::endpoint_text(from)));
        continue;
      }
      peer_ = from;
      std::size_t len = std::min(n - p.size, buf.size());
      std::memcpy(buf.data(), rbuf_.data() + p.size, len);
      addr = h.addr.to_string();
      co_return len;
    }
  }

  awaitable<void> write_to(asio::const_buffer buf, std::string_view addr, error_code& ec) override {
    if (!peer_) co_return;  // no client datagram yet: nowhere to send
    auto a = socks5::address_from_text(addr);
    std::string out = a ? socks5::udp_header(*a) : "";
    if (out.empty()) co_return;
    out.append(static_cast<const char*>(buf.data()), buf.size());
    auto [e, n] = co_await socket_.async_send_to(asio::buffer(out), *peer_, use_nothrow);
    ec = e;
    if (sink_) sink_->output(n);
  }

  void close() override {
    error_code ec;
    socket_.close(ec);
  }

 private:
  udp::socket socket_;
  std::optional<asio::ip::address> client_ip_;
  std::vector<char> rbuf_;
  std::optional<udp::endpoint> peer_;
  log::Logger log_;
  metrics::SinkPtr sink_;  // null: metrics off
};

class Socks5Handler final : public Handler {
 public:
  explicit Socks5Handler(const HandlerOptions& o) : opts_(o) {
    const auto& md = o.config.metadata;
    std::string where = fmt::format("handler {}", o.config.type);
    mux_ = net::mux_config(md, where);
    reject_unsupported_handler_options(md, where);
    reject_unsupported(md, {"comp"}, where);
    for (auto key : {"tor", "enableTor", "socks5.tor"})
      if (md.get_bool(key).value_or(false))
        throw config::ConfigError(fmt::format(
            "{}: option \"{}\" (Tor RESOLVE) is not supported by this implementation", where, key));
    auto rt = md.get_duration("readTimeout").value_or(nanoseconds(0));
    read_timeout_ = rt.count() <= 0 ? std::chrono::seconds(15) : rt;
    idle_timeout_ = md.get_duration("idleTimeout").value_or(nanoseconds(0));
    notls_ = md.get_bool("notls").value_or(false);
    bind_ = md.get_bool("bind").value_or(false);
    udp_ = md.get_bool("udp").value_or(false);
    auto bs = md.get_int("udp.bufferSize");
    if (!bs) bs = md.get_int("udpBufferSize");
    if (bs && *bs > 0)
      udp_buffer_ = static_cast<std::size_t>(std::min<std::int64_t>(*bs, 65535 + 262));
    udp_resolve_domain_ =
        md.get_bool("udp.resolveDomain").value_or(md.get_bool("udpResolveDomain").value_or(false));
    auto pmin = md.get_int("udp.bindRange.min");
    if (!pmin) pmin = md.get_int("udp.minPort");
    auto pmax = md.get_int("udp.bindRange.max");
    if (!pmax) pmax = md.get_int("udp.maxPort");
    if (pmin && pmax && *pmin > 0 && *pmax >= *pmin && *pmax <= 65535)
      bind_range_ = {static_cast<unsigned short>(*pmin), static_cast<unsigned short>(*pmax)};
    public_addr_ =
        md.get_string("socks.publicAddr").value_or(md.get_string("publicAddr").value_or(""));
    if (!notls_) tls_ = net::server_context(o.config.tls);
  }

  awaitable<void> handle(StreamPtr client, ConnInfo& conn) override;

 private:
  // Greeting, optional TLS and RFC 1929, then the request — all within readTimeout. Returns
  // false when the connection is to be closed (everything already answered/logged).
  awaitable<bool> handshake(StreamPtr& client, socks5::Request& req, ConnInfo& conn);
  // A failure reply (zero address). GCC 12 mishandles temporaries with non-trivial destructors in
  // conditional or default-argument expressions inside co_await: build messages beforehand.
  awaitable<void> reply(Stream& s, std::uint8_t code) {
    std::string msg = socks5::reply(code);
    error_code ec;
    co_await write_all(s, asio::buffer(msg), ec);
  }
  awaitable<void> connect(StreamPtr client, const socks5::Address& dst, ConnInfo& conn);
  awaitable<void> bind(StreamPtr client, const socks5::Address& dst, ConnInfo& conn);
  awaitable<void> mbind(StreamPtr client, const socks5::Address& dst, ConnInfo& conn);
  awaitable<void> udp_associate(StreamPtr client, ConnInfo& conn);
  awaitable<void> udp_tun(StreamPtr client, const socks5::Address& dst, ConnInfo& conn);
  net::DatagramRelayOptions datagram_options() const {
    return {.buffer_size = udp_buffer_,
            .resolve_domain = udp_resolve_domain_,
            .tag = "socks5",
            .router = opts_.router.get()};
  }
  udp::socket open_associate_socket(asio::any_io_executor ex, std::optional<asio::ip::address> ip);

  HandlerOptions opts_;
  nanoseconds read_timeout_{0};
  nanoseconds idle_timeout_{0};
  bool notls_ = false;
  bool bind_ = false;
  bool udp_ = false;
  bool udp_resolve_domain_ = false;
  std::size_t udp_buffer_ = 4096;
  std::optional<std::pair<unsigned short, unsigned short>> bind_range_;
  std::string public_addr_;
  net::TlsContextPtr tls_;
  net::MuxConfig mux_;
};

awaitable<bool> Socks5Handler::handshake(StreamPtr& client, socks5::Request& req, ConnInfo& conn) {
  Stream* current = client.get();
  Deadline deadline(client->executor(), read_timeout_, [&current] {
    if (current) current->close();
  });
  error_code ec;
  std::string buf;
  std::vector<std::uint8_t> methods;
  auto r = co_await net::read_message(
      *client, buf, [&](std::string_view d) { return socks5::parse_greeting(d, methods); }, ec);
  if (r.status != socks5::Status::complete) {
    if (r.status == socks5::Status::bad) conn.log.debug("socks5: bad greeting");
    co_return false;
  }
  std::uint8_t m = socks5::select_method(methods, opts_.auth != nullptr, !notls_);
  if (log::enabled(log::Level::trace))
    conn.log.trace(fmt::format("socks5: {} methods offered, selected {:#04x}", methods.size(), m));
  co_await write_all(*client, asio::buffer(socks5::method_reply(m)), ec);
  if (ec) co_return false;
  if (m == socks5::method::none_acceptable) {
    conn.log.warn(fmt::format("{}: socks5: no acceptable authentication method", conn.remote));
    conn.failed();  // GOST's handshake fails with an error here
    co_return false;
  }
  if (m == socks5::method::tls || m == socks5::method::tls_auth) {
    try {
      client = co_await net::tls_accept(std::move(client), tls_);
    } catch (const system_error& e) {
      current = nullptr;
      conn.log.debug(fmt::format("socks5: tls handshake: {}", error_text(e)));
      co_return false;
    }
    current = client.get();
  }
  if (m == socks5::method::user_pass || m == socks5::method::tls_auth) {
    buf.clear();
    std::string user, pass;
    r = co_await net::read_message(
        *client, buf,
        [&](std::string_view d) { return socks5::parse_user_pass_request(d, user, pass); }, ec);
    if (r.status != socks5::Status::complete) co_return false;
    // Locals: nothing temporary inside the co_await (docs/ARCHITECTURE.md "Concurrency").
    std::string auth_user(user), auth_pass(pass);
    std::optional<std::string> id =
        co_await opts_.auth->authenticate_async(opts_.service, auth_user, auth_pass, conn.remote);
    co_await write_all(*client, asio::buffer(socks5::user_pass_reply(id.has_value())), ec);
    if (!id) {
      conn.log.info(fmt::format("{}: socks5: authentication failed", conn.remote),
                    {{"user", user}});
      conn.failed();  // GOST's handshake fails with an error here
      co_return false;
    }
    if (ec) co_return false;
    conn.client_id = *id;
    conn.log = conn.log.with({{"user", *id}, {"clientID", *id}});
  }
  conn.authenticated();
  buf.clear();
  r = co_await net::read_message(
      *client, buf, [&](std::string_view d) { return socks5::parse_request(d, req); }, ec);
  if (r.status != socks5::Status::complete) {
    if (r.status == socks5::Status::bad) conn.log.debug("socks5: bad request");
    co_return false;
  }
  co_return true;
}

awaitable<void> Socks5Handler::handle(StreamPtr client, ConnInfo& conn) {
  socks5::Request req;
  if (!co_await handshake(client, req, conn)) co_return;
  if (log::enabled(log::Level::trace))
    conn.log.trace(fmt::format("socks5: cmd {:#04x} {}", req.cmd, req.addr.to_string()));
  switch (req.cmd) {
    case socks5::cmd::connect:
      co_await connect(std::move(client), req.addr, conn);
      co_return;
    case socks5::cmd::bind:
      if (!bind_) break;
      co_await bind(std::move(client), req.addr, conn);
      co_return;
    case socks5::cmd::udp_associate:
      if (!udp_) break;
      co_await udp_associate(std::move(client), conn);
      co_return;
    case socks5::cmd::udp_tun:
      if (req.addr.port == 0 ? !udp_ : !bind_) break;
      co_await udp_tun(std::move(client), req.addr, conn);
      co_return;
    case socks5::cmd::mbind:
      if (!bind_) break;
      co_await mbind(std::move(client), req.addr, conn);
      co_return;
    default:
      conn.log.debug(fmt::format("socks5: command {:#04x} not supported", req.cmd));
      co_await reply(*client, socks5::rep::command_not_supported);
      co_return;
  }
  conn.log.debug(
      fmt::format("socks5: command {:#04x} not allowed (see the udp/bind options)", req.cmd));
  co_await reply(*client, socks5::rep::not_allowed);
}

awaitable<void> Socks5Handler::connect(StreamPtr client, const socks5::Address& dst,
                                       ConnInfo& conn) {
  std::string addr = dst.to_string();
  conn.log = conn.log.with("dst", addr);
  // The service's bypass (go-gost/x handler/socks/v5: REP 0x02).
  bool refused = co_await opts_.router->bypassed_async("tcp", addr, conn.client_id);
  if (refused) {
    conn.log.debug(fmt::format("bypass: {}", addr));
    co_await reply(*client, socks5::rep::not_allowed);
    co_return;
  }
  StreamPtr upstream;
  try {
    upstream = co_await opts_.router->dial("tcp", addr, conn);
  } catch (const system_error&) {
  }
  if (!upstream) {
    co_await reply(*client, socks5::rep::network_unreachable);
    co_return;
  }
  auto bnd = socks5::address_from_text(upstream->local_address());
  std::string ok =
      bnd ? socks5::reply(socks5::rep::succeeded, *bnd) : socks5::reply(socks5::rep::succeeded);
  error_code ec;
  co_await write_all(*client, asio::buffer(ok), ec);
  if (ec) co_return;
  auto relaying = relay_to_end(std::move(client), std::move(upstream), std::move(addr), conn,
                               {.idle_timeout = idle_timeout_});
  co_await std::move(relaying);
}

// A zero-length domain: what GOST clients send for `rtcp://:2222` (gosocks5 encodes an empty host
// as a domain); like Go's net.Listen(":2222"), the dual-stack wildcard.
bool empty_host(const socks5::Address& a) {
  return a.type == socks5::atyp::domain && a.host.empty();
}

// ---- BIND -------------------------------------------------------------------------------------

awaitable<void> Socks5Handler::bind(StreamPtr client, const socks5::Address& dst, ConnInfo& conn) {
  auto ex = client->executor();
  conn.log = conn.log.with("dst", dst.to_string());
  tcp::acceptor acceptor(ex);
  error_code ec;
  try {
    tcp::endpoint ep;
    if (empty_host(dst)) {
      ep = {asio::ip::address_v6::any(), dst.port};
    } else if (dst.type == socks5::atyp::domain) {
      tcp::resolver resolver(ex);
      auto [rec, results] =
          co_await resolver.async_resolve(dst.host, std::to_string(dst.port), use_nothrow);
      if (rec || results.empty())
        throw system_error(rec ? rec : asio::error::host_not_found, "resolve");
      ep = results.begin()->endpoint();
    } else {
      ep = {*net::parse_ip(dst.host), dst.port};
    }
    acceptor.open(ep.protocol());
    if (ep.address().is_v6()) acceptor.set_option(asio::ip::v6_only(!empty_host(dst)));
    acceptor.bind(ep);
    acceptor.listen();
  } catch (const std::exception& e) {
    conn.log.error(fmt::format("socks5: bind {}: {}", dst.to_string(), error_text(e)));
    ec = asio::error::address_in_use;
  }
  if (ec) {
    co_await reply(*client, socks5::rep::general_failure);
    co_return;
  }
  auto port = acceptor.local_endpoint(ec).port();
  std::optional<socks5::Address> bnd;
  if (!public_addr_.empty())
    bnd = socks5::address_from_text(
        join_host_port(host_of(public_addr_).empty() ? public_addr_ : host_of(public_addr_),
                       std::to_string(port)));
  if (!bnd)
    bnd = socks5::address_from_text(
        join_host_port(host_of(client->local_address()), std::to_string(port)));
  std::string first = socks5::reply(socks5::rep::succeeded, *bnd);
  co_await write_all(*client, asio::buffer(first), ec);
  if (ec) co_return;
  conn.log.debug(fmt::format("socks5: bind on {}", bnd->to_string()));

  // Wait for one peer; meanwhile the control stream is watched: its end closes the listener, and
  // bytes that arrive early are kept for the peer.
  std::string pending;
  bool control_done = false;
  asio::cancellation_signal stop_watch;
  asio::steady_timer watch_finished(ex, asio::steady_timer::time_point::max());
  bool watching = true;
  bool watch_done = false;
  Stream& control = *client;
  asio::co_spawn(
      ex,
      [&]() -> awaitable<void> {
        char b[4096];
        for (;;) {
          error_code rec;
          std::size_t n = co_await control.read_some(asio::buffer(b), rec);
          if (rec || pending.size() + n > kMaxBindPending) break;
          pending.append(b, n);
        }
        if (!watching) co_return;  // stopped because a peer was accepted
        control_done = true;
        error_code ignored;
        acceptor.close(ignored);
      },
      asio::bind_cancellation_slot(stop_watch.slot(), [&](std::exception_ptr) {
        watch_done = true;
        watch_finished.cancel();
      }));
  tcp::socket peer(ex);
  auto [aec] = co_await acceptor.async_accept(peer, use_nothrow);
  if (!control_done) {
    watching = false;
    stop_watch.emit(asio::cancellation_type::terminal);
  }
  while (!watch_done) co_await watch_finished.async_wait(use_nothrow);
  acceptor.close(ec);
  if (aec || control_done) {
    if (!control_done) {
      conn.log.error(fmt::format("socks5: bind accept: {}", aec.message()));
      co_await reply(*client, socks5::rep::general_failure);
    }
    co_return;
  }
  error_code pec;
  auto peer_ep = peer.remote_endpoint(pec);
  std::string peer_addr = pec ? std::string("0.0.0.0:0") : endpoint_text(peer_ep);
  auto pa = socks5::address_from_text(peer_addr);
  std::string second = socks5::reply(socks5::rep::succeeded, *pa);
  co_await write_all(*client, asio::buffer(second), ec);
  if (ec) co_return;
  auto upstream = std::make_unique<TcpStream>(std::move(peer));
  if (!pending.empty()) {
    co_await write_all(*upstream, asio::buffer(pending), ec);
    if (ec) co_return;
    conn.input_bytes += pending.size();
  }
  auto relaying = relay_to_end(std::move(client), std::move(upstream), std::move(peer_addr), conn,
                               {.idle_timeout = idle_timeout_});
  co_await std::move(relaying);
}

// ---- MBIND ("socks5: BIND and MBIND"): the control stream is an smux session, a stream per peer

awaitable<void> Socks5Handler::mbind(StreamPtr client, const socks5::Address& dst, ConnInfo& conn) {
  auto ex = client->executor();
  conn.log = conn.log.with("dst", dst.to_string());
  auto acceptor = std::make_shared<tcp::acceptor>(ex);
  bool ok = true;
  try {
    tcp::endpoint ep;
    if (empty_host(dst)) {
      ep = {asio::ip::address_v6::any(), dst.port};
    } else if (dst.type == socks5::atyp::domain) {
      tcp::resolver resolver(ex);
      std::string port = std::to_string(dst.port);
      auto [rec, results] = co_await resolver.async_resolve(dst.host, port, use_nothrow);
      if (rec || results.empty())
        throw system_error(rec ? rec : asio::error::host_not_found, "resolve");
      ep = results.begin()->endpoint();
    } else {
      ep = {*net::parse_ip(dst.host), dst.port};
    }
    acceptor->open(ep.protocol());
    if (ep.address().is_v6()) acceptor->set_option(asio::ip::v6_only(!empty_host(dst)));
    acceptor->bind(ep);
    acceptor->listen();
  } catch (const std::exception& e) {
    conn.log.error(fmt::format("socks5: mbind {}: {}", dst.to_string(), error_text(e)));
    ok = false;
  }
  if (!ok) {
    co_await reply(*client, socks5::rep::general_failure);
    co_return;
  }
  error_code ec;
  auto port = acceptor->local_endpoint(ec).port();
  std::optional<socks5::Address> bnd;
  if (!public_addr_.empty())
    bnd = socks5::address_from_text(
        join_host_port(host_of(public_addr_).empty() ? public_addr_ : host_of(public_addr_),
                       std::to_string(port)));
  if (!bnd)
    bnd = socks5::address_from_text(
        join_host_port(host_of(client->local_address()), std::to_string(port)));
  std::string first = socks5::reply(socks5::rep::succeeded, *bnd);
  co_await write_all(*client, asio::buffer(first), ec);
  if (ec) co_return;
  auto bound = bnd->to_string();
  conn.log = conn.log.with("bind", bound);
  auto start = std::chrono::steady_clock::now();
  conn.log.info(fmt::format("{} <-> {} (mbind)", conn.remote, bound));
  auto session = net::MuxSession::client(std::move(client), mux_);
  // Each stream starts with "05 00 00 ATYP <peer ip> <peer port>".
  std::function<std::string(const std::string&)> header = [](const std::string& peer) {
    auto a = socks5::address_from_text(peer);
    return a ? socks5::reply(socks5::rep::succeeded, *a) : socks5::reply(socks5::rep::succeeded);
  };
  RelayOptions options{.idle_timeout = idle_timeout_};
  co_await net::serve_mux_bind(acceptor, session, header, conn, options);
  conn.log.info(fmt::format("{} >-< {} (mbind)", conn.remote, bound),
                {{"duration", (std::chrono::steady_clock::now() - start).count()}});
}

// ---- UDP --------------------------------------------------------------------------------------

udp::socket Socks5Handler::open_associate_socket(asio::any_io_executor ex,
                                                 std::optional<asio::ip::address> ip) {
  if (!bind_range_) return net::open_udp(ex, ip, 0);
  auto [lo, hi] = *bind_range_;
  std::uniform_int_distribution<unsigned> pick(lo, hi);
  std::mt19937 rng(std::random_device{}());
  unsigned port = pick(rng);
  for (int attempt = 0;; ++attempt) {
    try {
      return net::open_udp(ex, ip, static_cast<unsigned short>(port));
    } catch (const system_error& e) {
      if (e.code() != asio::error::address_in_use || attempt >= 63) throw;
    }
    port = port >= hi ? lo : port + 1;
  }
}

awaitable<void> Socks5Handler::udp_associate(StreamPtr client, ConnInfo& conn) {
  auto ex = client->executor();
  auto local_ip = net::parse_ip(host_of(client->local_address()));
  std::unique_ptr<AssociateConn> assoc;
  net::UdpUpstream up;
  socks5::Address bnd{socks5::atyp::ipv4, "0.0.0.0", 0};
  try {
    auto sock = open_associate_socket(ex, local_ip);
    std::string bnd_ip = local_ip ? local_ip->to_string() : "0.0.0.0";
    if (auto pub =
            net::parse_ip(host_of(public_addr_).empty() ? public_addr_ : host_of(public_addr_)))
      bnd_ip = pub->to_string();
    auto a = socks5::address_from_text(
        join_host_port(bnd_ip, std::to_string(sock.local_endpoint().port())));
    if (a) bnd = *a;
    metrics::SinkPtr sink;
    if (conn.metrics) sink = conn.metrics->sink();
    assoc = std::make_unique<AssociateConn>(std::move(sock), net::parse_ip(host_of(conn.remote)),
                                            udp_buffer_, conn.log, std::move(sink));
    up = co_await net::open_udp_upstream(*opts_.router, conn);
  } catch (const system_error& e) {
    conn.log.error(fmt::format("socks5: udp associate: {}", error_text(e)));
    up.conn = nullptr;
  }
  if (!assoc || !up.conn) {
    co_await reply(*client, socks5::rep::general_failure);
    co_return;
  }
  error_code ec;
  std::string ok = socks5::reply(socks5::rep::succeeded, bnd);
  co_await write_all(*client, asio::buffer(ok), ec);
  if (ec) co_return;
  conn.log = conn.log.with("bind", bnd.to_string());
  conn.log.info(fmt::format("{} <-> {} (udp associate)", conn.remote, bnd.to_string()));
  co_await net::relay_datagrams(*assoc, *up.conn, client.get(), conn, datagram_options());
  conn.log.info(fmt::format("{} >-< {} (udp associate)", conn.remote, bnd.to_string()));
}

awaitable<void> Socks5Handler::udp_tun(StreamPtr client, const socks5::Address& dst,
                                       ConnInfo& conn) {
  net::UdpUpstream up;
  std::string bnd_text;
  if (dst.port == 0) {  // relay mode
    try {
      up = co_await net::open_udp_upstream(*opts_.router, conn);
    } catch (const system_error& e) {
      conn.log.error(fmt::format("socks5: udp tun: {}", error_text(e)));
      co_return;  // GOST closes without a reply here
    }
    error_code lec;
    bnd_text = up.socket ? net::endpoint_text(up.socket->socket().local_endpoint(lec))
                         : up.stream->local_address();
  } else {  // bind mode: a local socket on DST
    try {
      std::optional<asio::ip::address> ip;  // none: the dual-stack wildcard
      if (!empty_host(dst)) ip = co_await net::resolve_udp_host(dst.host);
      up.socket =
          std::make_unique<net::UdpSocketConn>(net::open_udp(client->executor(), ip, dst.port));
      up.conn = up.socket.get();
      bnd_text = net::endpoint_text(up.socket->socket().local_endpoint());
    } catch (const system_error& e) {
      conn.log.error(fmt::format("socks5: udp tun bind {}: {}", dst.to_string(), error_text(e)));
      up.conn = nullptr;
    }
    if (!up.conn) {
      co_await reply(*client, socks5::rep::general_failure);
      co_return;
    }
  }
  // The OS reports a dual-stack wildcard as "::"; GOST answers it as ATYP 4.
  auto bnd = socks5::address_from_text(bnd_text);
  std::string ok =
      bnd ? socks5::reply(socks5::rep::succeeded, *bnd) : socks5::reply(socks5::rep::succeeded);
  error_code ec;
  co_await write_all(*client, asio::buffer(ok), ec);
  if (ec) co_return;
  net::UdpTunStream tun(std::move(client));
  conn.log.info(fmt::format("{} <-> {} (udp tun)", conn.remote, bnd_text));
  co_await net::relay_datagrams(tun, *up.conn, nullptr, conn, datagram_options());
  conn.log.info(fmt::format("{} >-< {} (udp tun)", conn.remote, bnd_text));
}

HandlerFactory socks5_factory() {
  return [](const HandlerOptions& o) { return std::shared_ptr<Handler>(new Socks5Handler(o)); };
}

GOST_REGISTER(HandlerRegistry, "socks5", socks5_factory());
GOST_REGISTER(HandlerRegistry, "socks", socks5_factory());

}  // namespace
}  // namespace gost
