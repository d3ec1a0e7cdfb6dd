#include "app/connection.hpp"

#include <fmt/format.h>

#include "core/counted_stream.hpp"
#include "core/memory.hpp"
#include "core/metrics.hpp"
#include "core/tcp_stream.hpp"
#include "core/xid.hpp"

namespace gost::app {
namespace {

awaitable<void> serve_connection(std::shared_ptr<Listener> listener,
                                 std::shared_ptr<Handler> handler, StreamPtr stream,
                                 log::Logger base, std::shared_ptr<const std::string> service,
                                 std::shared_ptr<const policy::Admissions> admissions) {
  // A refused client is closed before any handshake, log line or byte (go-gost/x admission).
  if (admissions && !policy::admits(*admissions, stream->remote_address())) {
    base.debug(fmt::format("admission: {} is denied", stream->remote_address()));
    co_return;
  }
  memory::ConnectionScope counted;
  ConnInfo conn;
  conn.sid = new_xid();
  conn.remote = stream->remote_address();
  conn.local = stream->local_address();
  conn.log = base.with({{"remote", conn.remote}, {"local", conn.local}, {"sid", conn.sid}});
  // GOST's request metrics; the raw accepted connection counts its bytes (docs/PROTOCOLS.md
  // "observability: metrics"), below the listener's handshake (TLS, WebSocket). A multiplexing
  // listener's stream is no connection of its own: its payload is counted instead
  // (core/counted_stream.hpp).
  metrics::Request request(*service, conn.remote);
  bool count_payload = false;
  if (request.sink()) {
    conn.metrics = &request;
    if (auto* tcp = dynamic_cast<TcpStream*>(stream.get()))
      tcp->count_traffic(request.sink());
    else
      count_payload = true;
  }
  auto start = std::chrono::steady_clock::now();
  conn.log.info(fmt::format("{} <> {}", conn.remote, conn.local));
  try {
    stream = co_await listener->handshake(std::move(stream));
    if (count_payload) stream = std::make_unique<CountedStream>(std::move(stream), request.sink());
    co_await handler->handle(std::move(stream), conn);
  } catch (const system_error& e) {
    auto code = e.code();
    bool quiet = code == asio::error::eof || code == asio::error::operation_aborted ||
                 code == asio::error::connection_reset || code == asio::error::timed_out ||
                 code == asio::error::broken_pipe || code == asio::error::bad_descriptor;
    conn.log.write(quiet ? log::Level::debug : log::Level::error, error_text(e));
    request.fail();
  } catch (const std::exception& e) {
    conn.log.error(error_text(e));
    request.fail();
  }
  conn.log.info(fmt::format("{} >< {}", conn.remote, conn.local),
                {{"duration", (std::chrono::steady_clock::now() - start).count()},
                 {"inputBytes", static_cast<std::int64_t>(conn.input_bytes)},
                 {"outputBytes", static_cast<std::int64_t>(conn.output_bytes)}});
}

}  // namespace

awaitable<void> accept_loop(std::shared_ptr<Listener> listener, std::shared_ptr<Handler> handler,
                            log::Logger log, std::string service,
                            std::shared_ptr<const policy::Admissions> admissions) {
  auto ex = co_await asio::this_coro::executor;
  // One copy of the name for all connections of this loop (they may outlive the service).
  auto name = std::make_shared<const std::string>(std::move(service));
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
    asio::co_spawn(ex,
                   serve_connection(listener, handler, std::move(stream), log, name, admissions),
                   asio::detached);
  }
}

}  // namespace gost::app
