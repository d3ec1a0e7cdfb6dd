#include "app/connection.hpp"

#include <fmt/format.h>

#include "app/fleet_climiter.hpp"
#include "app/traffic_plugin.hpp"
#include "core/address.hpp"
#include "core/counted_stream.hpp"
#include "core/memory.hpp"
#include "core/metrics.hpp"
#include "core/plugin.hpp"
#include "core/tcp_stream.hpp"
#include "core/throttle.hpp"
#include "core/xid.hpp"
#include "net/proxy_protocol.hpp"

namespace gost::app {
namespace {

// The connection's identity and logger, made before its coroutine starts: the service's logger
// is not copied into every connection's frame (docs/ARCHITECTURE.md "Memory").
ConnInfo new_connection(const Stream& stream, const log::Logger& base) {
  ConnInfo conn;
  conn.remote = stream.remote_address();
  conn.local = stream.local_address();
  conn.log = base.with({{"remote", conn.remote}, {"local", conn.local}, {"sid", new_xid()}});
  return conn;
}

// GOST's request metrics; the raw accepted connection counts its bytes (docs/PROTOCOLS.md
// "observability: metrics"), below the listener's handshake (TLS, WebSocket). A multiplexing
// listener's stream is no connection of its own: its payload is counted instead
// (core/counted_stream.hpp). True when the stream after the handshake is to be wrapped for that.
bool count_traffic(metrics::Request& request, Stream& stream, ConnInfo& conn) {
  if (!request.sink()) return false;
  conn.metrics = &request;
  auto* tcp = dynamic_cast<TcpStream*>(&stream);
  if (tcp) tcp->count_traffic(request.sink());
  return !tcp;
}

// Called in a catch block: logs why the connection ended (quiet errors at debug level) and
// counts the request as failed.
void log_failure(ConnInfo& conn, metrics::Request& request) {
  try {
    throw;
  } catch (const system_error& e) {
    auto code = e.code();
    bool quiet = code == asio::error::eof || code == asio::error::operation_aborted ||
                 code == asio::error::connection_reset || code == asio::error::timed_out ||
                 code == asio::error::broken_pipe || code == asio::error::bad_descriptor;
    conn.log.write(quiet ? log::Level::debug : log::Level::error, error_text(e));
  } catch (const std::exception& e) {
    conn.log.error(error_text(e));
  }
  request.fail();
}

// policy::admits with the plugins asked (GOST's AdmissionGroup: every member must admit; a
// plugin is told the service, "tcp" and the client's address; docs/ARCHITECTURE.md "Sources").
awaitable<bool> admits_async(const policy::Admissions& admissions, std::string service,
                             std::string client) {
  if (client.empty()) co_return true;
  for (const auto& a : admissions) {
    if (const AdmissionPlugin* p = a->plugin()) {
      std::string network("tcp");
      if (!co_await p->admit(service, std::move(network), client)) co_return false;
    } else if (!policy::admits({a}, client)) {
      co_return false;
    }
  }
  co_return true;
}

std::string client_ip_of(const std::string& remote) {
  if (auto hp = split_host_port(remote)) return hp->host;
  return remote;
}

// The admission phase, in a coroutine of its own that has returned before the handler starts (so
// that its locals and awaiters are no part of serve_connection's frame, which lives as long as
// the tunnel; docs/ARCHITECTURE.md "Memory"): the PROXY header, admission, the connection
// limiter. False: the connection is to be closed, nothing logged at info.
awaitable<bool> admit(StreamPtr& stream, ConnInfo& conn, const std::string& service,
                      const policy::Admissions* admissions, const ServiceLimiters& limiters,
                      std::optional<policy::ConnSlot>& slot) {
  // A PROXY protocol header first, when the service asks for one: its client address is the one
  // logs, metrics and admission see (net/proxy_protocol.hpp).
  if (auto* tcp = dynamic_cast<TcpStream*>(stream.get()); tcp && tcp->proxy_header_expected()) {
    if (!co_await net::accept_proxy_header(*stream, conn.log)) co_return false;
    conn.remote = stream->remote_address();
    conn.local = stream->local_address();
    conn.log = conn.log.with({{"remote", conn.remote}, {"local", conn.local}});
  }
  // A refused client is closed before any handshake, log line or byte (go-gost/x admission).
  bool admitted = true;
  if (admissions && policy::has_plugin(*admissions))
    admitted = co_await admits_async(*admissions, service, conn.remote);
  else if (admissions)
    admitted = policy::admits(*admissions, conn.remote);
  if (!admitted) {
    conn.log.debug(fmt::format("admission: {} is denied", conn.remote));
    co_return false;
  }
  // Connection limiter: the connection beyond the limit is closed right after accept
  // (go-gost/x limiter/conn/wrapper: at the listener, before any handshake or log line). The
  // limiters of this connection are what the holders hold now (docs/ARCHITECTURE.md
  // "Limiters"); a source's change applies to the connections accepted after it.
  if (limiters.conn) {
    if (auto conn_limiter = limiters.conn->current()) {
      slot = conn_limiter->admit(client_ip_of(conn.remote));
      if (!slot) {
        conn.log.debug(fmt::format("climiter: {} exceeds the connection limit", conn.remote));
        stream->close();
        co_return false;
      }
      // Ours: the same limits counted across the fleet in Redis (app/fleet_climiter.hpp).
      if (limiters.conn_fleet) {
        const auto limits = conn_limiter->limits_for(client_ip_of(conn.remote));
        std::string ip(client_ip_of(conn.remote));
        auto place =
            co_await limiters.conn_fleet->admit(std::move(ip), limits.client, limits.service);
        if (!place) {
          conn.log.debug(
              fmt::format("climiter: {} exceeds the fleet's connection limit", conn.remote));
          slot.reset();
          stream->close();
          co_return false;
        }
        slot->keep(std::move(place));
      }
    }
  }
  co_return true;
}

// The phase between admission and the handler, also a coroutine of its own: the request-rate
// limiter, the listener's handshake, the payload count and the traffic limiter's wrappers. Null:
// refused (counted, closed). Throws what the handshake throws.
awaitable<StreamPtr> open_stream(Listener& listener, StreamPtr stream, ConnInfo& conn,
                                 metrics::Request& request, bool count_payload,
                                 const ServiceLimiters& limiters) {
  // Request-rate limiter: asked once per connection before its request is read; a refusal
  // closes it without a reply (go-gost/x handlers' checkRateLimit; GOST's ErrRateLimit, logged
  // at debug).
  if (limiters.rate) {
    auto rate_limiter = limiters.rate->current();
    if (rate_limiter && !rate_limiter->allow(client_ip_of(conn.remote), policy::Clock::now())) {
      conn.log.debug("rate limit exceeded");
      request.fail();
      stream->close();
      co_return nullptr;
    }
  }
  stream = co_await listener.handshake(std::move(stream));
  if (count_payload) stream = std::make_unique<CountedStream>(std::move(stream), request.sink());
  // Traffic limiter: the client's stream keeps to its budgets; an unlimited one is not wrapped
  // and keeps the splice path (core/throttle.hpp).
  if (limiters.traffic) {
    if (auto traffic_limiter = limiters.traffic->current()) {
      auto t = traffic_limiter->for_connection(client_ip_of(conn.remote), policy::Clock::now());
      stream = throttled(std::move(stream), std::move(t.in), std::move(t.out));
    }
  }
  if (limiters.traffic_plugin) {
    std::string network(listener.network()), src(conn.remote);
    auto t = co_await limiters.traffic_plugin->for_connection(std::move(network), std::move(src));
    stream = throttled(std::move(stream), std::move(t.in), std::move(t.out));
  }
  co_return stream;
}

// What a connection holds until it ends, and its end (core/component.hpp ConnectionEnd): with
// the handler's tunnel in a relay of its own (relay_to_end), the relay ends it, and nothing of
// serve_connection() is left while the tunnel lasts.
struct ConnectionTail final : ConnectionEnd {
  ConnectionTail(std::shared_ptr<Listener> l, std::shared_ptr<Handler> h)
      : listener(std::move(l)), handler(std::move(h)) {}
  void finish(ConnInfo& conn) override {
    conn.log.info(fmt::format("{} >< {}", conn.remote, conn.local),
                  {{"duration", (std::chrono::steady_clock::now() - start).count()},
                   {"inputBytes", static_cast<std::int64_t>(conn.input_bytes)},
                   {"outputBytes", static_cast<std::int64_t>(conn.output_bytes)}});
  }

