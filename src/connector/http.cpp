// Connector "http": asks an HTTP proxy node for a tunnel with CONNECT (docs/PROTOCOLS.md
// "http: connector"), or for a UDP relay (X-Gost-Protocol: udp, "http: UDP").
#include <fmt/format.h>

#include "core/buffered_stream.hpp"
#include "core/component.hpp"
#include "core/timeout.hpp"
#include "net/http_io.hpp"
#include "net/udp.hpp"

namespace gost {
namespace {

namespace http = proto::http;

class HttpConnector final : public Connector {
 public:
  explicit HttpConnector(const ConnectorOptions& o) {
    const auto& md = o.config.metadata;
    if (o.config.auth && !o.config.auth->username.empty())
      auth_ = std::make_pair(o.config.auth->username, o.config.auth->password);
    timeout_ = md.get_duration("timeout").value_or(std::chrono::nanoseconds(0));
    if (const auto* h = md.find("header")) {
      if (!h->is_map()) throw config::ConfigError("connector http: \"header\" must be a map");
      for (const auto& [k, v] : std::get<config::ValueMap>(h->v))
        headers_.push_back({k, v.as_string()});
    }
  }

  awaitable<StreamPtr> connect(StreamPtr s, std::string_view network, std::string_view address,
                               const log::Logger& log) override {
    const bool udp = network.substr(0, 3) == "udp";
    if (!udp && network.substr(0, 3) != "tcp")
      throw system_error(asio::error::operation_not_supported,
                         fmt::format("connector http: network {} unsupported", network));
    Stream& stream = *s;
    Deadline deadline(stream.executor(), timeout_, [&stream] { stream.close(); });
    // A UDP relay names each datagram's destination itself; an unset target still needs a
    // well-formed request line.
    std::string target(address.empty() ? std::string_view("0.0.0.0:0") : address);
    auto req = http::connect_request(target, auth_, headers_, udp);
    if (log::enabled(log::Level::trace)) log.trace(req);
    co_await write_all(stream, asio::buffer(req));

    std::string buf;
    http::Response resp;
    std::size_t head_len = 0;
    error_code ec;
    auto st = co_await net::read_response(stream, buf, resp, head_len, ec);
    if (st != http::ParseStatus::complete) {
      if (ec) throw system_error(ec, "connector http: reading CONNECT response");
      throw system_error(asio::error::invalid_argument, "connector http: malformed response");
    }
    if (resp.status != 200)
      throw system_error(asio::error::connection_refused,
                         fmt::format("{} {}", resp.status, resp.reason));
    // Unlike GOST's client, keep bytes that arrived together with the 200 (docs/PROTOCOLS.md
    // "http: connector").
    auto tunnel = with_prefix(std::move(s), buf.substr(head_len));
    // UDP: datagrams travel as UDP-TUN frames (docs/PROTOCOLS.md "http: UDP"); the handler uses the
    // PacketConn.
    if (udp) co_return std::make_unique<net::UdpTunStream>(std::move(tunnel));
    co_return tunnel;
  }

 private:
  std::optional<std::pair<std::string, std::string>> auth_;
  std::chrono::nanoseconds timeout_{0};
  std::vector<http::Header> headers_;
};

GOST_REGISTER(ConnectorRegistry, "http", [](const ConnectorOptions& o) {
  return std::shared_ptr<Connector>(new HttpConnector(o));
});

}  // namespace
}  // namespace gost
