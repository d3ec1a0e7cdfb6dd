// Connector "tunnel": GOST's tunnel client (docs/PROTOCOLS.md "tunnel: connector"; go-gost/x
// connector/tunnel). As the chain's last node under an rtcp listener it registers a connector
// for its tunnel ID (relay BIND with the tunnel-id feature; the connection becomes an smux
// session whose server side we are: the tunnel server opens a stream per visitor, each starting
// with a relay response naming the visitor and the destination). As a plain node it is a visitor:
// relay CONNECT with the tunnel ID.
#include <fmt/format.h>

#include "core/component.hpp"
#include "core/timeout.hpp"
#include "net/bind.hpp"
#include "net/mux.hpp"
#include "net/udp.hpp"
#include "proto/relay.hpp"

namespace gost {
namespace {

namespace rp = proto::relay;

// One relay response, read exactly; a status other than OK is an error ("status <n>").
awaitable<rp::Features> read_response(Stream& s, error_code& ec) {
  char head[rp::kHeaderSize];
  co_await net::read_exact(s, head, sizeof head, ec);
  if (ec) co_return rp::Features{};
  auto h = rp::parse_header(std::string_view(head, sizeof head));
  if (h->version != rp::kVersion) {
    ec = asio::error::invalid_argument;
    co_return rp::Features{};
  }
  std::string features(h->features_length, '\0');
  co_await net::read_exact(s, features.data(), features.size(), ec);
  if (ec) co_return rp::Features{};
  auto f = rp::parse_features(features);
  if (!f) {
    ec = asio::error::invalid_argument;
    co_return rp::Features{};
  }
  if (h->code != static_cast<std::uint8_t>(rp::Status::ok))
    ec = h->code == static_cast<std::uint8_t>(rp::Status::unauthorized)
             ? asio::error::access_denied
             : asio::error::connection_refused;
  co_return std::move(*f);
}

// The binding of a UDP connector: each accepted stream is a visitor's datagram flow.
class DatagramBinding final : public Binding {
 public:
  explicit DatagramBinding(std::unique_ptr<Binding> inner) : inner_(std::move(inner)) {}
  awaitable<StreamPtr> accept(error_code& ec) override {
    StreamPtr s = co_await inner_->accept(ec);
    if (!s) co_return nullptr;
    std::string peer = s->remote_address();
    co_return std::make_unique<net::LenDatagramFlow>(std::move(s), std::move(peer));
  }
  std::string address() const override { return inner_->address(); }
  void close() override { inner_->close(); }

 private:
  std::unique_ptr<Binding> inner_;
};

class TunnelConnector final : public Connector {
 public:
  explicit TunnelConnector(const ConnectorOptions& o) {
    const auto& md = o.config.metadata;
    const std::string where = "connector tunnel";
    std::string id = md.get_string("tunnel.id").value_or("");
    if (id.empty()) id = md.get_string("tunnelID").value_or("");
    auto tid = rp::TunnelId::parse(id);
    if (!tid || tid->is_zero())
      throw config::ConfigError(fmt::format(
          "{}: tunnel.id must be a UUID (e.g. ?tunnel.id=893787fd-fcd2-46a0-8dc4-f9f8a1f1b0c9), "
          "got \"{}\"",
          where, id));
    tid_ = *tid;
    if (auto w = md.get_int("tunnel.weight").value_or(0); w > 0)
      tid_.set_weight(static_cast<std::uint8_t>(std::min<std::int64_t>(w, 255)));
    if (o.config.auth && !o.config.auth->username.empty())
      auth_ = rp::UserAuth{o.config.auth->username, o.config.auth->password};
    connect_timeout_ = md.get_duration("connectTimeout").value_or(std::chrono::nanoseconds(0));
    (void)md.get_bool("nodelay");  // the request is always sent at once (connector.go)
    // go-gost/x connector/tunnel: smux version 2 by default.
    mux_ = net::mux_config(md, where, 2, 2, 65536);
  }

