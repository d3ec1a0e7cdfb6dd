// Per-worker pools of multiplexed client sessions (the mws, h2, http2 and grpc dialers). A session
// and all its streams live on one worker (docs/ARCHITECTURE.md "Concurrency"), so every worker has
// a pool of its own; only the map from worker to pool is shared, under a mutex. Tunnels that start
// while a session is being set up wait for it instead of each opening a connection of their own
// (or, for a burst larger than the set-ups in progress will take, start a few more: Options).
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
  struct Options {
    // Closes the spare sessions a burst opened: every session of a worker but its oldest is
    // closed once it has had no stream for `spare_idle` (`idle_since(session)`: when its last
    // stream ended, Clock::time_point::max() while it has one). The oldest stays for the next
    // tunnel. Unset: sessions stay until they end.
    std::function<Clock::time_point(const Session&)> idle_since;
    Clock::duration spare_idle{};
    // Streams a new session is expected to take. Set, a worker sets up more sessions at once
    // (at most max_setups) while more tunnels wait than the set-ups in progress will take: a
    // burst then does not wait for its connections one handshake after the other. 0: one set-up
    // at a time, shared by every tunnel that waits.
    std::size_t per_session = 0;
    int max_setups = 8;
  };
  SessionPool() = default;
  explicit SessionPool(Options o) : opts_(std::move(o)) {}

  // A session of the calling worker: the first for which `usable(session)` holds, else a new one
  // from `make()` (returning awaitable<std::shared_ptr<Session>>). Sessions for which
  // `forget(session)` holds are dropped from the pool first (their streams keep them alive).
  template <class Forget, class Usable, class Make>
  awaitable<std::shared_ptr<Session>> get(Forget forget, Usable usable, Make make) {
    auto ex = co_await asio::this_coro::executor;
    Local& l = local(ex);  // from here on only this worker's thread touches `l`
    // A usable session is taken even while another is being set up (a burst of tunnels must not
    // queue behind a handshake while earlier sessions still have room); only a tunnel that finds
    // none waits for the set-up in progress, or starts one.
    for (;;) {
      std::erase_if(l.sessions, [&](const auto& s) { return forget(*s); });
      for (auto& s : l.sessions)
        if (usable(*s)) co_return s;
      if (l.connecting == 0) break;
      if (opts_.per_session > 0 && l.connecting < opts_.max_setups &&
          l.waiting >= static_cast<std::size_t>(l.connecting) * opts_.per_session)
        break;
      ++l.waiting;
      co_await l.ready.async_wait(use_nothrow);
      --l.waiting;
    }
    ++l.connecting;
    std::shared_ptr<Session> session;
    try {
      session = co_await make();
    } catch (...) {
      --l.connecting;
      l.ready.cancel();
      throw;
    }
    --l.connecting;
    l.ready.cancel();
    l.sessions.push_back(session);
    if (opts_.idle_since && l.sessions.size() >= 2 && !l.reaping) {
      l.reaping = true;
      asio::co_spawn(ex, reap(local_ptr(ex), opts_.idle_since, opts_.spare_idle), asio::detached);
    }
    co_return session;
  }

 private:
  struct Local {
    explicit Local(asio::any_io_executor ex) : ready(ex, asio::steady_timer::time_point::max()) {}
    std::vector<std::shared_ptr<Session>> sessions;
    int connecting = 0;        // set-ups in progress
    std::size_t waiting = 0;   // tunnels waiting for one
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

  Options opts_;
  std::mutex mu_;  // the map only
  std::map<const void*, std::shared_ptr<Local>> pools_;
};

// How long a spare session of a burst stays without a stream before its pool closes it (checked
// every kSpareIdle / 2): gone 4–6 s after a burst, before the memory release's follow-up at 6 s
// (core/memory) returns what the sessions held, on both ends (docs/ARCHITECTURE.md "Memory").
inline constexpr std::chrono::seconds kSpareIdle{4};

// Options for sessions that tell when they became idle (Session::idle_since()): the spares a
// burst opened close `spare_idle` after their last stream; `per_session` as in Options.
template <class Session>
typename SessionPool<Session>::Options spare_reaping(std::chrono::steady_clock::duration spare_idle,
                                                     std::size_t per_session = 0) {
  static_assert(requires(const Session& s) { s.idle_since(); });
  typename SessionPool<Session>::Options o;
  o.idle_since = [](const Session& s) { return s.idle_since(); };
  o.spare_idle = spare_idle;
  o.per_session = per_session;
  return o;
}

}  // namespace gost::net
