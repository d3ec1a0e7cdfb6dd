// Listener "grpc" (docs/PROTOCOLS.md "grpc"): GOST's gRPC tunnel service. TLS with ALPN h2 by
// default, cleartext HTTP/2 with prior knowledge with `grpcInsecure`. Every call of the tunnel
// method is answered with its response head at once and handed to the handler as a GrpcStream; a
// call of another method, a non-gRPC request or a non-POST is refused as grpc-go refuses it
// ("grpc: request and response") and the connection goes on serving. Keepalive ("grpc: keepalive")
// maps to the engine's PING keepalive and idle timeout.
//
// listener/pump: each connection's TLS handshake and HTTP/2 session run in their own coroutine,
// whose accepted calls are queued (bounded by `backlog`) for accept().
#include "net/grpc.hpp"

#include <fmt/format.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>

#include "core/component.hpp"
#include "listener/pump.hpp"
#include "net/http2.hpp"
#include "net/tls.hpp"
#include "net/ws.hpp"
#include "proto/grpc.hpp"

namespace gost {
namespace {

struct GrpcOptions {
  std::string method_path;  // "/GostTunel/Tunnel" or the `path` rule's result
  net::Http2Config http2;
  net::TlsContextPtr tls;  // null: insecure (h2c prior knowledge)
  net::TcpKeepalive tcp_keepalive;
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(15);
  log::Logger log;
};

// The tcp listener would read `keepalive` as SO_KEEPALIVE; here it is gRPC's switch.
ListenerOptions without_keepalive(const ListenerOptions& o) {
  ListenerOptions inner = o;
  inner.config.metadata.erase("keepalive");
  return inner;
}

class GrpcListener final : public PumpListener {
 public:
  GrpcListener(asio::io_context& ctx, const ListenerOptions& o)
      : PumpListener(ctx, without_keepalive(o), "tcp", 128) {
    const auto& md = o.config.metadata;
    opts_ = std::make_shared<GrpcOptions>();
    std::string_view key;
    std::string path;
    if (md.find_first({"grpc.path", "path"}, &key)) path = md.get_string(key).value_or("");
    opts_->method_path = proto::grpc::method_path(path);
    bool insecure = false;
    if (md.find_first({"grpc.insecure", "grpcInsecure", "insecure"}, &key))
      insecure = md.get_bool(key).value_or(false);
    opts_->http2 = net::http2_config(md, where_);
    opts_->http2.on_refused = [r = refusals()](std::string_view why) { r->add(why); };
    if (md.find_first({"grpc.backlog", "backlog"}, &key)) {
      if (auto b = md.get_int(key).value_or(0); b > 0) {
        queue().set_limit(static_cast<std::size_t>(b));
      }
    }
    keepalive(md);
    opts_->tcp_keepalive.enabled = md.get_bool("tcp.keepalive").value_or(false);
    opts_->tcp_keepalive.idle =
        md.get_duration("tcp.keepalive.idle").value_or(std::chrono::nanoseconds(0));
    opts_->tcp_keepalive.interval =
        md.get_duration("tcp.keepalive.interval").value_or(std::chrono::nanoseconds(0));
    opts_->tcp_keepalive.count = static_cast<int>(md.get_int("tcp.keepalive.count").value_or(0));
    opts_->log = o.log;
    // ALPN h2 only: grpc-go requires it (docs/PROTOCOLS.md "grpc: TLS").
    if (!insecure) opts_->tls = net::server_context(o.config.tls, {"h2"});
    set_serve([opts = std::shared_ptr<const GrpcOptions>(opts_)](StreamPtr conn,
                                                                 std::shared_ptr<StreamQueue> q) {
      return session(std::move(q), std::move(conn), opts);
    });
  }

 private:
  // docs/PROTOCOLS.md "grpc: keepalive", server side: after `time` (60 s) without receiving
  // anything a PING, no answer within `timeout` (30 s) ends the connection; `maxConnectionIdle` (0
  // = infinite) closes a connection without calls with GOAWAY. grpc-go's enforcement of client
  // pings (minTime, permitWithoutStream) is not applied: every PING is answered (the flood limit
  // still holds), a superset of what grpc-go accepts.
  void keepalive(const config::Metadata& md) {
    std::string_view key;
    bool on = false;
    if (md.find_first({"grpc.keepalive", "keepalive", "keepAlive"}, &key))
      on = md.get_bool(key).value_or(false);
    if (!on) return;
    using std::chrono::seconds;
    auto& h = opts_->http2;
    h.ping_interval = seconds(60);
    h.ping_timeout = seconds(30);
    h.ping_without_streams = true;
    if (md.find_first({"grpc.keepalive.time", "keepalive.time"}, &key))
      h.ping_interval = md.get_duration(key).value_or(h.ping_interval);
    if (h.ping_interval.count() > 0)
      h.ping_interval = std::max<std::chrono::nanoseconds>(h.ping_interval, seconds(1));
    if (md.find_first({"grpc.keepalive.timeout", "keepalive.timeout"}, &key))
      h.ping_timeout = md.get_duration(key).value_or(h.ping_timeout);
    if (h.ping_timeout.count() <= 0) h.ping_timeout = seconds(30);
    if (md.find_first({"grpc.keepalive.maxConnectionIdle", "keepalive.maxConnectionIdle"}, &key))
      h.idle_timeout = md.get_duration(key).value_or(std::chrono::nanoseconds(0));
    md.find_first({"grpc.keepalive.minTime", "keepalive.minTime"}, &key);
    md.find_first({"grpc.keepalive.permitWithoutStream", "keepalive.permitWithoutStream"}, &key);
  }

