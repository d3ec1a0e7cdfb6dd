// Dialers "h2" (TLS, ALPN h2) and "h2c" (cleartext, prior knowledge): the data channels of
// docs/PROTOCOLS.md "h2: client". Every tunnel is one HTTP/2 stream — a CONNECT to `host`, or with
// `path` a GET of that path whose request body is the upload — accepted with :status 200.
//
// As the first node of a route the sessions are pooled per worker (so a session and all its
// streams live on one thread, docs/ARCHITECTURE.md "Concurrency"), as dialer/mws does: a session is
// used while it can take a stream (not closing after a GOAWAY, below its stream limit); otherwise
// another connection is made. A dead session is dropped and the next tunnel dials again. Reached
// through a previous node (handshake()), a session carries that one tunnel and ends with it.
#include <fmt/format.h>

#include "chain/chain.hpp"
#include "core/address.hpp"
#include "core/component.hpp"
#include "net/http2.hpp"
#include "net/session_pool.hpp"
#include "net/tls.hpp"

namespace gost {
namespace {

class H2Dialer final : public Dialer {
 public:
  H2Dialer(const DialerOptions& o, bool tls)
      : where_(tls ? "dialer h2" : "dialer h2c"),
        tls_mode_(tls),
        http2_(net::http2_config(o.config.metadata, where_)) {
    const auto& md = o.config.metadata;
    host_ = md.get_string("host").value_or("");
    path_ = md.get_string("path").value_or("");
    headers_ = net::h2_header_map(md, where_);
    if (!tls) return;
    // SNI (docs/PROTOCOLS.md "h2: client"): serverName, else the node host, else the `host` option.
    std::string name_source = o.node_addr;
    bool no_server_name = !o.config.tls || o.config.tls->serverName.empty();
    auto hp = split_host_port(o.node_addr);
    if (no_server_name && (!hp || hp->host.empty()) && !host_.empty()) name_source = host_;
    tls_ = net::client_context(o.config.tls, name_source, {"h2", "http/1.1"});
  }

  // GOST's quirk (docs/PROTOCOLS.md "h2: client"): a `host` option is also the address dialed
  // (default port 443 for h2, 80 for h2c).
  awaitable<StreamPtr> dial(std::string_view addr, const log::Logger&) override {
    std::string target(addr);
    if (!host_.empty()) {
      target = host_;
      auto hp = split_host_port(host_);
      if (!hp || hp->port.empty())
        target = join_host_port(hp ? hp->host : host_, tls_mode_ ? "443" : "80");
    }
    co_return co_await dial_tcp(target);
  }

  // Over an existing stream (a later node of a route): a session for this one tunnel.
  awaitable<StreamPtr> handshake(StreamPtr s, std::string_view addr) override {
    auto session = co_await open_session(std::move(s));
    session->close_when_idle();
    co_return co_await open_tunnel(*session, addr);
  }

  awaitable<StreamPtr> connect(std::string_view addr, const log::Logger& log) override {
    for (int attempt = 0; attempt < 3; ++attempt) {
      // Closing sessions finish their streams on their own; the pool forgets them.
      auto session = co_await pool_.get([](const net::Http2Session& s) { return s.closing(); },
                                        [](const net::Http2Session& s) { return s.can_open(); },
                                        [&]() -> awaitable<std::shared_ptr<net::Http2Session>> {
                                          auto conn = co_await dial(addr, log);
                                          co_return co_await open_session(std::move(conn));
                                        });
      try {
        co_return co_await open_tunnel(*session, addr);
      } catch (const system_error& e) {
        // A server that does not answer in time is taken for dead (there is no FIN when the
        // host or the path to it went away): the next tunnel connects anew.
        if (e.code() == asio::error::timed_out) session->close();
        // Refused (the stream limit or a GOAWAY raced us) or the session died: try another.
        if (!session->closing() && e.code() != asio::error::connection_refused) throw;
        log.debug(fmt::format("{}: session to {} unusable ({}), retrying", where_, addr,
                              e.code().message()));
      }
    }
    throw system_error(asio::error::connection_reset, where_ + ": no session");
  }

 private:
  awaitable<std::shared_ptr<net::Http2Session>> open_session(StreamPtr s) {
    // GOST's TLS handshake timeout for h2: 10 s.
    return net::http2_client_session(std::move(s), tls_, std::chrono::seconds(10), http2_, where_);
  }

  net::H2Headers request(std::string_view addr) const {
    return net::h2_tunnel_request(host_.empty() ? addr : std::string_view(host_), path_, tls_mode_,
                                  headers_);
  }

  awaitable<StreamPtr> open_tunnel(net::Http2Session& session, std::string_view addr) {
    error_code ec;
    auto req = request(addr);
    auto stream = co_await session.open_stream(req, ec);
    if (!stream) throw system_error(ec, where_ + ": open stream");
    if (stream->status() != 200)
      throw system_error(make_error_code(boost::system::errc::bad_message),
                         fmt::format("{}: server answered {}", where_, stream->status()));
    co_return stream;
  }

  std::string where_;
  bool tls_mode_;
  net::Http2Config http2_;
  std::string host_, path_;
  net::H2Headers headers_;
  net::TlsContextPtr tls_;
  // Spare sessions a burst opened close 10 s after their last stream (the oldest stays).
  net::SessionPool<net::Http2Session> pool_{net::spare_reaping<net::Http2Session>(net::kSpareIdle)};
};

GOST_REGISTER(DialerRegistry, "h2", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new H2Dialer(o, true));
});
GOST_REGISTER(DialerRegistry, "h2c", [](const DialerOptions& o) {
  return std::shared_ptr<Dialer>(new H2Dialer(o, false));
});

}  // namespace
}  // namespace gost
