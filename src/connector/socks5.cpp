// Connectors "socks5" and "socks": GOST's SOCKS5 client (docs/PROTOCOLS.md "socks5: connector") —
// method negotiation with the TLS methods 0x80/0x82 unless notls, RFC 1929, CONNECT, and UDP over
// UDP-TUN (0xF3).
#include "proto/socks5.hpp"

#include <fmt/format.h>

#include "core/address.hpp"
#include "core/component.hpp"
#include "core/timeout.hpp"
#include "net/bind.hpp"
#include "net/mux.hpp"
#include "net/tls.hpp"
#include "net/udp.hpp"

namespace gost {
namespace {

namespace socks5 = proto::socks5;

[[noreturn]] void fail(std::string_view what, error_code ec = asio::error::connection_refused) {
  throw system_error(ec, fmt::format("connector socks5: {}", what));
}

class Socks5Connector final : public Connector {
 public:
  explicit Socks5Connector(const ConnectorOptions& o) {
    const auto& md = o.config.metadata;
    if (o.config.auth && !(o.config.auth->username.empty() && o.config.auth->password.empty()))
      auth_ = std::make_pair(o.config.auth->username, o.config.auth->password);
    if (auth_ && (auth_->first.size() > 255 || auth_->second.size() > 255))
      throw config::ConfigError(
          "connector socks5: user name and password are limited to 255 bytes");
    notls_ = md.get_bool("notls").value_or(false);
    timeout_ = md.get_duration("timeout").value_or(std::chrono::nanoseconds(0));
    if (auto relay = md.get_string("relay"); relay && *relay == "udp")
      throw config::ConfigError(
          "connector socks5: option \"relay=udp\" (UDP over standard UDP ASSOCIATE) is not "
          "supported by this implementation; the default UDP-TUN works with GOST servers");
    reject_unsupported(md, {"udp.timeout"}, "connector socks5");
    if (!notls_) tls_ = net::client_context(o.config.tls, o.node_addr);
  }

  awaitable<StreamPtr> handshake(StreamPtr s) override {
    Stream* current = s.get();
    Deadline deadline(s->executor(), timeout_, [&current] {
      if (current) current->close();
    });
    auto methods = socks5::client_methods(auth_.has_value(), notls_);
    co_await write_all(*s, asio::buffer(socks5::greeting(methods)));
    std::string buf;
    std::uint8_t m = 0;
    error_code ec;
    auto r = co_await net::read_message(
        *s, buf, [&](std::string_view d) { return socks5::parse_method_reply(d, m); }, ec);
    if (ec) fail(fmt::format("reading method selection: {}", ec.message()), ec);
    if (r.status != socks5::Status::complete) fail("bad version in method selection");
    switch (m) {
      case socks5::method::no_auth:
        co_return s;
      case socks5::method::tls:
      case socks5::method::tls_auth:
        if (!tls_) fail(fmt::format("server selected TLS method {:#04x} although notls is set", m));
        s = co_await net::tls_connect(std::move(s), tls_);
        current = s.get();
        if (m == socks5::method::tls) co_return s;
        break;
      case socks5::method::user_pass:
        break;
      case socks5::method::none_acceptable:
        fail("bad method (server accepts none of the offered methods)");
      default:
        fail(fmt::format("bad format (server selected unknown method {:#04x})", m));
    }
    auto req = socks5::user_pass_request(auth_ ? auth_->first : "", auth_ ? auth_->second : "");
    co_await write_all(*s, asio::buffer(*req));
    buf.clear();
    std::uint8_t status = 0;
    r = co_await net::read_message(
        *s, buf, [&](std::string_view d) { return socks5::parse_user_pass_reply(d, status); }, ec);
    if (ec) fail(fmt::format("reading authentication reply: {}", ec.message()), ec);
    if (r.status != socks5::Status::complete) fail("bad version in authentication reply");
    if (status != 0) fail("auth failure");
    co_return s;
  }

