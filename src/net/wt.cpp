#include "net/wt.hpp"

#include <fmt/format.h>

#include "net/session_pool.hpp"
#include "proto/pht.hpp"

namespace gost::net::wt {

namespace {

// What keeps a stream's session in its pool's accounts (client side): tunnels open on it, and
// since when it has none.
struct Usage {
  std::size_t open = 0;
  std::chrono::steady_clock::time_point idle_since = std::chrono::steady_clock::now();
};

// A tunnel: the stream as a byte Stream that keeps its session's accounts (client side).
StreamPtr tunnel_stream(std::shared_ptr<quic::RequestStream> st, std::shared_ptr<Usage> usage) {
  if (!usage) return quic::byte_stream(std::move(st));
  ++usage->open;
  return quic::byte_stream(std::move(st), [usage] {
    if (--usage->open == 0) usage->idle_since = std::chrono::steady_clock::now();
  });
}

}  // namespace

StreamPtr make_stream(std::shared_ptr<quic::RequestStream> st) {
  return quic::byte_stream(std::move(st));
}

void refuse(std::shared_ptr<quic::RequestStream> st) {
  st->finish();
  auto ex = st->executor();
  asio::co_spawn(
      ex,
      [](std::shared_ptr<quic::RequestStream> s) -> awaitable<void> {
        error_code ec;
        std::string sink;
        for (std::size_t total = 0; total < 64 * 1024; total += sink.size()) {
          sink.clear();
          co_await s->read(sink, 16 * 1024, std::chrono::seconds(5), ec);
          if (ec) break;
        }
        if (ec != asio::error::eof) s->reset();
      }(std::move(st)),
      asio::detached);
}

// ---- server -----------------------------------------------------------------------------------

namespace {

quic::Headers response_head(int status) {
  return {{":status", std::to_string(status)}, {"date", proto::pht::current_http_date()}};
}

}  // namespace

awaitable<void> serve_request(std::shared_ptr<quic::RequestStream> req, std::string path,
                              OnStream on_stream, log::Logger log) {
  error_code ec;
  const auto& head = req->head();
  if (log::enabled(log::Level::trace)) {  // GOST dumps the request at trace level
    std::string dump;
    for (const auto& h : head) dump += fmt::format("{}: {}\n", h.name, h.value);
    log.trace(fmt::format("wt: request from {}\n{}", req->remote_address(), dump));
  }
  auto target = h2_header(head, ":path");
  target = target.substr(0, target.find('?'));  // ServeMux matches the path only
  if (target != path) {
    co_await req->reply(404, ec);
    co_return;
  }
  auto method = h2_header(head, ":method");
  auto protocol = h2_header(head, ":protocol");
  // webtransport-go's Upgrade fails (GOST answers 500) for anything but an extended CONNECT of
  // WebTransport; the draft-13+ token is accepted beside the draft-02 one GOST's clients send.
  if (method != "CONNECT" || (protocol != "webtransport" && protocol != "webtransport-h3")) {
    log.debug(fmt::format("wt: {} {} from {}: not a WebTransport session", method, target,
                          req->remote_address()));
    co_await req->reply(500, ec);
    co_return;
  }
  auto ok = response_head(200);
  ok.push_back({"sec-webtransport-http3-draft", "draft02"});
  req->respond(ok, ec);
  if (ec) co_return;
  req->accept_webtransport(std::move(on_stream));
  // The session lasts as long as its request stream; what the client sends on it (capsules of
  // newer drafts) is read and dropped. Its FIN ends the session: we finish ours, which resets the
  // session's streams still open.
  std::string sink;
  for (;;) {
    sink.clear();
    co_await req->read(sink, 16 * 1024, std::chrono::nanoseconds(0), ec);
    if (ec) break;
  }
  log.debug(fmt::format("wt: session {} of {} ended ({})", req->id(), req->remote_address(),
                        ec.message()));
  if (ec == asio::error::eof)
    req->finish();
  else
    req->reset();
}

// ---- client -----------------------------------------------------------------------------------

namespace {

struct Session {
  std::shared_ptr<quic::ClientSession> conn;
  std::shared_ptr<quic::RequestStream> connect;
  std::shared_ptr<Usage> usage = std::make_shared<Usage>();

