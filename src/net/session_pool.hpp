// Per-worker pools of multiplexed client sessions (the mws, h2, http2 and grpc dialers). A session
// and all its streams live on one worker (docs/ARCHITECTURE.md "Concurrency"), so every worker has
// a pool of its own; only the map from worker to pool is shared, under a mutex. Tunnels that start
// while a session is being set up wait for it instead of each opening a connection of their own.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/asio.hpp"

namespace gost::net {

template <class Session>
class SessionPool {
 public:
  using Clock = std::chrono::steady_clock;
  SessionPool() = default;
  // Closes the spare sessions a burst opened: every session of a worker but its oldest is closed
  // once it has had no stream for `spare_idle` (`idle_since(session)`: when its last stream
  // ended, Clock::time_point::max() while it has one). The oldest stays for the next tunnel.
  SessionPool(std::function<Clock::time_point(const Session&)> idle_since,
              Clock::duration spare_idle)
      : idle_since_(std::move(idle_since)), spare_idle_(spare_idle) {}

  // A session of the calling worker: the first for which `usable(session)` holds, else a new one
  // from `make()` (returning awaitable<std::shared_ptr<Session>>). Sessions for which
  // `forget(session)` holds are dropped from the pool first (their streams keep them alive).
  template <class Forget, class Usable, class Make>
  awaitable<std::shared_ptr<Session>> get(Forget forget, Usable usable, Make make) {
    auto ex = co_await asio::this_coro::executor;
    Local& l = local(ex);  // from here on only this worker's thread touches `l`
    while (l.connecting) co_await l.ready.async_wait(use_nothrow);
    std::erase_if(l.sessions, [&](const auto& s) { return forget(*s); });
    for (auto& s : l.sessions)
      if (usable(*s)) co_return s;
    l.connecting = true;
    std::shared_ptr<Session> session;
    try {
      session = co_await make();
    } catch (...) {
      l.connecting = false;
      l.ready.cancel();
      throw;
    }
    l.connecting = false;
    l.ready.cancel();
    l.sessions.push_back(session);
    if (idle_since_ && l.sessions.size() == 2 && !l.reaping) {
      l.reaping = true;
      asio::co_spawn(ex, reap(local_ptr(ex), idle_since_, spare_idle_), asio::detached);
    }
    co_return session;
  }

 private:
  struct Local {
    explicit Local(asio::any_io_executor ex) : ready(ex, asio::steady_timer::time_point::max()) {}
    std::vector<std::shared_ptr<Session>> sessions;
    bool connecting = false;
    bool reaping = false;      // reap() runs (while the worker has spare sessions)
    asio::steady_timer ready;  // condition: a session set-up finished
  };

  Local& local(const asio::any_io_executor& ex) { return *local_ptr(ex); }
  std::shared_ptr<Local> local_ptr(const asio::any_io_executor& ex) {
    const void* worker = &asio::query(ex, asio::execution::context);
    std::lock_guard lock(mu_);
    auto it = pools_.find(worker);
    if (it == pools_.end()) it = pools_.emplace(worker, std::make_shared<Local>(ex)).first;
    return it->second;
  }

  // On the worker of `weak`, until the pool is gone or the worker has one session left.
  static awaitable<void> reap(std::weak_ptr<Local> weak,
                              std::function<Clock::time_point(const Session&)> idle_since,
                              Clock::duration spare_idle) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
      timer.expires_after(std::max<Clock::duration>(spare_idle / 2, std::chrono::milliseconds(100)));
      co_await timer.async_wait(use_nothrow);
      auto l = weak.lock();
      if (!l) co_return;
      auto now = Clock::now();
      for (std::size_t i = l->sessions.size(); i-- > 1;) {
        auto since = idle_since(*l->sessions[i]);
        if (since == Clock::time_point::max() || now - since < spare_idle) continue;
        l->sessions[i]->close();
        l->sessions.erase(l->sessions.begin() + static_cast<std::ptrdiff_t>(i));
      }
      if (l->sessions.size() <= 1) {
        l->reaping = false;
        co_return;
      }
    }
  }

  std::function<Clock::time_point(const Session&)> idle_since_;
  Clock::duration spare_idle_{};
  std::mutex mu_;  // the map only
  std::map<const void*, std::shared_ptr<Local>> pools_;
};

}  // namespace gost::net
