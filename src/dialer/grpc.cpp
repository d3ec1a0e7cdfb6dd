// Dialer "grpc" (docs/PROTOCOLS.md "grpc"): every tunnel is one call of GOST's /GostTunel/Tunnel
// method (or the `path` rule's method) on an HTTP/2 connection — TLS with ALPN h2, or with
// `grpcInsecure` cleartext with prior knowledge. The call is started without waiting for the
// response head: a GOST server sends it only with its first message, and the inner protocol may be
// one where the client speaks first.
//
// Pooled per worker as dialer/h2 does (one session per worker and node while it can take streams;
// a dead session is dropped and the next tunnel dials again). Reached through a previous node
// (handshake()), a session carries that one tunnel and ends with it.
#include "net/grpc.hpp"

#include <fmt/format.h>

#include "chain/chain.hpp"
#include "core/address.hpp"
#include "core/component.hpp"
#include "net/http2.hpp"
#include "net/session_pool.hpp"
#include "net/tls.hpp"
#include "net/ws.hpp"
#include "proto/grpc.hpp"

namespace gost {
namespace {

class GrpcDialer final : public Dialer {
 public:
  explicit GrpcDialer(const DialerOptions& o)
      : http2_(net::http2_config(o.config.metadata, where_)) {
    const auto& md = o.config.metadata;
    std::string_view key;
    if (md.find_first({"grpc.authority", "grpc.host", "host"}, &key))
      authority_ = md.get_string(key).value_or("");
    std::string path;
    if (md.find_first({"grpc.path", "path"}, &key)) path = md.get_string(key).value_or("");
    method_path_ = proto::grpc::method_path(path);
    if (md.find_first({"grpc.insecure", "grpcInsecure", "insecure"}, &key))
      insecure_ = md.get_bool(key).value_or(false);
    if (md.find_first({"grpc.minConnectTimeout", "minConnectTimeout"}, &key))
      connect_timeout_ = md.get_duration(key).value_or(connect_timeout_);
    keepalive(md);
    tcp_keepalive_.enabled = md.get_bool("tcp.keepalive").value_or(false);
    tcp_keepalive_.idle =
        md.get_duration("tcp.keepalive.idle").value_or(std::chrono::nanoseconds(0));
    tcp_keepalive_.interval =
        md.get_duration("tcp.keepalive.interval").value_or(std::chrono::nanoseconds(0));
    tcp_keepalive_.count = static_cast<int>(md.get_int("tcp.keepalive.count").value_or(0));
    // :authority (docs/PROTOCOLS.md "grpc: request and response"): `host`, else the node's host
    // without its port, else the node address as given.
    if (authority_.empty()) {
      auto hp = split_host_port(o.node_addr);
      authority_ = hp && !hp->host.empty() ? hp->host : o.node_addr;
    }
    if (insecure_) return;
    // SNI (docs/PROTOCOLS.md "grpc: TLS"): serverName, else the node host, else the authority.
    std::string name_source = o.node_addr;
    bool no_server_name = !o.config.tls || o.config.tls->serverName.empty();
    auto hp = split_host_port(o.node_addr);
    if (no_server_name && (!hp || hp->host.empty())) name_source = authority_;
    tls_ = net::client_context(o.config.tls, name_source, {"h2"});
  }

  awaitable<StreamPtr> dial(std::string_view addr, const log::Logger&) override {
    auto s = co_await dial_tcp(addr);
    net::apply_tcp_keepalive(*s, tcp_keepalive_);
    co_return s;
  }

  awaitable<StreamPtr> handshake(StreamPtr s, std::string_view addr) override {
    auto session = co_await open_session(std::move(s));
    session->close_when_idle();
    co_return open_call(*session, log::root());
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
        co_return open_call(*session, log);
      } catch (const system_error& e) {
        if (!session->closing()) throw;
        log.debug(fmt::format("{}: session to {} unusable ({}), retrying", where_, addr,
                              e.code().message()));
      }
    }
    throw system_error(asio::error::connection_reset, where_ + ": no session");
  }

 private:
  // docs/PROTOCOLS.md "grpc: keepalive", client side: after `time` (30 s, at least 10 s as in
  // grpc-go) without receiving anything a PING; no answer within `timeout` (30 s) ends the
  // connection. Only while tunnels are open unless permitWithoutStream.
  void keepalive(const config::Metadata& md) {
    std::string_view key;
    bool on = false;
    if (md.find_first({"grpc.keepalive", "keepalive", "keepAlive"}, &key))
      on = md.get_bool(key).value_or(false);
    if (!on) return;
    using std::chrono::seconds;
    http2_.ping_interval = seconds(30);
    http2_.ping_timeout = seconds(30);
    if (md.find_first({"grpc.keepalive.time", "keepalive.time"}, &key))
      http2_.ping_interval = md.get_duration(key).value_or(http2_.ping_interval);
    http2_.ping_interval = std::max<std::chrono::nanoseconds>(http2_.ping_interval, seconds(10));
    if (md.find_first({"grpc.keepalive.timeout", "keepalive.timeout"}, &key))
      http2_.ping_timeout = md.get_duration(key).value_or(http2_.ping_timeout);
    if (http2_.ping_timeout.count() <= 0) http2_.ping_timeout = seconds(30);
    if (md.find_first({"grpc.keepalive.permitWithoutStream", "keepalive.permitWithoutStream"},
                      &key))
      http2_.ping_without_streams = md.get_bool(key).value_or(false);
  }

  awaitable<std::shared_ptr<net::Http2Session>> open_session(StreamPtr s) {
    return net::http2_client_session(std::move(s), tls_, connect_timeout_, http2_, where_);
  }

  StreamPtr open_call(net::Http2Session& session, const log::Logger& log) {
    error_code ec;
    auto stream = session.start_stream(net::grpc_request(authority_, method_path_, !insecure_), ec);
    if (!stream) throw system_error(ec, where_ + ": open stream");
    return std::make_unique<net::GrpcStream>(std::move(stream), false, log);
  }

  std::string where_ = "dialer grpc";
  net::Http2Config http2_;
  std::string authority_, method_path_;
  bool insecure_ = false;
  std::chrono::nanoseconds connect_timeout_ = std::chrono::seconds(30);
  net::TcpKeepalive tcp_keepalive_;
  net::TlsContextPtr tls_;
  // Spare sessions a burst opened close 10 s after their last stream (the oldest stays).
  net::SessionPool<net::Http2Session> pool_{net::spare_reaping<net::Http2Session>(net::kSpareIdle)};
};

GOST_REGISTER(DialerRegistry, "grpc",
              [](const DialerOptions& o) { return std::shared_ptr<Dialer>(new GrpcDialer(o)); });

}  // namespace
}  // namespace gost
