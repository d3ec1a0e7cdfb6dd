// Handler "relay": GOST's relay protocol server (docs/PROTOCOLS.md "relay: handler") — CONNECT over
// tcp and udp, UDP BIND (the UDP association GOST clients use), and forward mode for services with
// targets.
#include "core/relay.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstring>

#include "chain/chain.hpp"
#include "chain/hop.hpp"
#include "core/address.hpp"
#include "core/buffer_pool.hpp"
#include "core/buffered_stream.hpp"
#include "core/tcp_stream.hpp"
#include "core/timeout.hpp"
#include "core/tunnel.hpp"
#include "net/mux.hpp"
#include "net/udp.hpp"
#include "net/udp_relay.hpp"
#include "proto/relay.hpp"

namespace gost {
namespace {

namespace rp = proto::relay;
using udp = asio::ip::udp;
using std::chrono::nanoseconds;
using Clock = std::chrono::steady_clock;

// ---- datagram plumbing ------------------------------------------------------------------------

// Runs two directions of a session; when the first one ends both streams are closed, which ends
// the other one too. Returns once both are done.
struct PairState {
  explicit PairState(asio::any_io_executor ex) : signal(ex) {}
  asio::steady_timer signal;
  int done = 0;
};

awaitable<void> pair_member(awaitable<void> op, PairState& st, std::function<void()> stop) {
  try {
    co_await std::move(op);
  } catch (const std::exception&) {
  }
  if (st.done++ == 0) stop();
  st.signal.cancel();
}

awaitable<void> run_pair(awaitable<void> x, awaitable<void> y, std::function<void()> stop) {
  auto ex = co_await asio::this_coro::executor;
  PairState st(ex);
  asio::co_spawn(ex, pair_member(std::move(x), st, stop), asio::detached);
  asio::co_spawn(ex, pair_member(std::move(y), st, stop), asio::detached);
  while (st.done < 2) {
    st.signal.expires_at(Clock::time_point::max());
    co_await st.signal.async_wait(use_nothrow);
  }
}

// ---- the first response piggy-backed on the first target bytes ("relay: handler") ----------

// Wraps the client stream: the first write carries the response too.
class ReplyOnFirstWrite final : public Stream {
 public:
  explicit ReplyOnFirstWrite(StreamPtr inner)
      : inner_(std::move(inner)), reply_(rp::encode_status(rp::Status::ok)) {}
  asio::any_io_executor executor() override { return inner_->executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    co_return co_await inner_->read_some(buf, ec);
  }
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    if (reply_.empty()) co_return co_await inner_->write_some(buf, ec);
    std::string joined = std::move(reply_);
    reply_.clear();
    joined.append(static_cast<const char*>(buf.data()), buf.size());
    co_await write_all(*inner_, asio::buffer(joined), ec);
    co_return ec ? 0 : buf.size();
  }
  awaitable<void> wait_readable(error_code& ec) override { return inner_->wait_readable(ec); }
  Poll poll_readable() override { return inner_->poll_readable(); }
  bool writable_now() override { return inner_->writable_now(); }
  awaitable<void> wait_writable(error_code& ec) override { return inner_->wait_writable(ec); }
  awaitable<void> shutdown_write(error_code& ec) override { return inner_->shutdown_write(ec); }
  void close() override { inner_->close(); }
  // Reads are the inner stream's; writes too once the reply is out. So the client → target
  // direction splices from the start and the reverse one as soon as the target has spoken.
  tcp::socket* raw_tcp() override { return inner_->raw_tcp(); }
  tcp::socket* raw_tcp_write() override {
    return reply_.empty() ? inner_->raw_tcp_write() : nullptr;
  }