  // connector/tunnel bind.go: 01 02|80 FEALEN [auth] <source> <bind address> <tunnel ID>.
  awaitable<std::unique_ptr<Binding>> bind(StreamPtr s, std::string_view network,
                                           std::string_view address, const BindOptions&,
                                           const log::Logger& log) override {
    bool udp = network.substr(0, 3) == "udp";
    if (!udp && network.substr(0, 3) != "tcp")
      throw system_error(asio::error::operation_not_supported,
                         fmt::format("connector tunnel: network {} is unsupported", network));
    rp::FeatureWriter w;
    if (auth_) w.auth(*auth_);
    w.address(s->local_address()).address(address).tunnel(tid_);
    auto bytes = rp::encode_with(rp::kCmdBind | (udp ? rp::kFlagUdp : 0), w);
    if (!bytes)
      throw system_error(
          asio::error::invalid_argument,
          fmt::format("connector tunnel: bind address {} cannot be encoded", address));
    rp::Features f;
    error_code ec;
    {
      Stream& stream = *s;
      Deadline deadline(stream.executor(), connect_timeout_, [&stream] { stream.close(); });
      co_await write_all(stream, asio::buffer(*bytes), ec);
      if (!ec) f = co_await read_response(stream, ec);
    }
    if (ec) throw system_error(ec, fmt::format("create tunnel {} failed", tid_.to_string()));
    std::string bound = f.address ? f.address->to_string() : std::string(address);
    std::string cid = f.tunnel ? f.tunnel->to_string() : std::string();
    log.info(fmt::format("create tunnel on {}/{} OK, tunnel={}, connector={}", bound, network,
                         tid_.to_string(), cid));
    auto session = net::MuxSession::server(std::move(s), mux_);
    // Each stream starts with a relay response: the visitor's address, then the destination.
    net::PeerHeaderReader header = [](Stream& st, error_code& hec) -> awaitable<std::string> {
      auto hf = co_await read_response(st, hec);
      if (hec) co_return std::string();
      co_return hf.addresses.empty() ? std::string() : hf.addresses.front().to_string();
    };
    auto binding = net::mux_binding(std::move(session), std::move(bound), std::move(header), log);
    if (udp) co_return std::make_unique<DatagramBinding>(std::move(binding));
    co_return binding;
  }

  // connector.go: 01 01 FEALEN [auth] <source> <destination> <tunnel ID>, the response read at
  // once.
  awaitable<StreamPtr> connect(StreamPtr s, std::string_view network, std::string_view address,
                               const log::Logger& log) override {
    bool udp = network == "udp" || network == "udp4" || network == "udp6";
    if (!udp && network != "tcp" && network != "tcp4" && network != "tcp6")
      throw system_error(asio::error::operation_not_supported,
                         fmt::format("connector tunnel: network {} is unsupported", network));
    if (!udp && dynamic_cast<net::PacketConn*>(s.get()))
      throw system_error(asio::error::operation_not_supported,
                         "connector tunnel: tcp over a datagram stream is not supported");
    rp::FeatureWriter w;
    if (udp) w.network(rp::Network::udp);  // connector.go: FUDP and the network feature first
    if (auth_) w.auth(*auth_);
    w.address(s->local_address()).address(address).tunnel(tid_);
    auto bytes = rp::encode_with(rp::kCmdConnect | (udp ? rp::kFlagUdp : 0), w);
    if (!bytes)
      throw system_error(asio::error::invalid_argument,
                         fmt::format("connector tunnel: address {} cannot be encoded", address));
    error_code ec;
    {
      Stream& stream = *s;
      Deadline deadline(stream.executor(), connect_timeout_, [&stream] { stream.close(); });
      co_await write_all(stream, asio::buffer(*bytes), ec);
      if (!ec) co_await read_response(stream, ec);
    }
    if (ec) {
      log.error(fmt::format("connector tunnel: connect {} via tunnel {}: {}", address,
                            tid_.to_string(), ec.message()));
      throw system_error(ec, fmt::format("connector tunnel: {} {}", network, address));
    }
    if (udp) co_return std::make_unique<net::LenDatagramFlow>(std::move(s), std::string(address));
    co_return s;
  }

 private:
  rp::TunnelId tid_;
  std::optional<rp::UserAuth> auth_;
  std::chrono::nanoseconds connect_timeout_{0};
  net::MuxConfig mux_;
};

GOST_REGISTER(ConnectorRegistry, "tunnel", [](const ConnectorOptions& o) {
  return std::shared_ptr<Connector>(new TunnelConnector(o));
});

}  // namespace
}  // namespace gost
