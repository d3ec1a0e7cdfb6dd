// Connector "relay": asks a GOST relay node to connect (docs/PROTOCOLS.md "relay: connector"). By
// default nothing is sent at connect time: the request travels in the same write as the first
// payload bytes and the response is consumed by the first read (GOST's combined first write);
// `nodelay=true` exchanges request and response up front.
#include "proto/relay.hpp"

#include <fmt/format.h>

#include "core/component.hpp"
#include "core/timeout.hpp"
#include "net/bind.hpp"
#include "net/mux.hpp"
#include "net/udp.hpp"

namespace gost {
namespace {

namespace rp = proto::relay;

awaitable<void> read_exact(Stream& s, asio::mutable_buffer buf, error_code& ec) {
  return net::read_exact(s, static_cast<char*>(buf.data()), buf.size(), ec);
}

// Reads one response exactly (4 + FEALEN bytes, nothing more); a non-zero status becomes an
// error logged as "<code> <text>". `features` (if any) receives the response's features.
awaitable<void> read_response(Stream& s, const log::Logger& log, error_code& ec,
                              rp::Features* features_out = nullptr) {
  char head[rp::kHeaderSize];
  co_await read_exact(s, asio::buffer(head), ec);
  if (ec) co_return;
  auto h = rp::parse_header(std::string_view(head, sizeof head));
  if (h->version != rp::kVersion) {
    log.error(fmt::format("connector relay: bad response version 0x{:02x}", h->version));
    ec = asio::error::invalid_argument;
    co_return;
  }
  std::string features(h->features_length, '\0');
  co_await read_exact(s, asio::buffer(features), ec);
  if (ec) co_return;
  auto parsed = rp::parse_features(features);
  if (!parsed) {
    log.error("connector relay: malformed response features");
    ec = asio::error::invalid_argument;
    co_return;
  }
  if (features_out) *features_out = std::move(*parsed);
  if (h->code != static_cast<std::uint8_t>(rp::Status::ok)) {
    log.error(fmt::format("connector relay: {} {}", h->code, rp::status_text(h->code)));
    ec = h->code == static_cast<std::uint8_t>(rp::Status::unauthorized)
             ? asio::error::access_denied
             : asio::error::connection_refused;
  }
}

// The TCP tunnel. `request` non-empty: still to be sent with the first write; `awaiting_reply`:
// the first read consumes the response first.
class RelayTunnel final : public Stream {
 public:
  RelayTunnel(StreamPtr inner, std::string request, const log::Logger& log)
      : inner_(std::move(inner)),
        request_(std::move(request)),
        log_(std::make_unique<log::Logger>(log)) {}

  asio::any_io_executor executor() override { return inner_->executor(); }

  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    if (awaiting_reply_) {
      co_await read_response(*inner_, *log_, ec);
      if (ec) co_return 0;
      awaiting_reply_ = false;
      log_.reset();  // only the response is logged: no copy of the fields while the tunnel lasts
    }
    co_return co_await inner_->read_some(buf, ec);
  }

  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    if (request_.empty()) co_return co_await inner_->write_some(buf, ec);
    std::string out = std::move(request_);
    request_.clear();
    out.append(static_cast<const char*>(buf.data()), buf.size());
    co_await write_all(*inner_, asio::buffer(out), ec);
    co_return ec ? 0 : buf.size();
  }

  awaitable<void> wait_readable(error_code& ec) override { return inner_->wait_readable(ec); }
  Poll poll_readable() override { return inner_->poll_readable(); }

  bool writable_now() override { return inner_->writable_now(); }
  awaitable<void> wait_writable(error_code& ec) override { return inner_->wait_writable(ec); }
  awaitable<void> shutdown_write(error_code& ec) override {
    if (!request_.empty()) {  // half-closed before any data: the request still has to go out
      std::string out = std::move(request_);
      request_.clear();
      co_await write_all(*inner_, asio::buffer(out), ec);
      if (ec) co_return;
    }
    co_await inner_->shutdown_write(ec);
  }

  void close() override { inner_->close(); }
  tcp::socket* raw_tcp() override {
    return request_.empty() && !awaiting_reply_ ? inner_->raw_tcp() : nullptr;
  }
  // Writes may bypass the wrapper as soon as the request is out, even while the reply is awaited
  // (a target that never speaks first never sends it).
  tcp::socket* raw_tcp_write() override {
    return request_.empty() ? inner_->raw_tcp_write() : nullptr;
  }
  std::string remote_address() const override { return inner_->remote_address(); }
  std::string local_address() const override { return inner_->local_address(); }

