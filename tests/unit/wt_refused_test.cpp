// A wt stream the server refuses (net::wt::refuse: a FIN and no data, as GOST's listener when its
// queue is full) is opened again by the wt dialer and what the tunnel wrote is written again:
// over the real QUIC engine on loopback, the tunnel's bytes arrive once, intact, on the stream
// that was served.
#include <gtest/gtest.h>

#include <deque>

#include "core/component.hpp"
#include "net/wt.hpp"

namespace gost {
namespace {

using namespace std::chrono_literals;

TEST(WtRefused, ARefusedStreamIsOpenedAgainWithItsBytes) {
  asio::io_context io;
  net::quic::Config qc;
  qc.webtransport = true;
  int refused = 0;
  std::deque<std::string> received;  // what each served stream carried
  auto on_stream = [&](std::shared_ptr<net::quic::RequestStream> st) {
    if (refused < 2) {
      ++refused;
      net::wt::refuse(std::move(st));
      return;
    }
    asio::co_spawn(
        io,
        [](StreamPtr s, std::string& got) -> awaitable<void> {  // echo until the client's end
          char buf[4096];
          for (;;) {
            error_code ec;
            std::size_t n = co_await s->read_some(asio::buffer(buf), ec);
            if (ec) break;
            got.append(buf, n);
            co_await write_all(*s, asio::buffer(buf, n), ec);
            if (ec) break;
          }
          error_code ec;
          co_await s->shutdown_write(ec);
        }(net::wt::make_stream(std::move(st)), received.emplace_back()),
        asio::detached);
  };
  log::Logger log;
  net::quic::Server server(
      io, "127.0.0.1:0", std::nullopt, qc,
      [&](std::shared_ptr<net::quic::RequestStream> req) {
        asio::co_spawn(io, net::wt::serve_request(std::move(req), "/wt", on_stream, log),
                       asio::detached);
      },
      log);
  server.start();

  DialerOptions o;
  o.config.type = "wt";
  o.node_addr = server.bound_address();
  auto* make = DialerRegistry::find("wt");
  ASSERT_NE(make, nullptr);
  auto dialer = (*make)(o);

  std::string payload(12000, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 + 3);
  std::string echoed;
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        const std::string addr = o.node_addr;
        const log::Logger root;
        auto s = co_await dialer->connect(addr, root);
        error_code ec;
        co_await write_all(*s, asio::buffer(payload), ec);
        EXPECT_FALSE(ec) << ec.message();
        // Half-closed only once answered: a tunnel that half-closed before its refusal is not
        // retried (net/refused_retry.hpp).
        char buf[4096];
        while (!ec && echoed.size() < payload.size()) {
          std::size_t n = co_await s->read_some(asio::buffer(buf), ec);
          echoed.append(buf, n);
        }
        EXPECT_FALSE(ec) << ec.message();
        co_await s->shutdown_write(ec);
        std::size_t n = co_await s->read_some(asio::buffer(buf), ec);
        EXPECT_EQ(n, 0u);
        EXPECT_EQ(ec, asio::error::eof) << ec.message();
        done = true;
        server.close();
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run_for(20s);
  ASSERT_TRUE(done);
  EXPECT_EQ(refused, 2);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0], payload);  // the replayed bytes, once
  EXPECT_EQ(echoed, payload);
}

}  // namespace
}  // namespace gost