  bool closing() const { return conn->closing() || connect->done(); }
  bool usable() const { return !closing() && conn->usable(); }
  std::chrono::steady_clock::time_point idle_since() const {
    return usage->open > 0 ? std::chrono::steady_clock::time_point::max() : usage->idle_since;
  }
  void close() {
    connect->finish();
    conn->close();
  }
};

}  // namespace

struct Client::Impl {
  Impl(ClientConfig c, log::Logger l)
      : cfg(std::move(c)), log(std::move(l)), pool(spare_reaping<Session>(kSpareIdle, 50)) {
    cfg.quic.webtransport = true;
  }

  awaitable<std::shared_ptr<Session>> connect() {
    auto conn = co_await quic::connect(cfg.node_addr, cfg.tls, cfg.quic, log);
    // The extended CONNECT webtransport-go v0.9.0 sends (GOST 3.2.6's client and server).
    quic::Headers head{{":method", "CONNECT"}, {":protocol", "webtransport"},
                       {":scheme", "https"},   {":authority", cfg.authority},
                       {":path", cfg.path},    {"sec-webtransport-http3-draft02", "1"}};
    for (const auto& h : cfg.headers) head.push_back(h);
    if (h2_header(head, "user-agent").empty()) head.push_back({"user-agent", "quic-go HTTP/3"});
    error_code ec;
    auto req = conn->open(head, true, ec);
    if (!req) {
      conn->close();
      throw system_error(ec, fmt::format("wt: session to {}", cfg.node_addr));
    }
    co_await req->wait_head(cfg.connect_timeout, ec);
    if (ec) {
      conn->close();
      throw system_error(ec, fmt::format("wt: session to {}", cfg.node_addr));
    }
    auto status = h2_header(req->head(), ":status");
    if (status.size() != 3 || status[0] != '2') {
      conn->close();
      throw system_error(asio::error::connection_refused,
                         fmt::format("wt: session to {}: status {}", cfg.node_addr, status));
    }
    log.debug(fmt::format("wt: session to {} ({} {}): {}", cfg.node_addr, cfg.authority, cfg.path,
                          status));
    auto s = std::make_shared<Session>();
    s->conn = std::move(conn);
    s->connect = std::move(req);
    co_return s;
  }

  ClientConfig cfg;
  log::Logger log;
  SessionPool<Session> pool;
};

Client::Client(ClientConfig cfg, log::Logger log)
    : impl_(std::make_shared<Impl>(std::move(cfg), std::move(log))) {}
Client::~Client() = default;

awaitable<StreamPtr> Client::open() {
  auto impl = impl_;
  // A lambda that owns a shared_ptr must not be a temporary inside the co_await expression (the
  // GCC 12 pitfall, docs/ARCHITECTURE.md "Concurrency"): built here first.
  Impl* raw = impl.get();
  auto make = [raw]() { return raw->connect(); };
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto session = co_await impl->pool.get([](const Session& s) { return s.closing(); },
                                           [](const Session& s) { return s.usable(); }, make);
    error_code ec;
    auto st = session->connect->open_webtransport_stream(ec);
    if (st) co_return tunnel_stream(std::move(st), session->usage);
    // No stream credit left (a race with another tunnel) or closing: another session.
    if (ec != asio::error::connection_refused && ec != asio::error::connection_aborted &&
        ec != asio::error::connection_reset)
      throw system_error(ec, fmt::format("wt: stream to {}", impl->cfg.node_addr));
  }
  throw system_error(asio::error::connection_aborted,
                     fmt::format("wt: no session to {}", impl->cfg.node_addr));
}

}  // namespace gost::net::wt