 private:
  StreamPtr inner_;
  std::string reply_;
};

// ---- the handler ------------------------------------------------------------------------------

struct ParsedRequest {
  std::uint8_t cmd = 0;
  rp::Features features;
  std::string pending;  // bytes that followed the request in the same reads
};

// What the request phase leaves to the TCP relay, which has started (logged, the bytes that
// followed the request sent on). Everything else the request phase needed is gone when it
// returns, so an idle tunnel's frame holds only this (docs/ARCHITECTURE.md "Memory").
struct TcpTunnel {
  StreamPtr target;      // null: the connection is done (refused, failed, or a UDP/BIND session)
  std::string addr;      // for the ">-<" line
  bool replied = false;  // nodelay: the response is out (else it goes with the first bytes)
  std::chrono::steady_clock::time_point start;  // of the relay, for the ">-<" line
};

class RelayHandler final : public Handler {
 public:
  explicit RelayHandler(const HandlerOptions& o) : opts_(o) {
    const auto& md = o.config.metadata;
    mux_ = net::mux_config(md, "handler relay");
    reject_unsupported_handler_options(md, "handler relay");
    auto rt = md.get_duration("readTimeout").value_or(nanoseconds(0));
    read_timeout_ = rt.count() <= 0 ? std::chrono::seconds(15) : rt;
    bind_ = md.get_bool("bind").value_or(false);
    nodelay_ = md.get_bool("nodelay").value_or(false);
    auto bs = md.get_int("udp.bufferSize");
    if (!bs) bs = md.get_int("udpBufferSize");
    udp_buffer_ = static_cast<std::size_t>(std::clamp<std::int64_t>(bs.value_or(4096), 512, 65535));
  }

  awaitable<void> handle(StreamPtr client, ConnInfo& conn) override;

 private:
  // The request phase: request, authentication, dial, error replies; runs UDP and BIND sessions
  // to their end itself (taking `client`). Fills `t` for a TCP tunnel (no target: none).
  // open_tunnel() only stores request_phase()'s result: awaited in handle(), a returned
  // TcpTunnel would take a temporary's slot in handle()'s frame.
  awaitable<void> open_tunnel(StreamPtr& client, ConnInfo& conn, TcpTunnel& t);
  awaitable<TcpTunnel> request_phase(StreamPtr& client, ConnInfo& conn);
  awaitable<std::optional<ParsedRequest>> read_request(Stream& client, ConnInfo& conn);
  awaitable<TcpTunnel> connect(StreamPtr& client, ParsedRequest req, const std::string& network,
                               const std::string& addr, ConnInfo& conn);
  awaitable<TcpTunnel> forward(StreamPtr& client, ParsedRequest req, const std::string& network,
                               ConnInfo& conn);
  // A dialed target: a TCP tunnel is returned to handle() for relaying; UDP is served here.
  awaitable<TcpTunnel> serve(StreamPtr& client, StreamPtr target, std::string pending,
                             const std::string& network, const std::string& addr, ConnInfo& conn);
  awaitable<void> bind(StreamPtr client, ParsedRequest req, const std::string& network,
                       const rp::Address& addr, ConnInfo& conn);
  awaitable<void> tcp_bind(StreamPtr client, ParsedRequest req, const rp::Address& addr,
                           ConnInfo& conn);
  awaitable<StreamPtr> dial(const std::string& network, const std::string& addr, ConnInfo& conn);
  awaitable<void> serve_udp(Stream& client, Stream& target, const std::string& addr,
                            std::string pending, ConnInfo& conn);