  // The streams may refer to their listener's and handler's state: both outlive them.
  std::shared_ptr<Listener> listener;
  std::shared_ptr<Handler> handler;
  memory::ConnectionScope counted;
  std::optional<policy::ConnSlot> slot;  // released when the connection ends
  // With metrics on (a request with metrics off records nothing and lives in serve_connection's
  // frame: an idle tunnel holds none).
  std::unique_ptr<metrics::Request> request;
  std::chrono::steady_clock::time_point start;
};

// Lives until the handler returns, which is as long as the connection unless the handler's
// tunnel went to a relay of its own (ConnInfo::end). Locals and temporaries that last over a
// co_await are kept in the coroutine's frame, so the work around the awaits is done in the
// functions above.
awaitable<void> serve_connection(std::shared_ptr<Listener> listener,
                                 std::shared_ptr<Handler> handler, StreamPtr stream, ConnInfo conn,
                                 std::shared_ptr<const std::string> service,
                                 std::shared_ptr<const policy::Admissions> admissions,
                                 std::shared_ptr<const ServiceLimiters> limiters) {
  auto tail = std::make_unique<ConnectionTail>(std::move(listener), std::move(handler));
  if (!co_await admit(stream, conn, *service, admissions.get(), *limiters, tail->slot)) co_return;
  std::optional<metrics::Request> unrecorded;
  metrics::Request& request =
      metrics::global()
          ? *(tail->request = std::make_unique<metrics::Request>(*service, conn.remote))
          : unrecorded.emplace(nullptr, *service, conn.remote);
  bool count_payload = count_traffic(request, *stream, conn);
  tail->start = std::chrono::steady_clock::now();
  conn.log.info(fmt::format("{} <> {}", conn.remote, conn.local));
  // Held here too while the handler runs: a relay that ends at once may free the tail before
  // handle() has returned.
  std::shared_ptr<Listener> l = tail->listener;
  std::shared_ptr<Handler> h = tail->handler;
  conn.end = std::move(tail);
  try {
    stream = co_await open_stream(*l, std::move(stream), conn, request, count_payload, *limiters);
    if (stream) co_await h->handle(std::move(stream), conn);
  } catch (const std::exception&) {
    if (conn.end) log_failure(conn, request);
  }
  if (conn.end) conn.end->finish(conn);  // else its relay ends it
}

}  // namespace

awaitable<void> accept_loop(std::shared_ptr<Listener> listener, std::shared_ptr<Handler> handler,
                            log::Logger log, std::string service,
                            std::shared_ptr<const policy::Admissions> admissions,
                            ServiceLimiters limiters) {
  auto ex = co_await asio::this_coro::executor;
  // One copy of the name for all connections of this loop (they may outlive the service).
  auto name = std::make_shared<const std::string>(std::move(service));
  auto limits = std::make_shared<const ServiceLimiters>(std::move(limiters));
  // The service's fields, shared by every connection's logger rather than copied into each.
  const log::Logger base = log.shared();
  auto backoff = std::chrono::seconds(1);
  for (;;) {
    error_code ec;
    auto stream = co_await listener->accept(ec);
    if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
    if (ec) {
      log.warn(fmt::format("accept: {}, retrying in {}s", ec.message(), backoff.count()));
      asio::steady_timer t(ex, backoff);
      co_await t.async_wait(use_nothrow);
      backoff = std::min(backoff * 2, std::chrono::seconds(5));
      continue;
    }
    backoff = std::chrono::seconds(1);
    ConnInfo conn = new_connection(*stream, base);
    asio::co_spawn(ex,
                   serve_connection(listener, handler, std::move(stream), std::move(conn), name,
                                    admissions, limits),
                   asio::detached);
  }
}

}  // namespace gost::app
