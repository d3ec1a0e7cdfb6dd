// A MASQUE test client for tests/e2e/test_masque.py: sends what our connector never does. Opens a
// QUIC connection (ALPN h3, HTTP/3 datagrams) to HOST:PORT, sends one request made of the given
// fields, and prints the answer:
//   status <code>
//   <name>: <value>               each response field but :status and date
//   body <bytes as text>          what the body held, when the answer ended it
// With `--udp TEXT` after a 200 to a CONNECT-UDP, it then sends TEXT as an HTTP datagram (and,
// with `--capsule`, as a DATAGRAM capsule on the stream instead) and prints what came back:
//   datagram <text>|timeout
// With `--junk-capsule` it sends an over-long DATAGRAM capsule and prints how the stream ended:
//   ended <reset|eof|timeout>
// Usage: masque_probe HOST:PORT NAME=VALUE... [--udp TEXT [--capsule]] [--junk-capsule]
#include <fmt/format.h>

#include <iostream>

#include "net/quic.hpp"
#include "proto/masque.hpp"
#include "proto/wt.hpp"

using namespace gost;
namespace quic = gost::net::quic;

namespace {

struct Args {
  std::string addr;
  quic::Headers head;
  std::optional<std::string> udp;
  bool capsule = false;
  bool junk_capsule = false;
};

awaitable<void> run(Args a) {
  quic::Config cfg;
  cfg.datagrams = true;
  cfg.keepalive = false;
  quic::ClientTls tls;
  auto session = co_await quic::connect(a.addr, tls, cfg, log::root());
  error_code ec;
  auto st = session->open(a.head, true, ec);
  if (!st) throw system_error(ec, "open");
  st->accept_datagrams();
  co_await st->wait_head(std::chrono::seconds(5), ec);
  if (ec) throw system_error(ec, "answer");
  std::string status(net::h2_header(st->head(), ":status"));
  std::cout << "status " << status << std::endl;
  for (const auto& h : st->head())
    if (h.name != ":status" && h.name != "date") std::cout << h.name << ": " << h.value << "\n";
  if (status != "200") {
    std::string body;
    for (;;) {
      co_await st->read(body, 4096, std::chrono::seconds(5), ec);
      if (ec) break;
    }
    if (ec == asio::error::eof) std::cout << "body " << body << std::endl;
    session->close();
    co_return;
  }
  if (a.udp) {
    auto d = proto::masque::udp_datagram(*a.udp);
    if (a.capsule || !st->send_datagram(d))
      co_await st->write(proto::masque::datagram_capsule(d), ec);
    proto::masque::CapsuleReader capsules;
    std::string got = "timeout";
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      std::optional<std::string> in = st->take_datagram();
      if (!in) in = capsules.next();
      if (in) {
        auto p = proto::masque::udp_payload(*in);
        got = p ? std::string(*p) : "bad-context";
        break;
      }
      std::string body;
      co_await st->read(body, 4096, std::chrono::milliseconds(50), ec);
      if (ec && ec != asio::error::timed_out) break;
      capsules.feed(body);
    }
    std::cout << "datagram " << got << std::endl;
  }
  if (a.junk_capsule) {
    std::string junk;
    proto::wt::append_varint(junk, proto::masque::kCapsuleDatagram);
    proto::wt::append_varint(junk, 1 << 20);  // longer than any UDP payload
    junk += "xxxx";
    co_await st->write(junk, ec);
    std::string body;
    std::string how = "timeout";
    for (int i = 0; i < 100; ++i) {
      co_await st->read(body, 4096, std::chrono::milliseconds(50), ec);
      if (ec == asio::error::eof) {
        how = "eof";
        break;
      }
      if (ec && ec != asio::error::timed_out) {
        how = "reset";
        break;
      }
    }
    std::cout << "ended " << how << std::endl;
  }
  st->finish();
  session->close();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: masque_probe HOST:PORT NAME=VALUE... [--udp TEXT [--capsule]] "
                 "[--junk-capsule]\n";
    return 2;
  }
  Args a;
  a.addr = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--udp" && i + 1 < argc) {
      a.udp = argv[++i];
    } else if (arg == "--capsule") {
      a.capsule = true;
    } else if (arg == "--junk-capsule") {
      a.junk_capsule = true;
    } else if (auto eq = arg.find('=', 1); eq != std::string::npos) {
      a.head.push_back({arg.substr(0, eq), arg.substr(eq + 1)});
    } else {
      std::cerr << "bad argument: " << arg << "\n";
      return 2;
    }
  }
  asio::io_context ctx;
  int rc = 0;
  asio::co_spawn(ctx, run(std::move(a)), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cout << "error " << x.what() << std::endl;
      rc = 1;
    }
  });
  ctx.run_for(std::chrono::seconds(30));
  return rc;
}