 private:
  StreamPtr inner_;
  std::string request_;
  bool awaiting_reply_ = true;
  std::unique_ptr<log::Logger> log_;  // while awaiting_reply_
};

// UDP CONNECT: datagrams to one destination framed LEN(2)+DATA (net::LenDatagramFlow: every
// datagram goes to the connect address whatever it names, reads report that address). The request
// rides on the first datagram unless already sent; the reply is read before the first datagram.
class RelayUdpTunnel final : public net::LenDatagramFlow {
 public:
  RelayUdpTunnel(StreamPtr inner, std::string request, bool awaiting_reply, std::string target,
                 log::Logger log)
      : LenDatagramFlow(std::move(inner), std::move(target), std::move(request)),
        awaiting_reply_(awaiting_reply),
        log_(std::move(log)) {}

  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    if (awaiting_reply_) {
      co_await read_response(*inner_, log_, ec);
      if (ec) co_return 0;
      awaiting_reply_ = false;
    }
    co_return co_await LenDatagramFlow::read_some(buf, ec);
  }

 private:
  bool awaiting_reply_;
  log::Logger log_;
};

class RelayConnector final : public Connector {
 public:
  explicit RelayConnector(const ConnectorOptions& o) {
    const auto& md = o.config.metadata;
    if (o.config.auth && !o.config.auth->username.empty())
      auth_ = rp::UserAuth{o.config.auth->username, o.config.auth->password};
    nodelay_ = md.get_bool("nodelay").value_or(false);
    connect_timeout_ = md.get_duration("connectTimeout").value_or(std::chrono::nanoseconds(0));
    mux_ = net::mux_config(md, "connector relay");
    // go-gost/x connector/relay: tunnelID (alias tunnel.id) adds the tunnel-id feature to CONNECT
    // (a visitor of a tunnel server's entrypoint, docs/PROTOCOLS.md "tunnel").
    std::string tid = md.get_string("tunnel.id").value_or("");
    if (tid.empty()) tid = md.get_string("tunnelID").value_or("");
    if (!tid.empty()) {
      tunnel_ = rp::TunnelId::parse(tid);
      if (!tunnel_)
        throw config::ConfigError(fmt::format("connector relay: tunnel.id {} is not a UUID", tid));
    }
  }

  // BIND (docs/PROTOCOLS.md "rtcp and rudp"): `01 02|80 FEALEN [auth] network addr`, the response
  // names the bound address; then, for tcp, a mux session whose streams the node opens (we are
  // its server side), each starting with a relay response naming the peer; for udp, UDP-TUN
  // frames (go-gost/x connector/relay/bind.go).
  awaitable<std::unique_ptr<Binding>> bind(StreamPtr s, std::string_view network,
                                           std::string_view address, const BindOptions& options,
                                           const log::Logger& log) override {
    bool udp = network.substr(0, 3) == "udp";
    if (!udp && network.substr(0, 3) != "tcp")
      throw system_error(asio::error::operation_not_supported,
                         fmt::format("connector relay: network {} is unsupported", network));
    std::string addr = address.empty() ? std::string("0.0.0.0:0") : std::string(address);
    rp::Request req;
    req.cmd = rp::kCmdBind | (udp ? rp::kFlagUdp : 0);
    req.features.auth = auth_;
    req.features.network = static_cast<std::uint16_t>(udp ? rp::Network::udp : rp::Network::tcp);
    req.features.address = rp::parse_address(addr);
    auto bytes = req.features.address ? rp::encode_request(req) : std::nullopt;
    if (!bytes)
      throw system_error(asio::error::invalid_argument,
                         fmt::format("connector relay: bind address {} cannot be encoded", addr));
    rp::Features features;
    error_code ec;
    {
      Stream& stream = *s;
      Deadline deadline(stream.executor(), connect_timeout_, [&stream] { stream.close(); });
      co_await write_all(stream, asio::buffer(*bytes), ec);
      if (!ec) co_await read_response(stream, log, ec, &features);
    }
    if (ec) throw system_error(ec, fmt::format("bind on {}/{} failed", addr, network));
    std::string bound = features.address ? features.address->to_string() : addr;
    log.debug(fmt::format("bind on {}/{} OK", bound, udp ? "udp" : "tcp"));
    if (udp)
      co_return net::udp_binding(std::make_unique<net::UdpTunStream>(std::move(s)), bound, options,
                                 log);
    auto session = net::MuxSession::server(std::move(s), mux_);
    net::PeerHeaderReader header = [log](Stream& st, error_code& hec) -> awaitable<std::string> {
      rp::Features f;
      co_await read_response(st, log, hec, &f);
      if (hec) co_return std::string();
      co_return f.address ? f.address->to_string() : std::string();
    };
    co_return net::mux_binding(std::move(session), std::move(bound), std::move(header), log);
  }