  HandlerOptions opts_;
  nanoseconds read_timeout_{0};
  bool bind_ = false;
  bool nodelay_ = false;
  std::size_t udp_buffer_ = 4096;
  net::MuxConfig mux_;
};

awaitable<void> reply(Stream& client, rp::Status s) {
  error_code ignored;
  auto bytes = rp::encode_status(s);
  co_await write_all(client, asio::buffer(bytes), ignored);
}

awaitable<std::optional<ParsedRequest>> RelayHandler::read_request(Stream& client, ConnInfo& conn) {
  // Reads in chunks: header and features usually arrive with the first payload bytes (GOST's
  // combined first write); what follows the request is kept for the target.
  std::string buf;
  std::size_t need = rp::kHeaderSize;
  error_code ec;
  {
    Deadline deadline(client.executor(), read_timeout_, [&client] { client.close(); });
    while (buf.size() < need) {
      co_await client.wait_readable(ec);  // no buffer while the client is silent
      if (ec) break;
      std::size_t old = buf.size();
      buf.resize(std::max(need, old + 4096));
      std::size_t n =
          co_await client.read_some(asio::buffer(buf.data() + old, buf.size() - old), ec);
      buf.resize(old + n);
      if (ec) break;
      if (auto h = rp::parse_header(buf)) {
        if (h->version != rp::kVersion) break;
        need = rp::kHeaderSize + h->features_length;
      }
    }
  }
  if (auto h = rp::parse_header(buf); h && h->version != rp::kVersion) {
    conn.log.warn(fmt::format("bad relay version 0x{:02x}", h->version));
    co_return std::nullopt;
  }
  if (buf.size() < need) {
    if (ec == asio::error::eof || ec == asio::error::operation_aborted ||
        ec == asio::error::bad_descriptor)
      conn.log.debug(buf.empty() ? "connection closed before a request"
                                 : "truncated relay request (closed or readTimeout)");
    else
      conn.log.debug(fmt::format("read request: {}", ec.message()));
    co_return std::nullopt;
  }
  auto h = rp::parse_header(buf);
  auto f = rp::parse_features(std::string_view(buf).substr(rp::kHeaderSize, h->features_length));
  if (!f) {
    conn.log.warn("malformed relay request features");
    co_return std::nullopt;
  }
  co_return ParsedRequest{h->code, std::move(*f), buf.substr(need)};
}

// The TCP tunnel's life: the request phase runs in open_tunnel(), whose frames are gone once it
// returns, and the relay goes on without this frame (relay_to_end).
awaitable<void> RelayHandler::handle(StreamPtr client, ConnInfo& conn) {
  TcpTunnel t;
  co_await open_tunnel(client, conn, t);
  if (!t.target) co_return;
  // The response rides on the first bytes to the client (unless nodelay sent it already).
  if (!t.replied) client = std::make_unique<ReplyOnFirstWrite>(std::move(client));
  // "<->" was written by serve() with the network: relay_logged() without it.
  RelayOptions options;
  options.since = t.start;
  auto relaying =
      relay_to_end(std::move(client), std::move(t.target), std::move(t.addr), conn, options);
  co_await std::move(relaying);
}

awaitable<void> RelayHandler::open_tunnel(StreamPtr& client, ConnInfo& conn, TcpTunnel& t) {
  t = co_await request_phase(client, conn);
}

awaitable<TcpTunnel> RelayHandler::request_phase(StreamPtr& client, ConnInfo& conn) {
  auto parsed = co_await read_request(*client, conn);
  if (!parsed) co_return TcpTunnel{};
  ParsedRequest req = std::move(*parsed);
  const auto& f = req.features;

  if (opts_.auth) {
    std::string user = f.auth ? f.auth->user : "";
    std::string pass = f.auth ? f.auth->password : "";
    // Locals: nothing temporary inside the co_await (docs/ARCHITECTURE.md "Concurrency").
    std::string auth_user(user), auth_pass(pass);
    std::optional<std::string> id =
        co_await opts_.auth->authenticate_async(opts_.service, auth_user, auth_pass, conn.remote);
    if (!id) {
      conn.log.warn(fmt::format("{}: authentication failed", conn.remote), {{"user", user}});
      co_await reply(*client, rp::Status::unauthorized);
      conn.failed();  // GOST's handler returns an error after the 401 status
      co_return TcpTunnel{};
    }
    conn.client_id = *id;
    add_log_field(conn, "user", *id);
  }
  conn.authenticated();

  std::string network(rp::network_name(f.network.value_or(0)));
  if (req.cmd & rp::kFlagUdp) network = "udp";
  std::string addr;
  if (f.address) {
    addr = f.address->to_string();
    if (network == "unix" || network == "serial") addr = f.address->host;
  }

  if (opts_.forwarder) co_return co_await forward(client, std::move(req), network, conn);

  switch (req.cmd & rp::kCmdMask) {
    case 0x00:
    case rp::kCmdConnect:
      co_return co_await connect(client, std::move(req), network, addr, conn);
    case rp::kCmdBind: {
      auto a = f.address.value_or(rp::Address{});
      co_await bind(std::move(client), std::move(req), network, a, conn);
      co_return TcpTunnel{};
    }
    default:
      conn.log.warn(fmt::format("unknown relay command 0x{:02x}", req.cmd & rp::kCmdMask));
      co_await reply(*client, rp::Status::bad_request);
      co_return TcpTunnel{};
  }
}

awaitable<StreamPtr> RelayHandler::dial(const std::string& network, const std::string& addr,
                                        ConnInfo& conn) {
  if (network == "unix" || network == "serial" || network == "ip")
    throw system_error(
        asio::error::operation_not_supported,
        fmt::format("relay: network {} is not supported by this implementation", network));
  if (network == "udp") {
    // Through a chain the last connector returns a datagram stream; directly, a UDP socket.
    if (opts_.router->has_chain()) co_return co_await opts_.router->dial("udp", addr, conn);
    try {
      co_return co_await net::dial_udp(addr);
    } catch (const system_error& e) {
      conn.log.error(error_text(e));
      throw;
    }
  }
  co_return co_await opts_.router->dial("tcp", addr, conn);
}

awaitable<TcpTunnel> RelayHandler::connect(StreamPtr& client, ParsedRequest req,
                                           const std::string& network, const std::string& addr,
                                           ConnInfo& conn) {
  if (addr.empty()) {
    conn.log.warn("relay CONNECT without an address");
    co_await reply(*client, rp::Status::bad_request);
    co_return TcpTunnel{};
  }
  add_log_field(conn, "dst", addr);
  // The service's bypass (go-gost/x handler/relay: StatusForbidden).
  bool refused = co_await opts_.router->bypassed_async(network, addr, conn.client_id);
  if (refused) {
    conn.log.debug(fmt::format("bypass: {}", addr));
    co_await reply(*client, rp::Status::forbidden);
    co_return TcpTunnel{};
  }
  StreamPtr target;
  try {
    target = co_await dial(network, addr, conn);
  } catch (const system_error& e) {
    if (e.code() == asio::error::operation_not_supported) conn.log.error(error_text(e));
  }
  if (!target) {
    co_await reply(*client, rp::Status::network_unreachable);
    co_return TcpTunnel{};
  }
  co_return co_await serve(client, std::move(target), std::move(req.pending), network, addr, conn);
}

awaitable<TcpTunnel> RelayHandler::forward(StreamPtr& client, ParsedRequest req,
                                           const std::string& network, ConnInfo& conn) {
  std::string net = network == "udp" ? "udp" : "tcp";
  // A node whose bypass covers its address is skipped (docs/PROTOCOLS.md "cli: forwarding").
  std::shared_ptr<Node> node =
      co_await opts_.forwarder->select_target_async(conn.remote, net, conn.client_id);
  if (!node) {
    conn.log.warn("relay forward: no target available");
    co_await reply(*client, rp::Status::service_unavailable);
    co_return TcpTunnel{};
  }
  add_log_field(conn, "dst", node->addr);
  // The service's bypass (as for CONNECT: Forbidden, nothing dialed).
  bool refused = co_await opts_.router->bypassed_async(net, node->addr, conn.client_id);
  if (refused) {
    conn.log.debug(fmt::format("bypass: {}", node->addr));
    co_await reply(*client, rp::Status::forbidden);
    co_return TcpTunnel{};
  }
  StreamPtr target;
  try {
    target = co_await dial(net, node->addr, conn);
  } catch (const system_error&) {
  }
  if (!target) {
    node->marker.mark();
    co_await reply(*client, rp::Status::host_unreachable);
    co_return TcpTunnel{};
  }
  node->marker.reset();
  co_return co_await serve(client, std::move(target), std::move(req.pending), net, node->addr,
                           conn);
}

awaitable<TcpTunnel> RelayHandler::serve(StreamPtr& client, StreamPtr target, std::string pending,
                                         const std::string& network, const std::string& addr,
                                         ConnInfo& conn) {
  auto start = Clock::now();
  conn.log.info(fmt::format("{} <-> {}", conn.remote, addr), {{"network", network}});
  bool relay_tcp = false;
  if (network == "udp") {
    co_await serve_udp(*client, *target, addr, std::move(pending), conn);
  } else {
    error_code ec;
    if (!pending.empty()) {
      co_await write_all(*target, asio::buffer(pending), ec);
      if (!ec) conn.input_bytes += pending.size();
    }
    if (!ec && nodelay_) {
      const std::string ok = rp::encode_status(rp::Status::ok);
      co_await write_all(*client, asio::buffer(ok), ec);
    }
    relay_tcp = !ec;
  }
  if (relay_tcp) co_return TcpTunnel{std::move(target), addr, nodelay_, start};
  conn.log.info(fmt::format("{} >-< {}", conn.remote, addr),
                {{"duration", (Clock::now() - start).count()}});
  co_return TcpTunnel{};
}

// client frames LEN(2)+DATA → one datagram each, to `addr`.
awaitable<void> frames_to_datagrams(Stream& client, net::PacketConn& target, std::string addr,
                                    std::string in, std::uint64_t& count) {
  error_code ec;
  for (;;) {
    while (auto size = rp::datagram_frame_size(in)) {
      if (in.size() < *size) break;
      co_await target.write_to(asio::buffer(in.data() + 2, *size - 2), addr, ec);
      if (ec) co_return;
      count += *size - 2;
      in.erase(0, *size);
    }
    if (in.empty()) std::string().swap(in);  // nothing held while idle
    co_await client.wait_readable(ec);
    if (ec) co_return;
    RelayBuffer buf;
    std::size_t n = co_await client.read_some(asio::buffer(buf.data(), buf.size()), ec);
    if (ec) co_return;
    in.append(buf.data(), n);
  }
}

// target datagrams → LEN(2)+DATA frames; the first one carries `reply` (when not yet sent).
awaitable<void> datagrams_to_frames(net::PacketConn& target, Stream& client, std::string reply,
                                    std::uint64_t& count) {
  error_code ec;
  std::string from;
  for (;;) {
    RelayBuffer buf;
    std::size_t n = co_await target.read_from(
        asio::buffer(buf.data(), std::min(buf.size(), rp::kMaxDatagram)), from, ec);
    if (ec) co_return;
    std::string out = std::move(reply);
    reply.clear();
    out += *rp::encode_datagram(std::string_view(buf.data(), n));
    co_await write_all(client, asio::buffer(out), ec);
    if (ec) co_return;
    count += n;
  }
}

awaitable<void> RelayHandler::serve_udp(Stream& client, Stream& target, const std::string& addr,
                                        std::string pending, ConnInfo& conn) {
  auto* packets = dynamic_cast<net::PacketConn*>(&target);
  if (!packets) {
    conn.log.error(
        "relay: UDP through this chain is not supported: the last node's connector "
        "does not carry datagrams");
    co_return;
  }
  std::string ok = rp::encode_status(rp::Status::ok);
  if (nodelay_) {
    error_code ec;
    co_await write_all(client, asio::buffer(ok), ec);
    if (ec) co_return;
    ok.clear();
  }
  co_await run_pair(
      frames_to_datagrams(client, *packets, addr, std::move(pending), conn.input_bytes),
      datagrams_to_frames(*packets, client, std::move(ok), conn.output_bytes), [&client, packets] {
        client.close();
        packets->close();
      });
}

// ---- UDP BIND: UDP-TUN frames ⇄ a local UDP socket (docs/PROTOCOLS.md "relay: handler") ---------

awaitable<void> RelayHandler::bind(StreamPtr client, ParsedRequest req, const std::string& network,
                                   const rp::Address& addr, ConnInfo& conn) {
  if (!bind_) {
    conn.log.debug("relay BIND is disabled (bind=false)");
    co_await reply(*client, rp::Status::forbidden);
    co_return;
  }
  if (network == "tcp") co_return co_await tcp_bind(std::move(client), std::move(req), addr, conn);
  if (network == "unix") {
    conn.log.error("relay: BIND on a unix socket is not supported by this implementation");
    co_await reply(*client, rp::Status::service_unavailable);
    co_return;
  }
  if (network != "udp") {
    co_await reply(*client, rp::Status::bad_request);
    co_return;
  }
  // An empty host or 0.0.0.0 is GOST's dual-stack wildcard, reported as [::]:port.
  std::optional<udp::socket> sock;
  try {
    std::optional<asio::ip::address> ip;
    if (!addr.host.empty() && addr.host != "0.0.0.0" && addr.host != "::")
      ip = co_await net::resolve_udp_host(addr.host);
    sock.emplace(net::open_udp(client->executor(), ip, addr.port));
  } catch (const system_error& e) {
    conn.log.error(fmt::format("relay UDP BIND {}: {}", addr.to_string(), error_text(e)));
    co_return;  // GOST closes without a response here
  }
  error_code ec;
  auto local = sock->local_endpoint(ec);
  rp::Response resp;
  resp.features.address = rp::parse_address(net::endpoint_text(local));
  auto bytes = rp::encode_response(resp);
  if (!ec) co_await write_all(*client, asio::buffer(*bytes), ec);
  if (ec) co_return;
  auto bound = resp.features.address->to_string();
  add_log_field(conn, "bind", bound);
  auto start = Clock::now();
  conn.log.info(fmt::format("{} <-> {} (udp bind)", conn.remote, bound));
  net::UdpSocketConn socket_conn(std::move(*sock));
  net::UdpTunStream tun(with_prefix(std::move(client), std::move(req.pending)));
  co_await net::relay_datagrams(
      tun, socket_conn, nullptr, conn,
      {.buffer_size = udp_buffer_, .tag = "relay", .router = opts_.router.get()});
  conn.log.info(fmt::format("{} >-< {} (udp bind)", conn.remote, bound),
                {{"duration", (Clock::now() - start).count()}});
}

// ---- TCP BIND: a listener whose connections come back as smux streams ("relay: framing") ----

// Listens on `addr`: an empty host, 0.0.0.0 or :: is GOST's dual-stack wildcard ([::]:port).
awaitable<std::shared_ptr<tcp::acceptor>> listen_tcp(asio::any_io_executor ex,
                                                     const rp::Address& addr) {
  auto acceptor = std::make_shared<tcp::acceptor>(ex);
  std::vector<tcp::endpoint> eps;
  if (addr.host.empty() || addr.host == "0.0.0.0" || addr.host == "::") {
    eps.emplace_back(asio::ip::address_v6::any(), addr.port);
    eps.emplace_back(asio::ip::address_v4::any(), addr.port);
  } else if (auto ip = net::parse_ip(addr.host)) {
    eps.emplace_back(*ip, addr.port);
  } else {
    tcp::resolver resolver(ex);
    std::string port = std::to_string(addr.port);
    auto [rec, results] = co_await resolver.async_resolve(addr.host, port, use_nothrow);
    if (rec || results.empty())
      throw system_error(rec ? rec : asio::error::host_not_found, "resolve " + addr.host);
    eps.push_back(results.begin()->endpoint());
  }
  error_code ec;
  for (const auto& ep : eps) {
    acceptor->close(ec);
    acceptor->open(ep.protocol(), ec);
    if (ec) continue;
    acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (ep.address().is_v6())
      acceptor->set_option(asio::ip::v6_only(!ep.address().is_unspecified()), ec);
    acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) co_return acceptor;
  }
  throw system_error(ec, "listen tcp " + addr.to_string());
}

