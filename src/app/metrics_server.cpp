#include "app/metrics_server.hpp"

#include <fmt/format.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "core/component.hpp"
#include "core/timeout.hpp"
#include "proto/http.hpp"

namespace gost::app {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

// Every request is small (Prometheus sends a GET with a few headers); anything larger is refused.
constexpr std::uint32_t kHeaderLimit = 16 * 1024;
constexpr std::uint64_t kBodyLimit = 64 * 1024;
constexpr auto kReadTimeout = std::chrono::seconds(30);  // also the keep-alive idle limit
constexpr auto kWriteTimeout = std::chrono::seconds(30);
constexpr int kMaxSessions = 128;

// The path of a request-target (origin or absolute form), without the query.
std::string_view target_path(std::string_view target) {
  if (auto scheme = target.find("://"); scheme != std::string_view::npos && target[0] != '/') {
    auto slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  return target.substr(0, target.find('?'));
}

// Go's net/http plain-text error reply for a request it could not parse; the connection closes.
std::string go_error_reply(std::string_view status) {
  return fmt::format(
      "HTTP/1.1 {}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{}",
      status, status);
}

}  // namespace

struct MetricsServer::Impl {
  metrics::Registry& registry;
  std::string path;
  std::shared_ptr<const Authenticator> auth;
  asio::io_context ctx{1};
  std::unique_ptr<Listener> listener;
  std::thread thread;
  int sessions = 0;

  Impl(metrics::Registry& r, std::string p, std::shared_ptr<const Authenticator> a)
      : registry(r), path(p.empty() ? "/metrics" : std::move(p)), auth(std::move(a)) {}

  bool path_matches(std::string_view p) const {
    if (path.back() == '/') return p.substr(0, path.size()) == path;  // ServeMux subtree
    return p == path;
  }

  bool authorized(const bhttp::request<bhttp::string_body>& req) const {
    if (!auth) return true;
    auto it = req.find(bhttp::field::authorization);
    if (it == req.end()) return false;
    auto v = it->value();
    auto [user, pass] = proto::http::parse_basic_auth(std::string_view(v.data(), v.size()));
    if (user.empty() && pass.empty()) return false;
    return auth->authenticate(user, pass).has_value();
  }

  bhttp::response<bhttp::string_body> respond(const bhttp::request<bhttp::string_body>& req) {
    bhttp::response<bhttp::string_body> res{bhttp::status::ok, req.version()};
    auto target = req.target();
    if (!path_matches(target_path(std::string_view(target.data(), target.size())))) {
      res.result(bhttp::status::not_found);
      res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
      res.set("X-Content-Type-Options", "nosniff");
      res.body() = "404 page not found\n";
    } else if (!authorized(req)) {
      res.result(bhttp::status::unauthorized);  // GOST: no WWW-Authenticate, empty body
    } else {
      res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = registry.exposition();
      res.chunked(true);
    }
    res.keep_alive(req.keep_alive());
    if (!res.chunked()) res.prepare_payload();
    return res;
  }

  awaitable<void> session(StreamPtr stream) {
    tcp::socket* sock = stream->raw_tcp();
    if (!sock) co_return;
    auto ex = co_await asio::this_coro::executor;
    beast::flat_buffer buf;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(kHeaderLimit);
      parser.body_limit(kBodyLimit);
      error_code ec;
      {
        Deadline deadline(ex, kReadTimeout, [&stream] { stream->close(); });
        auto [e, n] = co_await bhttp::async_read(*sock, buf, parser, use_nothrow);
        ec = e;
      }
      if (ec) {
        std::string reply;
        if (ec == bhttp::error::header_limit)
          reply = go_error_reply("431 Request Header Fields Too Large");
        else if (ec == bhttp::error::body_limit)
          reply = go_error_reply("413 Request Entity Too Large");
        else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
                 ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message)
          reply = go_error_reply("400 Bad Request");
        if (!reply.empty() && sock->is_open()) {
          Deadline deadline(ex, kWriteTimeout, [&stream] { stream->close(); });
          co_await asio::async_write(*sock, asio::buffer(reply), use_nothrow);
        }
        co_return;
      }
      auto res = respond(parser.get());
      {
        Deadline deadline(ex, kWriteTimeout, [&stream] { stream->close(); });
        auto [e, n] = co_await bhttp::async_write(*sock, res, use_nothrow);
        if (e) co_return;
      }
      if (!res.keep_alive()) {
        error_code ignored;
        sock->shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
    }
  }

  awaitable<void> run_session(StreamPtr stream) {
    ++sessions;
    try {
      co_await session(std::move(stream));
    } catch (const std::exception&) {
      // A peer never takes the endpoint down; the connection is simply dropped.
    }
    --sessions;
  }

  awaitable<void> accept_loop() {
    auto ex = co_await asio::this_coro::executor;
    for (;;) {
      error_code ec;
      auto stream = co_await listener->accept(ec);
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
      if (ec) {
        asio::steady_timer t(ex, std::chrono::milliseconds(100));
        co_await t.async_wait(use_nothrow);
        continue;
      }
      if (sessions >= kMaxSessions) continue;  // dropped: closes the connection
      asio::co_spawn(ex, run_session(std::move(stream)), asio::detached);
    }
  }
};

MetricsServer::MetricsServer(metrics::Registry& registry, const std::string& addr, std::string path,
                             std::shared_ptr<const Authenticator> auth)
    : impl_(new Impl(registry, std::move(path), std::move(auth))) {
  auto* lf = ListenerRegistry::find("tcp");
  if (!lf) throw config::ConfigError("metrics: no tcp listener");
  ListenerOptions lo;
  lo.addr = addr;
  lo.first = true;
  lo.log = log::root().with({{"kind", "service"}, {"service", "@metrics"}});
  impl_->listener = (*lf)(impl_->ctx, lo);
}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start() {
  asio::co_spawn(impl_->ctx, impl_->accept_loop(), asio::detached);
  impl_->thread = std::thread([ctx = &impl_->ctx] {
    auto guard = asio::make_work_guard(*ctx);
    ctx->run();
  });
}

void MetricsServer::stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->ctx, [this] { impl_->listener->close(); });
  impl_->ctx.stop();
  impl_->thread.join();
}

std::string MetricsServer::bound_address() const { return impl_->listener->bound_address(); }

}  // namespace gost::app
