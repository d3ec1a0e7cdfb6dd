#include "net/udp_relay.hpp"

#include <fmt/format.h>

#include <vector>

#include "chain/chain.hpp"
#include "core/address.hpp"

namespace gost::net {
namespace {

std::string host_of(std::string_view addr) {
  auto hp = split_host_port(addr);
  return hp ? hp->host : std::string();
}

}  // namespace

awaitable<UdpUpstream> open_udp_upstream(Router& router, ConnInfo& conn) {
  UdpUpstream u;
  if (router.has_chain()) {
    u.stream = co_await router.dial("udp", "", conn);
    u.conn = dynamic_cast<PacketConn*>(u.stream.get());
    if (!u.conn)
      throw system_error(asio::error::operation_not_supported,
                         "UDP through this chain is not supported: the last node's connector does "
                         "not carry datagrams");
  } else {
    u.socket = std::make_unique<UdpSocketConn>(
        open_udp(co_await asio::this_coro::executor, std::nullopt, 0));
    u.conn = u.socket.get();
  }
  co_return u;
}

awaitable<StreamPtr> dial_udp_target(Router& router, const std::string& addr, ConnInfo& conn) {
  if (router.has_chain()) co_return co_await router.dial("udp", addr, conn);
  co_return co_await dial_udp(addr);
}

awaitable<void> relay_datagrams(PacketConn& client, PacketConn& upstream, Stream* control,
                                ConnInfo& conn, DatagramRelayOptions o) {
  auto ex = co_await asio::this_coro::executor;
  int running = 0;
  asio::steady_timer wake(ex);
  auto stop_all = [&] {
    client.close();
    upstream.close();
    if (control) control->close();
  };
  auto on_done = [&](std::exception_ptr) {
    --running;
    stop_all();
    wake.cancel();
  };
  const std::size_t bufsize = o.buffer_size;
  const log::Logger& log = conn.log;
  // client → upstream
  ++running;
  asio::co_spawn(
      ex,
      [&]() -> awaitable<void> {
        std::vector<char> buf(bufsize);
        std::string dst;
        for (;;) {
          error_code ec;
          std::size_t n = co_await client.read_from(asio::buffer(buf), dst, ec);
          if (ec) co_return;
          bool refused = false;  // a datagram to a bypassed target is dropped
          if (o.router && o.router->bypass_needs_async())
            refused = co_await o.router->bypassed_async("udp", dst, conn.client_id);
          else if (o.router)
            refused = o.router->bypassed("udp", dst);
          if (refused) {
            log.warn(fmt::format("{}: bypass: {}", o.tag, dst));
            continue;
          }
          co_await upstream.write_to(asio::buffer(buf.data(), n), dst, ec);
          if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
          if (ec) {
            log.warn(fmt::format("{}: udp to {}: {}", o.tag, dst, ec.message()));
            if (!dynamic_cast<UdpSocketConn*>(&upstream)) co_return;  // a broken stream
            continue;
          }
          conn.input_bytes += n;
          if (log::enabled(log::Level::trace))
            log.trace(fmt::format("{}: udp {} bytes to {}", o.tag, n, dst));
        }
      },
      on_done);
  // upstream → client
  ++running;
  asio::co_spawn(
      ex,
      [&]() -> awaitable<void> {
        std::vector<char> buf(bufsize);
        std::string src;
        for (;;) {
          error_code ec;
          std::size_t n = co_await upstream.read_from(asio::buffer(buf), src, ec);
          if (ec) co_return;
          if (o.resolve_domain && !parse_ip(host_of(src))) {
            try {
              auto ip = co_await resolve_udp_host(host_of(src));
              src = join_host_port(ip.to_string(), split_host_port(src)->port);
            } catch (const system_error&) {
              continue;
            }
          }
          co_await client.write_to(asio::buffer(buf.data(), n), src, ec);
          if (ec) co_return;
          conn.output_bytes += n;
        }
      },
      on_done);
  if (control) {
    ++running;
    asio::co_spawn(
        ex,
        [control]() -> awaitable<void> {
          char b[512];
          for (;;) {
            error_code ec;
            co_await control->read_some(asio::buffer(b), ec);
            if (ec) co_return;
          }
        },
        on_done);
  }
  while (running > 0) {
    wake.expires_at(asio::steady_timer::time_point::max());
    co_await wake.async_wait(use_nothrow);
  }
}

}  // namespace gost::net
