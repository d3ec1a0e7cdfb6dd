// A WebTransport test client for tests/e2e/test_wt.py: what our dialer never sends. Opens a QUIC
// connection (ALPN h3, WebTransport SETTINGS) to HOST:PORT and an extended CONNECT to PATH, prints
// the status, then (on 2xx) opens streams with a bad start and one good stream and prints what
// each got back:
//   session <status>
//   garbage <reset|data|eof|timeout>     a DATA frame where a request or WebTransport stream starts
//   truncated <...>                      the signal's first byte, then FIN
//   unknown-session <...>                a preamble naming a session that does not exist
//   good <echoed bytes as text|...>      a correct preamble, "ping", FIN (the server echoes)
//   alive <yes|no>                       the connection still works after all that
// Usage: wt_probe HOST:PORT PATH [PROTOCOL]   (the CONNECT's :protocol, default webtransport)
#include <fmt/format.h>

#include <iostream>

#include "net/quic.hpp"
#include "proto/wt.hpp"

using namespace gost;
namespace quic = gost::net::quic;

namespace {

awaitable<std::string> outcome(std::shared_ptr<quic::RequestStream> st) {
  std::string got;
  for (;;) {
    error_code ec;
    co_await st->read(got, 4096, std::chrono::seconds(5), ec);
    if (ec == asio::error::eof) co_return got.empty() ? "eof" : got;
    if (ec == asio::error::timed_out) co_return "timeout";
    if (ec) co_return got.empty() ? "reset" : got + "+reset";
  }
}

awaitable<void> run(std::string addr, std::string path, std::string protocol) {
  quic::Config cfg;
  cfg.webtransport = true;
  cfg.keepalive = false;
  quic::ClientTls tls;
  auto session = co_await quic::connect(addr, tls, cfg, log::root());
  quic::Headers head{{":method", "CONNECT"}, {":protocol", protocol},
                     {":scheme", "https"},   {":authority", "localhost"},
                     {":path", path},        {"sec-webtransport-http3-draft02", "1"}};
  error_code ec;
  auto connect = session->open(head, true, ec);
  if (!connect) throw system_error(ec, "open");
  co_await connect->wait_head(std::chrono::seconds(5), ec);
  if (ec) throw system_error(ec, "CONNECT");
  auto status = std::string(h2_header(connect->head(), ":status"));
  std::cout << "session " << status << std::endl;
  if (status.empty() || status[0] != '2') co_return;
  auto id = static_cast<std::uint64_t>(connect->id());
  auto open = [&](std::string first, bool fin) {
    error_code oec;
    auto st = session->open_raw(std::move(first), oec);
    if (!st) throw system_error(oec, "open_raw");
    if (fin) st->finish();
    return st;
  };
  std::cout << "garbage " << co_await outcome(open(std::string("\x00\x05hello", 7), false))
            << std::endl;
  std::cout << "truncated " << co_await outcome(open(std::string("\x40", 1), true)) << std::endl;
  std::cout << "unknown-session "
            << co_await outcome(open(proto::wt::stream_preamble(id + 4000) + "x", false))
            << std::endl;
  std::cout << "good " << co_await outcome(open(proto::wt::stream_preamble(id) + "ping", true))
            << std::endl;
  auto again = connect->open_webtransport_stream(ec);
  if (!again) {
    std::cout << "alive no" << std::endl;
    co_return;
  }
  co_await again->write("pong", ec);
  again->finish();
  std::cout << "alive " << (co_await outcome(again) == "pong" ? "yes" : "no") << std::endl;
  connect->finish();
  session->close();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::cerr << "usage: wt_probe HOST:PORT PATH [PROTOCOL]\n";
    return 2;
  }
  asio::io_context ctx;
  int rc = 0;
  asio::co_spawn(ctx, run(argv[1], argv[2], argc == 4 ? argv[3] : "webtransport"),
                 [&](std::exception_ptr e) {
                   if (!e) return;
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& x) {
                     std::cout << "error " << x.what() << std::endl;
                     rc = 1;
                   }
                 });
  ctx.run_for(std::chrono::seconds(40));
  return rc;
}
