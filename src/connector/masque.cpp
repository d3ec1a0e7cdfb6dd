// Connector "masque": MASQUE's client (docs/PROTOCOLS.md "masque") on the connections dialer
// h3-masque holds. TCP: a CONNECT with the target as :authority, the request stream the tunnel.
// UDP: a CONNECT-UDP (RFC 9298) per target whose datagrams carry the flow; without a target (a
// UDP association: SOCKS5 UDP ASSOCIATE through the chain) one such flow per target the client
// sends to, each closed after a while without traffic. Success is :status 200 only (and, for
// CONNECT-UDP, capsule-protocol: ?1).
#include "net/masque.hpp"

#include <fmt/format.h>

#include "core/address.hpp"
#include "core/component.hpp"
#include "proto/base64.hpp"
#include "proto/masque.hpp"

namespace gost {
namespace {

// A UDP association's flow to a target closes after this long without a datagram either way.
constexpr std::chrono::seconds kAssociationIdle{30};

// The CONNECT requests of one connector: copied into a UDP association, which may outlive the
// connector (a reload).
struct Requests {
  std::string auth;
  std::chrono::nanoseconds timeout = std::chrono::seconds(15);

  awaitable<StreamPtr> connect_tcp(net::masque::Client& client, std::string_view address,
                                   const log::Logger& log) const;
  awaitable<StreamPtr> connect_udp(net::masque::Client& client, std::string address,
                                   const log::Logger& log) const;
  void add_common(net::quic::Headers& head) const;
  // Sends `head` and awaits the answer: the request stream on a 200, else it throws. A request
  // the server rejected unprocessed (H3_REQUEST_REJECTED: its queue was full) is sent again, at
  // most 3 times, 50/100/200 ms apart (issue 16: nothing lost under a burst).
  awaitable<std::shared_ptr<net::quic::RequestStream>> send(net::masque::Client& client,
                                                            const net::quic::Headers& head,
                                                            std::string_view address,
                                                            const log::Logger& log) const;
};

class MasqueConnector final : public Connector {
 public:
  explicit MasqueConnector(const ConnectorOptions& o) {
    const auto& md = o.config.metadata;
    if (o.config.auth && !o.config.auth->username.empty())
      req_.auth =
          "Basic " + proto::base64_encode(o.config.auth->username + ":" + o.config.auth->password);
    // GOST's `timeout` (alias connectTimeout) bounds the CONNECT exchange; unset, it has no
    // bound there — here the answer is awaited 15 s at most.
    for (auto key : {"timeout", "connectTimeout"}) {
      if (!md.contains(key)) continue;
      auto v = md.get_duration(key);
      if (!v || v->count() < 0)
        throw config::ConfigError(fmt::format("connector masque: invalid \"{}\"", key));
      if (v->count() > 0) req_.timeout = *v;
      break;
    }
  }

  awaitable<StreamPtr> connect(StreamPtr s, std::string_view network, std::string_view address,
                               const log::Logger& log) override {
    auto* opener = dynamic_cast<net::masque::Opener*>(s.get());
    if (!opener)
      throw system_error(asio::error::operation_not_supported,
                         "connector masque: needs dialer h3-masque");
    if (network.starts_with("tcp"))
      co_return co_await req_.connect_tcp(opener->client(), address, log);
    if (!network.starts_with("udp"))
      throw system_error(asio::error::operation_not_supported,
                         fmt::format("connector masque: network {} unsupported", network));
    // Locals: nothing temporary inside a co_await (docs/ARCHITECTURE.md "Concurrency").
    std::string target(address);
    if (!target.empty()) co_return co_await req_.connect_udp(opener->client(), target, log);
    // An association: every target its own flow, opened on the client while it lasts.
    auto ex = co_await asio::this_coro::executor;
    net::masque::OpenFlow open = [req = req_, client = opener->shared_client(),
                                  log](std::string to) -> awaitable<StreamPtr> {
      co_return co_await req.connect_udp(*client, std::move(to), log);
    };
    co_return net::masque::udp_association(ex, std::move(open), kAssociationIdle, log);
  }

 private:
  Requests req_;
};

awaitable<StreamPtr> Requests::connect_tcp(net::masque::Client& client, std::string_view address,
                                           const log::Logger& log) const {
  net::quic::Headers head{{":method", "CONNECT"}, {":authority", std::string(address)}};
  add_common(head);
  auto st = co_await send(client, head, address, log);
  co_return net::quic::byte_stream(std::move(st));
}

awaitable<StreamPtr> Requests::connect_udp(net::masque::Client& client, std::string address,
                                           const log::Logger& log) const {
  auto hp = split_host_port(address);
  unsigned port = 0;
  if (hp && !hp->port.empty() && hp->port.size() <= 5 &&
      hp->port.find_first_not_of("0123456789") == std::string::npos)
    port = static_cast<unsigned>(std::stoul(hp->port));
  if (!hp || hp->host.empty() || port == 0 || port > 65535)
    throw system_error(asio::error::invalid_argument,
                       fmt::format("connector masque: invalid address {}", address));
  net::quic::Headers head{
      {":method", "CONNECT"},
      {":protocol", "connect-udp"},
      {":scheme", "https"},
      {":authority", client.authority()},
      {":path", proto::masque::udp_path(hp->host, static_cast<std::uint16_t>(port))},
      {"capsule-protocol", "?1"}};
  add_common(head);
  auto st = co_await send(client, head, address, log);
  if (net::h2_header(st->head(), "capsule-protocol") != "?1") {
    st->reset();
    throw system_error(asio::error::connection_refused,
                       "connector masque: server did not confirm capsule-protocol");
  }
  co_return net::masque::datagram_flow(std::move(st), std::move(address));
}

void Requests::add_common(net::quic::Headers& head) const {
  if (!auth.empty()) head.push_back({"proxy-authorization", auth});
  head.push_back({"user-agent", "quic-go HTTP/3"});
}

awaitable<std::shared_ptr<net::quic::RequestStream>> Requests::send(
    net::masque::Client& client, const net::quic::Headers& head, std::string_view address,
    const log::Logger& log) const {
  for (int attempt = 0;; ++attempt) {
    auto st = co_await client.open(head);
    st->accept_datagrams();  // a CONNECT-UDP's first datagram may come right behind its answer
    error_code ec;
    co_await st->wait_head(timeout, ec);
    if (ec == asio::error::try_again && attempt < 3) {
      log.debug(fmt::format("connector masque: {} rejected unprocessed, sent again", address));
      asio::steady_timer pause(co_await asio::this_coro::executor,
                               std::chrono::milliseconds(50 << attempt));
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    if (ec) {
      st->reset();
      throw system_error(ec, fmt::format("connector masque: {}", address));
    }
    auto status = net::h2_header(st->head(), ":status");
    if (status == "200") co_return st;
    st->reset();
    log.debug(fmt::format("connector masque: {} answered {}", address, status));
    if (status == "407")
      throw system_error(asio::error::access_denied,
                         "connector masque: 407 Proxy Authentication Required");
    throw system_error(asio::error::connection_refused,
                       fmt::format("connector masque: server answered {}", status));
  }
}

GOST_REGISTER(ConnectorRegistry, "masque", [](const ConnectorOptions& o) {
  return std::shared_ptr<Connector>(new MasqueConnector(o));
});

}  // namespace
}  // namespace gost