awaitable<void> RelayHandler::tcp_bind(StreamPtr client, ParsedRequest req, const rp::Address& addr,
                                       ConnInfo& conn) {
  std::shared_ptr<tcp::acceptor> acceptor;
  try {
    acceptor = co_await listen_tcp(client->executor(), addr);
  } catch (const system_error& e) {
    conn.log.error(fmt::format("relay TCP BIND {}: {}", addr.to_string(), error_text(e)));
  }
  if (!acceptor) {
    co_await reply(*client, rp::Status::service_unavailable);
    co_return;
  }
  error_code ec;
  auto local = acceptor->local_endpoint(ec);
  rp::Response resp;
  resp.features.address = rp::parse_address(endpoint_text(local));
  auto bytes = rp::encode_response(resp);
  if (!ec) co_await write_all(*client, asio::buffer(*bytes), ec);
  if (ec) co_return;
  auto bound = resp.features.address->to_string();
  add_log_field(conn, "bind", bound);
  auto start = Clock::now();
  conn.log.info(fmt::format("{} <-> {} (tcp bind)", conn.remote, bound));
  auto session =
      net::MuxSession::client(with_prefix(std::move(client), std::move(req.pending)), mux_);
  // Each stream starts with "01 00 <FEALEN> <address feature: peer ip:port>".
  std::function<std::string(const std::string&)> header = [](const std::string& peer) {
    rp::Response r;
    r.features.address = rp::parse_address(peer);
    return rp::encode_response(r).value_or(rp::encode_status(rp::Status::ok));
  };
  RelayOptions options;
  co_await net::serve_mux_bind(acceptor, session, header, conn, options);
  conn.log.info(fmt::format("{} >-< {} (tcp bind)", conn.remote, bound),
                {{"duration", (Clock::now() - start).count()}});
}

GOST_REGISTER(HandlerRegistry, "relay", [](const HandlerOptions& o) {
  return std::shared_ptr<Handler>(new RelayHandler(o));
});

}  // namespace
}  // namespace gost