  awaitable<StreamPtr> connect(StreamPtr s, std::string_view network, std::string_view address,
                               const log::Logger& log) override {
    rp::Request req;
    enum class Mode { tcp, udp, association } mode = Mode::tcp;
    std::string addr(address);
    if (network == "tcp" || network == "tcp4" || network == "tcp6") {
      req.cmd = rp::kCmdConnect;
    } else if (network == "udp" || network == "udp4" || network == "udp6") {
      // With a destination: UDP CONNECT; without one: the UDP association (a UDP BIND on
      // 0.0.0.0:0 at the node, docs/PROTOCOLS.md "relay: connector"), each datagram carrying its
      // own address.
      mode = addr.empty() ? Mode::association : Mode::udp;
      req.cmd = (mode == Mode::udp ? rp::kCmdConnect : rp::kCmdBind) | rp::kFlagUdp;
      req.features.network = static_cast<std::uint16_t>(rp::Network::udp);
      if (addr.empty()) addr = "0.0.0.0:0";
    } else if (network == "unix") {
      req.cmd = rp::kCmdConnect;
      req.features.network = static_cast<std::uint16_t>(rp::Network::unix_socket);
    } else if (network == "serial") {
      req.cmd = rp::kCmdConnect;
      req.features.network = static_cast<std::uint16_t>(rp::Network::serial);
    } else {
      throw system_error(asio::error::operation_not_supported,
                         fmt::format("connector relay: network {} is unsupported", network));
    }
    if (mode == Mode::tcp && dynamic_cast<net::PacketConn*>(s.get()))
      throw system_error(asio::error::operation_not_supported,
                         "connector relay: tcp over a datagram stream is not supported");
    req.features.auth = auth_;
    if (!addr.empty()) {
      req.features.address = rp::parse_address(addr);
      if (!req.features.address)
        throw system_error(asio::error::invalid_argument,
                           fmt::format("connector relay: address {} cannot be encoded", addr));
    }
    auto bytes = rp::encode_request(req);
    if (!bytes)
      throw system_error(asio::error::invalid_argument,
                         "connector relay: user name or password longer than 255 bytes");
    if (tunnel_ && !tunnel_->is_zero()) {  // the tunnel-id feature last, FEALEN patched
      rp::FeatureWriter w;
      w.tunnel(*tunnel_);
      std::size_t len = bytes->size() - rp::kHeaderSize + w.out.size();
      (*bytes)[2] = static_cast<char>((len >> 8) & 0xFF);
      (*bytes)[3] = static_cast<char>(len & 0xFF);
      *bytes += w.out;
    }
    if (log::enabled(log::Level::trace))
      log.trace(fmt::format("relay: request cmd {:#04x} {} {}", req.cmd, network, addr));

    if (!nodelay_ && mode == Mode::tcp)
      co_return std::make_unique<RelayTunnel>(std::move(s), std::move(*bytes), log);
    if (!nodelay_ && mode == Mode::udp)
      co_return std::make_unique<RelayUdpTunnel>(std::move(s), std::move(*bytes), true, addr, log);

    Stream& stream = *s;
    Deadline deadline(stream.executor(), connect_timeout_, [&stream] { stream.close(); });
    error_code ec;
    co_await write_all(stream, asio::buffer(*bytes), ec);
    if (!ec) co_await read_response(stream, log, ec);
    if (ec) throw system_error(ec, fmt::format("connector relay: {} {}", network, addr));
    if (mode == Mode::udp)
      co_return std::make_unique<RelayUdpTunnel>(std::move(s), std::string(), false, addr, log);
    if (mode == Mode::association) co_return std::make_unique<net::UdpTunStream>(std::move(s));
    co_return s;
  }

 private:
  std::optional<rp::UserAuth> auth_;
  std::optional<rp::TunnelId> tunnel_;
  bool nodelay_ = false;
  std::chrono::nanoseconds connect_timeout_{0};
  net::MuxConfig mux_;
};

GOST_REGISTER(ConnectorRegistry, "relay", [](const ConnectorOptions& o) {
  return std::shared_ptr<Connector>(new RelayConnector(o));
});

}  // namespace
}  // namespace gost
