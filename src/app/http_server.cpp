#include "app/http_server.hpp"

#include <fmt/format.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <thread>

#include "core/component.hpp"
#include "core/timeout.hpp"
#include "proto/http.hpp"

namespace gost::app {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

// Requests to these endpoints are small; anything larger is refused.
constexpr std::uint32_t kHeaderLimit = 16 * 1024;
constexpr auto kReadTimeout = std::chrono::seconds(30);  // also the keep-alive idle limit
constexpr auto kWriteTimeout = std::chrono::seconds(30);
constexpr int kMaxSessions = 128;

// Go's net/http plain-text error reply for a request it could not parse; the connection closes.
std::string go_error_reply(std::string_view status) {
  return fmt::format(
      "HTTP/1.1 {}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{}",
      status, status);
}

}  // namespace

std::string_view target_path(std::string_view target) {
  if (auto scheme = target.find("://"); scheme != std::string_view::npos && target[0] != '/') {
    auto slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  return target.substr(0, target.find('?'));
}

std::pair<std::string, std::string> basic_credentials(const HttpServer::Request& req) {
  auto it = req.find(bhttp::field::authorization);
  if (it == req.end()) return {};
  auto v = it->value();
  auto [user, pass] = proto::http::parse_basic_auth(std::string_view(v.data(), v.size()));
  return {std::string(user), std::string(pass)};
}

struct HttpServer::Impl {
  std::uint64_t body_limit;
  Responder responder;
  asio::io_context ctx{1};
  std::unique_ptr<Listener> listener;
  std::thread thread;
  int sessions = 0;

  awaitable<void> session(StreamPtr stream) {
    tcp::socket* sock = stream->raw_tcp();
    if (!sock) co_return;
    auto ex = co_await asio::this_coro::executor;
    beast::flat_buffer buf;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(kHeaderLimit);
      parser.body_limit(body_limit);
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
      auto res = responder(parser.get(), stream->remote_address());
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

HttpServer::HttpServer(const std::string& addr, const std::string& name, std::uint64_t body_limit,
                       Responder responder)
    : impl_(new Impl{body_limit, std::move(responder)}) {
  auto* lf = ListenerRegistry::find("tcp");
  if (!lf) throw config::ConfigError(fmt::format("{}: no tcp listener", name));
  ListenerOptions lo;
  lo.addr = addr;
  lo.first = true;
  lo.check_free = true;
  lo.log = log::root().with({{"kind", "service"}, {"service", name}});
  impl_->listener = (*lf)(impl_->ctx, lo);
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  asio::co_spawn(impl_->ctx, impl_->accept_loop(), asio::detached);
  impl_->thread = std::thread([ctx = &impl_->ctx] {
    auto guard = asio::make_work_guard(*ctx);
    ctx->run();
  });
}

void HttpServer::stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->ctx, [this] { impl_->listener->close(); });
  impl_->ctx.stop();
  impl_->thread.join();
}

std::string HttpServer::bound_address() const { return impl_->listener->bound_address(); }

}  // namespace gost::app
