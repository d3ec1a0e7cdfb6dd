// Handler "masque": MASQUE's proxy on listener http3 (docs/PROTOCOLS.md "masque"), as go-gost/x
// handler/masque answers: a CONNECT (TCP: the target in :authority, 443 without a port) or a
// CONNECT-UDP (RFC 9298: the target in the path, datagrams as HTTP/3 datagrams). Basic proxy
// authentication (407 with Proxy-Authenticate), the bypass (403), a failed dial (503), another
// method (405), another :protocol, a bad UDP path or no capsule-protocol (400). The listener's
// PHT tunnels (it serves both) go to handler auto with the same options.
#include "net/masque.hpp"

#include <fmt/format.h>

#include "chain/chain.hpp"
#include "core/address.hpp"
#include "core/component.hpp"
#include "core/counted_stream.hpp"
#include "core/tunnel.hpp"
#include "net/udp_relay.hpp"
#include "proto/http.hpp"
#include "proto/masque.hpp"
#include "proto/pht.hpp"

namespace gost {
namespace {

using net::quic::RequestStream;
using std::chrono::nanoseconds;

class MasqueHandler final : public Handler {
 public:
  explicit MasqueHandler(const HandlerOptions& o) : opts_(o) {
    const std::string where = fmt::format("{}: handler masque", o.service);
    const auto& md = o.config.metadata;
    reject_unsupported_handler_options(md, where);
    realm_ = md.get_string("authBasicRealm").value_or("");
    if (realm_.empty()) realm_ = "gost";
    for (auto key : {"bufferSize", "udp.bufferSize"}) {
      if (!md.contains(key)) continue;
      auto v = md.get_int(key);
      if (!v || *v > 65535 + 262)
        throw config::ConfigError(fmt::format("{}: invalid \"{}\"", where, key));
      if (*v > 0) buffer_size_ = static_cast<std::size_t>(*v);
      break;
    }
    for (auto key : {"readTimeout", "read.timeout", "idleTimeout"}) {
      if (!md.contains(key)) continue;
      auto v = md.get_duration(key);
      if (!v || v->count() < 0)
        throw config::ConfigError(fmt::format("{}: invalid \"{}\"", where, key));
      read_timeout_ = *v;
      break;
    }
    auto* autof = HandlerRegistry::find("auto");
    if (!autof) throw config::ConfigError(where + ": handler auto is missing");
    auto_ = (*autof)(o);
  }

  awaitable<void> handle(StreamPtr stream, ConnInfo& conn) override {
    auto req = net::quic::request_of(uncounted(*stream));
    if (!req) co_return co_await auto_->handle(std::move(stream), conn);  // a PHT tunnel
    const auto& head = req->head();
    if (log::enabled(log::Level::trace)) {
      std::string dump;
      for (const auto& h : head) dump += fmt::format("{}: {}\n", h.name, h.value);
      conn.log.trace(dump);
    }
    if (net::h2_header(head, ":method") != "CONNECT") {
      conn.log.error("masque: method not allowed");
      co_return answer(*req, 405);
    }
    auto protocol = net::h2_header(head, ":protocol");
    if (protocol == "connect-udp") co_return co_await connect_udp(std::move(stream), req, conn);
    if (!protocol.empty()) {
      conn.log.error(fmt::format("masque: unsupported protocol: {}", protocol));
      co_return answer(*req, 400);
    }
    co_await connect_tcp(std::move(stream), req, conn);
  }

 private:
  // A whole answer without a body, as quic-go's server writes a status alone.
  static void answer(RequestStream& req, int status, net::quic::Headers extra = {}) {
    net::quic::Headers h{{":status", std::to_string(status)}};
    h.insert(h.end(), extra.begin(), extra.end());
    h.push_back({"content-length", "0"});
    h.push_back({"date", proto::pht::current_http_date()});
    error_code ec;
    req.respond(h, ec);
    if (ec) return;
    req.finish();
    req.stop_reading();  // a CONNECT's body would be the tunnel: not wanted after a refusal
  }

  // Basic proxy authentication: true when the client may go on (its id in conn), else answered.
  awaitable<bool> authenticate(RequestStream& req, ConnInfo& conn) {
    if (!opts_.auth) {
      conn.authenticated();
      co_return true;
    }
    auto credentials =
        proto::http::parse_basic_auth(net::h2_header(req.head(), "proxy-authorization"));
    std::string auth_user = std::move(credentials.first), auth_pass = std::move(credentials.second);
    auto id =
        co_await opts_.auth->authenticate_async(opts_.service, auth_user, auth_pass, conn.remote);
    if (!id) {
      conn.log.warn(fmt::format("{}: authentication failed", conn.remote), {{"user", auth_user}});
      conn.failed();
      // Locals: nothing temporary inside the co_await (docs/ARCHITECTURE.md "Concurrency").
      net::quic::Headers challenge{
          {"proxy-authenticate", fmt::format("Basic realm=\"{}\"", realm_)}};
      answer(req, 407, std::move(challenge));
      co_return false;
    }
    conn.client_id = *id;
    conn.log = conn.log.with("user", *id);
    conn.authenticated();
    co_return true;
  }

