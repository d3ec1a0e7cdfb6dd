#include "net/refused_retry.hpp"

#include <fmt/format.h>

#include "core/log.hpp"

namespace gost::net {

using TimePoint = asio::steady_timer::time_point;

RefusedRetryStream::RefusedRetryStream(StreamPtr first, RefusedRetryLimits limits)
    : inner_(std::move(first)), limits_(limits), opened_(std::chrono::steady_clock::now()) {}

RefusedRetryStream::~RefusedRetryStream() = default;

void RefusedRetryStream::stop_watching() {
  watching_ = false;
  std::string().swap(sent_);
}

// A refusal ends the tunnel: counted and warned about like every refusal, and one error line of
// its own. In the default logger: a copy of the connection's (1 KiB) held by every tunnel until
// its first byte would cost more than the connection fields are worth on this rare line (a
// connector that fails logs its route error with them anyway).
void RefusedRetryStream::lost(std::string_view why) {
  refused(why);
  log::Logger().error(fmt::format("{}: stream refused, tunnel ended ({})", server(), why));
}

void RefusedRetryStream::writer_done() {
  --writers_;
  if (switching_ && writers_ == 0 && cond_) cond_->cancel();
}

awaitable<std::size_t> RefusedRetryStream::read_some(asio::mutable_buffer buf, error_code& ec) {
  for (;;) {
    std::size_t n = co_await inner_->read_some(buf, ec);
    if (!watching_) co_return n;
    if (n > 0 || !ec) {  // the first byte of an answer: the server serves this tunnel
      stop_watching();
      co_return n;
    }
    if (ec != asio::error::eof || closed_) {
      stop_watching();
      co_return n;
    }
    if (!co_await retry(ec)) co_return 0;
  }
}

// The stream ended before its first byte (ec: eof). Returns true when another stream now carries
// the tunnel; false with `ec` set: eof (the end stands), connection_refused (given up), or what
// prevented the retry.
awaitable<bool> RefusedRetryStream::retry(error_code& ec) {
  switching_ = true;
  if (!cond_) cond_ = std::make_unique<asio::steady_timer>(inner_->executor(), TimePoint::max());
  // A write in flight on the refused stream finishes first: its bytes join sent_ (or pass the
  // limit).
  while (writers_ > 0 && !closed_) co_await cond_->async_wait(use_nothrow);
  bool again = false;
  if (closed_) {
    ec = asio::error::operation_aborted;
  } else if (half_closed_ || std::chrono::steady_clock::now() - opened_ > limits_.refusal_window) {
    // maybe no refusal at all (see the header): the end stands
    if (log::enabled(log::Level::debug))
      log::Logger().debug(
          fmt::format("{}: stream ended before any byte {}: not retried", server(),
                      half_closed_ ? "after the tunnel half-closed" : "long after it was opened"));
  } else if (!replayable_) {
    lost(fmt::format("not retried: more than {} bytes written", limits_.replay_limit));
  } else if (retries_ >= limits_.max_retries) {
    lost(fmt::format("given up after {} attempts", retries_ + 1));
    ec = asio::error::connection_refused;
  } else {
    again = true;
  }
  if (again) {
    ++retries_;
    refused("retrying");
    {
      asio::steady_timer pause(inner_->executor(), limits_.backoff * (1 << (retries_ - 1)));
      backoff_ = &pause;
      co_await pause.async_wait(use_nothrow);
      backoff_ = nullptr;
    }
    StreamPtr next;
    if (!closed_) {
      try {
        next = co_await reopen_bounded();
      } catch (const system_error& e) {
        ec = e.code();
      }
    }
    if (closed_) {
      if (next) next->close();
      ec = asio::error::operation_aborted;
    } else if (next) {
      auto refused_stream = std::move(inner_);
      inner_ = std::move(next);
      opened_ = std::chrono::steady_clock::now();
      refused_stream->close();
      ec = {};
      if (!sent_.empty()) co_await write_all(*inner_, asio::buffer(sent_), ec);
    }
  }
  switching_ = false;
  cond_->cancel();  // writers waiting for the switch go on (on the new stream, or fail)
  if (!again || ec) {
    stop_watching();
    co_return false;
  }
  co_return true;
}

// reopen(), ended by limits_.reopen_timeout (timed_out) or by close() (its error).
awaitable<StreamPtr> RefusedRetryStream::reopen_bounded() {
  auto ex = inner_->executor();
  auto cancel = std::make_shared<Cancel>();
  asio::steady_timer timer(ex, limits_.reopen_timeout);
  timer.async_wait([cancel](error_code e) {
    if (e) return;
    cancel->expired = true;
    cancel->signal.emit(asio::cancellation_type::terminal);
  });
  reopening_ = cancel;
  StreamPtr s;
  std::exception_ptr failure;
  try {
    s = co_await asio::co_spawn(
        ex, reopen(), asio::bind_cancellation_slot(cancel->signal.slot(), asio::use_awaitable));
  } catch (const system_error&) {
    failure = std::current_exception();
  }
  reopening_.reset();
  timer.cancel();
  if (cancel->expired) throw system_error(asio::error::timed_out, "reopen");
  if (failure) std::rethrow_exception(failure);
  co_return s;
}

awaitable<std::size_t> RefusedRetryStream::write_some(asio::const_buffer buf, error_code& ec) {
  if (!watching_) co_return co_await inner_->write_some(buf, ec);
  while (switching_ && !closed_) co_await cond_->async_wait(use_nothrow);
  ++writers_;
  std::size_t n = co_await inner_->write_some(buf, ec);
  if (watching_ && replayable_ && n > 0) {
    if (sent_.size() + n > limits_.replay_limit) {
      replayable_ = false;
      std::string().swap(sent_);
    } else {
      sent_.append(static_cast<const char*>(buf.data()), n);
    }
  }
  writer_done();
  co_return n;
}

awaitable<void> RefusedRetryStream::shutdown_write(error_code& ec) {
  if (!watching_) {
    co_await inner_->shutdown_write(ec);
    co_return;
  }
  while (switching_ && !closed_) co_await cond_->async_wait(use_nothrow);
  half_closed_ = true;
  std::string().swap(sent_);  // never replayed now
  ++writers_;
  co_await inner_->shutdown_write(ec);
  writer_done();
}

void RefusedRetryStream::close() {
  closed_ = true;
  inner_->close();
  if (reopening_) reopening_->signal.emit(asio::cancellation_type::terminal);
  if (backoff_) backoff_->cancel();
  if (cond_) cond_->cancel();
}

}  // namespace gost::net
