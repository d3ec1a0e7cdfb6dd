// Connector "http2": one HTTP/2 CONNECT stream per tunnel (docs/PROTOCOLS.md "http2: client") on
// the sessions that dialer `http2` holds. Success is :status 200 only; the stream is then the
// tunnel.
#include "dialer/http2.hpp"

#include <fmt/format.h>

#include "core/component.hpp"
#include "proto/base64.hpp"

namespace gost {
namespace {

class Http2Connector final : public Connector {
 public:
  explicit Http2Connector(const ConnectorOptions& o) {
    const auto& md = o.config.metadata;
    if (o.config.auth && !o.config.auth->username.empty())
      auth_ =
          "Basic " + proto::base64_encode(o.config.auth->username + ":" + o.config.auth->password);
    // GOST reads `timeout` but cannot apply it to this connection type ("http2: client"); read so
    // that it is not reported as unknown. The engine bounds the wait for the response head.
    (void)md.get_duration("timeout");
    extra_ = net::h2_header_map(md, "connector http2");
  }

  awaitable<StreamPtr> connect(StreamPtr s, std::string_view network, std::string_view address,
                               const log::Logger& log) override {
    if (network.substr(0, 3) != "tcp")
      throw system_error(asio::error::operation_not_supported,
                         fmt::format("connector http2: network {} unsupported", network));
    auto* opener = dynamic_cast<Http2ProxyOpener*>(s.get());
    if (!opener)
      throw system_error(asio::error::operation_not_supported,
                         "connector http2: needs dialer http2");
    // :authority, :method CONNECT, proxy-authorization, `header`, accept-encoding, user-agent:
    // the order GOST's (Go's) client sends.
    net::H2Headers extra;
    if (!auth_.empty()) extra.push_back({"proxy-authorization", auth_});
    extra.insert(extra.end(), extra_.begin(), extra_.end());
    auto request = net::h2_tunnel_request(address, "", true, extra);
    auto stream = co_await opener->open(request);
    int status = stream->status();
    if (status == 200) co_return stream;
    log.debug(fmt::format("connector http2: {} answered {}", address, status));
    stream->close();  // RST_STREAM(CANCEL), as Go's client does
    if (status == 407)
      throw system_error(asio::error::access_denied,
                         "connector http2: 407 Proxy Authentication Required");
    throw system_error(asio::error::connection_refused,
                       fmt::format("connector http2: server answered {}", status));
  }

 private:
  std::string auth_;
  net::H2Headers extra_;
};

GOST_REGISTER(ConnectorRegistry, "http2", [](const ConnectorOptions& o) {
  return std::shared_ptr<Connector>(new Http2Connector(o));
});

}  // namespace
}  // namespace gost
