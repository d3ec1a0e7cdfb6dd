// Connectors "socks4" and "socks4a" (go-gost/x connector/socks/v4): CONNECT only. The target is
// sent in SOCKS4a form (host name after the USERID) unless `disable4a`, which resolves it locally
// to IPv4; the USERID is the node's user name.
#include "proto/socks4.hpp"

#include <fmt/format.h>

#include <charconv>

#include "core/address.hpp"
#include "core/component.hpp"
#include "core/timeout.hpp"
#include "net/udp.hpp"

namespace gost {
namespace {

namespace socks4 = proto::socks4;

[[noreturn]] void fail(std::string_view what, error_code ec = asio::error::connection_refused) {
  throw system_error(ec, fmt::format("connector socks4: {}", what));
}

class Socks4Connector final : public Connector {
 public:
  explicit Socks4Connector(const ConnectorOptions& o) {
    const auto& md = o.config.metadata;
    if (o.config.auth) userid_ = o.config.auth->username;
    timeout_ = md.get_duration("timeout").value_or(std::chrono::nanoseconds(0));
    disable4a_ = md.get_bool("disable4a").value_or(false);
  }

  awaitable<StreamPtr> connect(StreamPtr s, std::string_view network, std::string_view address,
                               const log::Logger& log) override {
    if (network.substr(0, 3) != "tcp") fail(fmt::format("network {} is unsupported", network));
    auto hp = split_host_port(address);
    unsigned port = 0;
    if (!hp ||
        std::from_chars(hp->port.data(), hp->port.data() + hp->port.size(), port).ec !=
            std::errc() ||
        port > 65535)
      fail(fmt::format("invalid target address {}", address), asio::error::invalid_argument);
    std::string host = hp->host;
    if (disable4a_) {
      auto ex = co_await asio::this_coro::executor;
      tcp::resolver resolver(ex);
      if (host.empty()) host = "0.0.0.0";
      auto [rec, results] = co_await resolver.async_resolve(tcp::v4(), host, hp->port, use_nothrow);
      if (rec || results.empty()) fail(fmt::format("resolve {}: {}", host, rec.message()), rec);
      host = results.begin()->endpoint().address().to_string();
    }
    auto req = socks4::request(socks4::cmd::connect, host, static_cast<std::uint16_t>(port),
                               userid_, !disable4a_);
    if (!req) fail(fmt::format("cannot encode target {}", address), asio::error::invalid_argument);
    Stream& stream = *s;
    Deadline deadline(stream.executor(), timeout_, [&stream] { stream.close(); });
    co_await write_all(stream, asio::buffer(*req));
    std::string buf;
    std::uint8_t cd = 0;
    error_code ec;
    auto r = co_await net::read_message(
        stream, buf, [&](std::string_view d) { return socks4::parse_reply(d, cd); }, ec);
    if (ec) fail(fmt::format("reading reply: {}", ec.message()), ec);
    if (r.status != socks4::Status::complete) fail("bad version in reply");
    if (cd != socks4::code::granted)
      fail(fmt::format("host unreachable (reply code {})", cd), asio::error::host_unreachable);
    co_return s;
  }

 private:
  std::string userid_;
  std::chrono::nanoseconds timeout_{0};
  bool disable4a_ = false;
};

ConnectorFactory socks4_factory() {
  return
      [](const ConnectorOptions& o) { return std::shared_ptr<Connector>(new Socks4Connector(o)); };
}

GOST_REGISTER(ConnectorRegistry, "socks4", socks4_factory());
GOST_REGISTER(ConnectorRegistry, "socks4a", socks4_factory());

}  // namespace
}  // namespace gost