  // grpc-go's checks of a request (docs/PROTOCOLS.md "grpc: request and response"). True if it is a
  // call of our method; else the stream has been answered or reset.
  static bool check_call(net::Http2Stream& s, const GrpcOptions& opts) {
    if (s.header(":method") != "POST") {
      s.reset(NGHTTP2_PROTOCOL_ERROR);
      return false;
    }
    auto ct = s.header("content-type");
    bool grpc =
        ct.starts_with("application/grpc") && (ct.size() == 16 || ct[16] == '+' || ct[16] == ';');
    if (!grpc) {
      s.respond(415,
                {{"content-type", "application/grpc"},
                 {"grpc-status", std::to_string(proto::grpc::kInvalidArgument)},
                 {"grpc-message",
                  net::grpc_message(fmt::format("invalid gRPC request content-type \"{}\"", ct))}},
                true);
      return false;
    }
    auto fail = [&](int status, std::string message) {
      s.respond(200,
                {{"content-type", "application/grpc"},
                 {"grpc-status", std::to_string(status)},
                 {"grpc-message", net::grpc_message(message)}},
                true);
      return false;
    };
    auto encoding = s.header("grpc-encoding");
    if (!encoding.empty() && encoding != "identity")
      return fail(
          proto::grpc::kUnimplemented,
          fmt::format("grpc: Decompressor is not installed for grpc-encoding \"{}\"", encoding));
    std::string_view path = s.header(":path");
    if (path == opts.method_path) return true;
    auto split = [](std::string_view p) {
      if (p.starts_with('/')) p.remove_prefix(1);
      auto pos = p.rfind('/');
      if (pos == std::string_view::npos) return std::pair<std::string_view, std::string_view>{};
      return std::pair{p.substr(0, pos), p.substr(pos + 1)};
    };
    auto [service, method] = split(path);
    auto [our_service, our_method] = split(opts.method_path);
    if (!path.starts_with('/') || service.empty())
      return fail(proto::grpc::kUnimplemented, fmt::format("malformed method name: \"{}\"", path));
    if (service != our_service)
      return fail(proto::grpc::kUnimplemented, fmt::format("unknown service {}", service));
    return fail(proto::grpc::kUnimplemented,
                fmt::format("unknown method {} for service {}", method, service));
  }

  static awaitable<void> session(std::shared_ptr<StreamQueue> q, StreamPtr conn,
                                 std::shared_ptr<const GrpcOptions> opts) {
    std::string remote = conn->remote_address();
    net::apply_tcp_keepalive(*conn, opts->tcp_keepalive);
    if (opts->tls) {
      // A failed handshake ends this coroutine; listener/pump logs it (debug).
      conn = co_await net::tls_accept(std::move(conn), opts->tls, opts->handshake_timeout);
      if (net::negotiated_alpn(*conn) != "h2") {
        opts->log.debug(fmt::format("{}: grpc: the client did not negotiate h2", remote));
        co_return;
      }
    }
    // Cleartext: prior knowledge only; nghttp2 rejects anything but the connection preface.
    auto session = net::Http2Session::server(std::move(conn), opts->http2);
    co_await q->take_streams(session, [&opts](net::Http2StreamPtr s) -> StreamPtr {
      if (!check_call(*s, *opts)) return nullptr;  // answered; the connection stays
      // grpc-go sends the head with the first message; sending it now is equally valid and
      // lets a client see the call accepted before the handler speaks.
      s->respond(200, {{"content-type", "application/grpc"}}, false);
      return std::make_unique<net::GrpcStream>(std::move(s), true, opts->log);
    });
    session->shutdown();
    opts->log.debug(fmt::format("{}: grpc session ended", remote));
  }

  std::string where_ = "listener grpc";
  std::shared_ptr<GrpcOptions> opts_;
};

GOST_REGISTER(ListenerRegistry, "grpc", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new GrpcListener(ctx, o));
});

}  // namespace
}  // namespace gost