  awaitable<StreamPtr> connect(StreamPtr s, std::string_view network, std::string_view address,
                               const log::Logger& log) override {
    bool udp = network.substr(0, 3) == "udp";
    if (!udp && network.substr(0, 3) != "tcp") fail(fmt::format("network {} unsupported", network));
    if (!udp && dynamic_cast<net::PacketConn*>(s.get()))
      fail("tcp over a datagram stream is not supported");
    socks5::Address target{socks5::atyp::ipv4, "0.0.0.0", 0};
    if (!udp) {
      std::string addr(address);
      if (auto hp = split_host_port(addr); hp && hp->host.empty())
        addr = join_host_port("127.0.0.1", hp->port);
      auto a = socks5::address_from_text(addr);
      if (!a)
        fail(fmt::format("invalid target address {}", address), asio::error::invalid_argument);
      target = *a;
    }
    Stream* current = s.get();
    Deadline deadline(s->executor(), timeout_, [current] { current->close(); });
    auto req = socks5::request(udp ? socks5::cmd::udp_tun : socks5::cmd::connect, target);
    if (log::enabled(log::Level::trace))
      log.trace(
          fmt::format("socks5: request {} {}", udp ? "udp-tun" : "connect", target.to_string()));
    co_await write_all(*s, asio::buffer(req));
    std::string buf;
    socks5::Request reply;
    error_code ec;
    auto r = co_await net::read_message(
        *s, buf, [&](std::string_view d) { return socks5::parse_reply(d, reply); }, ec);
    if (ec) fail(fmt::format("reading reply: {}", ec.message()), ec);
    if (r.status != socks5::Status::complete) fail("malformed reply");
    if (reply.cmd != socks5::rep::succeeded)
      fail(fmt::format("host unreachable (reply code {:#04x})", reply.cmd),
           asio::error::host_unreachable);
    if (udp) co_return std::make_unique<net::UdpTunStream>(std::move(s));
    co_return s;
  }

  // BIND for rtcp/rudp (docs/PROTOCOLS.md "rtcp and rudp"; go-gost/x connector/socks/v5/bind.go):
  // tcp always asks for the multiplexed MBIND (0xF2): the node opens a mux stream (default smux
  // options) per inbound connection, each starting with a `05 00 00 <peer>` reply; udp asks for
  // UDP-TUN (0xF3), whose frames carry the peers' datagrams.
  awaitable<std::unique_ptr<Binding>> bind(StreamPtr s, std::string_view network,
                                           std::string_view address, const BindOptions& options,
                                           const log::Logger& log) override {
    bool udp = network.substr(0, 3) == "udp";
    if (!udp && network.substr(0, 3) != "tcp") fail(fmt::format("network {} unsupported", network));
    auto target = socks5::address_from_text(address);
    if (!target)
      fail(fmt::format("invalid bind address {}", address), asio::error::invalid_argument);
    // `rtcp://:2222`: an empty host goes as a zero-length domain, as gosocks5 encodes it.
    if (auto hp = split_host_port(address); hp && hp->host.empty())
      target = socks5::Address{socks5::atyp::domain, "", target->port};
    socks5::Request reply;
    {
      Stream* current = s.get();
      Deadline deadline(s->executor(), timeout_, [current] { current->close(); });
      const std::uint8_t command = udp ? socks5::cmd::udp_tun : socks5::cmd::mbind;
      std::string req = socks5::request(command, *target);
      co_await write_all(*s, asio::buffer(req));
      std::string buf;
      error_code ec;
      auto r = co_await net::read_message(
          *s, buf, [&](std::string_view d) { return socks5::parse_reply(d, reply); }, ec);
      if (ec)
        fail(fmt::format("bind on {}/{}: reading reply: {}", address, network, ec.message()), ec);
      if (r.status != socks5::Status::complete) fail("malformed reply");
    }
    if (reply.cmd != socks5::rep::succeeded)
      fail(fmt::format("bind on {}/{} failed (reply code {:#04x})", address, network, reply.cmd));
    std::string bound = reply.addr.to_string();
    log.debug(fmt::format("bind on {}/{} OK", bound, udp ? "udp" : "tcp"));
    if (udp)
      co_return net::udp_binding(std::make_unique<net::UdpTunStream>(std::move(s)), bound, options,
                                 log);
    auto session = net::MuxSession::server(std::move(s), net::MuxConfig{});
    net::PeerHeaderReader header = [](Stream& st, error_code& hec) -> awaitable<std::string> {
      std::string buf;
      socks5::Request rep;
      auto r = co_await net::read_message(
          st, buf, [&](std::string_view d) { return socks5::parse_reply(d, rep); }, hec);
      if (hec) co_return std::string();
      if (r.status != socks5::Status::complete || rep.cmd != socks5::rep::succeeded) {
        hec = asio::error::connection_refused;  // "peer connect failed"
        co_return std::string();
      }
      co_return rep.addr.to_string();
    };
    co_return net::mux_binding(std::move(session), std::move(bound), std::move(header), log);
  }

 private:
  std::optional<std::pair<std::string, std::string>> auth_;
  bool notls_ = false;
  std::chrono::nanoseconds timeout_{0};
  net::TlsContextPtr tls_;
};

ConnectorFactory socks5_factory() {
  return
      [](const ConnectorOptions& o) { return std::shared_ptr<Connector>(new Socks5Connector(o)); };
}

GOST_REGISTER(ConnectorRegistry, "socks5", socks5_factory());
GOST_REGISTER(ConnectorRegistry, "socks", socks5_factory());

}  // namespace
}  // namespace gost
