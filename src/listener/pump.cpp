#include "listener/pump.hpp"

#include <fmt/format.h>

namespace gost {

using TimePoint = asio::steady_timer::time_point;

StreamQueue::StreamQueue(asio::any_io_executor ex, std::size_t limit)
    : limit_(limit), ready_changed_(ex, TimePoint::max()), room_(ex, TimePoint::max()) {}

void StreamQueue::push(StreamPtr s) {
  if (closed_) return;
  ready_.push_back(std::move(s));
  ready_changed_.cancel();
}

awaitable<StreamPtr> StreamQueue::take(error_code& ec) {
  while (ready_.empty() && !closed_ && !accept_error_)
    co_await ready_changed_.async_wait(use_nothrow);
  if (!ready_.empty()) {
    ec = {};
    auto s = std::move(ready_.front());
    ready_.pop_front();
    room_.cancel();
    co_return s;
  }
  ec = closed_ ? asio::error::operation_aborted : accept_error_;
  co_return nullptr;
}

void StreamQueue::close() {
  closed_ = true;
  for (auto& t : sessions_) t.close();
  ready_.clear();
  ready_changed_.cancel();
  room_.cancel();
}

awaitable<void> StreamQueue::room() {
  if (!closed_) co_await room_.async_wait(use_nothrow);
}

PumpListener::PumpListener(asio::io_context& ctx, const ListenerOptions& o, const char* inner_type,
                           std::size_t limit)
    : queue_(std::make_shared<StreamQueue>(ctx.get_executor(), limit)),
      refusals_(std::make_shared<Refusals>(o.log, o.service, o.config.type)),
      log_(o.log) {
  const auto* factory = ListenerRegistry::find(inner_type);
  if (!factory) throw config::ConfigError(fmt::format("listener {}: not registered", inner_type));
  inner_ = std::shared_ptr<Listener>((*factory)(ctx, o));
}

awaitable<StreamPtr> PumpListener::accept(error_code& ec) {
  auto q = queue_;
  if (!pumping_) {
    pumping_ = true;
    asio::co_spawn(q->ready_changed_.get_executor(), pump(inner_, q, serve_, log_), asio::detached);
  }
  co_return co_await q->take(ec);
}

void PumpListener::close() {
  queue_->closed_ = true;  // before the inner listener's close wakes the pump
  inner_->close();
  queue_->close();
}

awaitable<void> PumpListener::run(std::shared_ptr<Listener> inner, StreamPtr conn,
                                  std::shared_ptr<StreamQueue> q, Serve serve) {
  conn = co_await inner->handshake(std::move(conn));  // TLS for a "tls" inner listener
  co_await serve(std::move(conn), std::move(q));
}

awaitable<void> PumpListener::pump(std::shared_ptr<Listener> inner, std::shared_ptr<StreamQueue> q,
                                   Serve serve, log::Logger log) {
  auto ex = co_await asio::this_coro::executor;
  auto backoff = std::chrono::seconds(1);
  while (!q->closed_) {
    error_code ec;
    auto conn = co_await inner->accept(ec);
    if (q->closed_) break;
    if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) {
      q->accept_error_ = ec;
      q->ready_changed_.cancel();
      break;
    }
    if (ec) {  // temporary (e.g. out of descriptors): as the service accept loop does
      log.warn(fmt::format("accept: {}, retrying in {}s", ec.message(), backoff.count()));
      asio::steady_timer t(ex, backoff);
      co_await t.async_wait(use_nothrow);
      backoff = std::min(backoff * 2, std::chrono::seconds(5));
      continue;
    }
    backoff = std::chrono::seconds(1);
    std::string remote = conn->remote_address();
    asio::co_spawn(ex, run(inner, std::move(conn), q, serve), [log, remote](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        log.debug(fmt::format("{}: {}", remote, error_text(x)));
      }
    });
  }
}

}  // namespace gost
