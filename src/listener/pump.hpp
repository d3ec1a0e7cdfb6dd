// The accept side of the multiplexing listeners (mws/mwss, h2/h2c, http2, grpc; the QUIC ones
// use the queue alone): their accept() yields the streams of many sessions, not connections.
//
// A pump owned by the listener accepts connections from an inner listener (the registry's tcp or
// tls one) and runs `serve(connection, queue)` for each in its own coroutine: the handshakes,
// then the session, whose streams it pushes to the queue that accept() takes from. So a slow
// client never holds up another, and everything stays on the listener's worker. close() closes
// the inner listener and every session the queue tracks.
#pragma once

#include <deque>
#include <functional>
#include <list>
#include <memory>

#include "core/component.hpp"
#include "core/refusals.hpp"

namespace gost {

class StreamQueue {
 public:
  StreamQueue(asio::any_io_executor ex, std::size_t limit);

  bool closed() const { return closed_; }
  bool full() const { return ready_.size() >= limit_; }
  std::size_t limit() const { return limit_; }
  void set_limit(std::size_t n) { limit_ = n; }
  // Queues a stream for accept() (dropped once closed).
  void push(StreamPtr s);
  // The next stream queued (nullptr + operation_aborted once closed, or the inner listener's
  // error); take() by accept() only.
  awaitable<StreamPtr> take(error_code& ec);
  // Drops what is queued, closes the tracked sessions, wakes every waiter.
  void close();
  // One wake-up: accept() took a stream, or the listener closed.
  awaitable<void> room();
  // Queues the streams `session` accepts, each as `admit(stream)` returns it (null: refused, it
  // answered the stream itself), until the session or the listener ends; waits while the queue
  // is full (the session's own bounded backlog then holds the peer's new streams). The session is
  // tracked: closing the listener closes it.
  template <class Session, class Admit>
  awaitable<void> take_streams(std::shared_ptr<Session> session, Admit admit) {
    track(session);
    for (;;) {
      while (full() && !closed() && !session->closed()) co_await room();
      if (closed()) co_return;
      error_code ec;
      auto s = co_await session->accept_stream(ec);
      if (!s || closed()) co_return;
      if (StreamPtr admitted = admit(std::move(s))) push(std::move(admitted));
    }
  }
  // The session is closed when the listener closes.
  template <class Session>
  void track(const std::shared_ptr<Session>& s) {
    std::weak_ptr<Session> w = s;
    sessions_.remove_if([](const auto& t) { return t.expired(); });
    sessions_.push_back({[w] { return w.expired(); },
                         [w] {
                           if (auto x = w.lock()) x->close();
                         }});
  }

 private:
  friend class PumpListener;
  struct Tracked {
    std::function<bool()> expired;
    std::function<void()> close;
  };
  std::deque<StreamPtr> ready_;
  std::size_t limit_;
  std::list<Tracked> sessions_;
  asio::steady_timer ready_changed_;  // condition: a stream was queued, or closed
  asio::steady_timer room_;           // condition: accept() took a stream, or closed
  bool closed_ = false;
  error_code accept_error_;  // the inner listener failed: reported by accept()
};

class PumpListener : public Listener {
 public:
  // Runs per accepted connection (after the inner listener's handshake, e.g. TLS for "tls"), in
  // its own coroutine; exceptions are logged (debug).
  using Serve = std::function<awaitable<void>(StreamPtr, std::shared_ptr<StreamQueue>)>;

  awaitable<StreamPtr> accept(error_code& ec) override;
  void close() override;
  std::string bound_address() const override { return inner_->bound_address(); }
  std::optional<SharedListenSocket> share_socket() override { return inner_->share_socket(); }
  std::string network() const override { return inner_->network(); }

 protected:
  // `inner_type`: the registry listener that accepts the connections ("tcp" or "tls").
  PumpListener(asio::io_context& ctx, const ListenerOptions& o, const char* inner_type,
               std::size_t limit);
  // Set by the derived constructor (it captures the derived options, never `this`).
  void set_serve(Serve s) { serve_ = std::move(s); }
  StreamQueue& queue() { return *queue_; }
  // Where the derived listener reports the streams it still refuses (shared by its sessions).
  const RefusalsPtr& refusals() const { return refusals_; }

 private:
  static awaitable<void> pump(std::shared_ptr<Listener> inner, std::shared_ptr<StreamQueue> q,
                              Serve serve, log::Logger log);
  static awaitable<void> run(std::shared_ptr<Listener> inner, StreamPtr conn,
                             std::shared_ptr<StreamQueue> q, Serve serve);

  std::shared_ptr<StreamQueue> queue_;
  RefusalsPtr refusals_;
  std::shared_ptr<Listener> inner_;
  Serve serve_;
  log::Logger log_;
  bool pumping_ = false;
};

}  // namespace gost