  awaitable<void> connect_tcp(StreamPtr stream, std::shared_ptr<RequestStream> req,
                              ConnInfo& conn) {
    if (!co_await authenticate(*req, conn)) co_return;
    std::string host(net::h2_header(req->head(), ":authority"));
    if (host.empty()) {
      conn.log.error("masque: missing target address in :authority");
      co_return answer(*req, 400);
    }
    std::string addr = ensure_port(host, "443");
    add_log_field(conn, "dst", addr);
    if (co_await opts_.router->bypassed_async("tcp", addr, conn.client_id)) {
      conn.log.debug(fmt::format("bypass: {}", addr));
      co_return answer(*req, 403);
    }
    StreamPtr upstream;
    try {
      upstream = co_await opts_.router->dial("tcp", addr, conn);
    } catch (const system_error&) {  // logged by the router
    }
    if (!upstream) co_return answer(*req, 503);
    error_code ec;
    req->respond({{":status", "200"}, {"date", proto::pht::current_http_date()}}, ec);
    if (ec) co_return;
    auto relaying = relay_to_end(std::move(stream), std::move(upstream), std::move(addr), conn,
                                 {.idle_timeout = read_timeout_});
    co_await std::move(relaying);
  }

  awaitable<void> connect_udp(StreamPtr stream, std::shared_ptr<RequestStream> req,
                              ConnInfo& conn) {
    // GOST's order: the capsule header, authentication, the path, the bypass.
    if (net::h2_header(req->head(), "capsule-protocol") != "?1") {
      conn.log.error("masque: capsule-protocol header required");
      co_return answer(*req, 400);
    }
    if (!co_await authenticate(*req, conn)) co_return;
    auto target = proto::masque::parse_udp_path(net::h2_header(req->head(), ":path"));
    if (!target) {
      conn.log.error(fmt::format("masque: invalid path: {}", net::h2_header(req->head(), ":path")));
      co_return answer(*req, 400);
    }
    std::string addr = join_host_port(target->host, std::to_string(target->port));
    add_log_field(conn, "dst", fmt::format("{}/udp", addr));
    if (co_await opts_.router->bypassed_async("udp", addr, conn.client_id)) {
      conn.log.debug(fmt::format("bypass: {}", addr));
      co_return answer(*req, 403);
    }
    // As GOST: the answer first (datagrams may follow it at once), then the target.
    auto flow = net::masque::datagram_flow(req, addr);
    error_code ec;
    req->respond(
        {{":status", "200"}, {"capsule-protocol", "?1"}, {"date", proto::pht::current_http_date()}},
        ec);
    if (ec) co_return;
    StreamPtr up;
    try {
      up = co_await net::dial_udp_target(*opts_.router, addr, conn);
    } catch (const system_error& e) {
      conn.log.error(fmt::format("masque: {}: {}", addr, error_text(e)));
      co_return;  // the flow's stream is reset as it goes
    }
    auto* packets = dynamic_cast<net::PacketConn*>(up.get());
    if (!packets)
      throw system_error(asio::error::operation_not_supported,
                         "UDP through this chain is not supported: the last node's connector does "
                         "not carry datagrams");
    conn.log.debug(fmt::format("{} <-> {}/udp", conn.remote, addr));
    auto relaying = net::relay_datagrams(
        *dynamic_cast<net::PacketConn*>(flow.get()), *packets, nullptr, conn,
        {.buffer_size = buffer_size_, .tag = "masque", .router = opts_.router.get()});
    co_await std::move(relaying);
    conn.log.debug(fmt::format("{} >-< {}/udp", conn.remote, addr));
    (void)stream;  // held until the flow ends: the request's metrics and its end
  }

  HandlerOptions opts_;
  std::shared_ptr<Handler> auto_;
  std::string realm_;
  std::size_t buffer_size_ = 4096;
  nanoseconds read_timeout_{0};
};

GOST_REGISTER(HandlerRegistry, "masque", [](const HandlerOptions& o) {
  return std::shared_ptr<Handler>(new MasqueHandler(o));
});

}  // namespace
}  // namespace gost
