// Per-worker pools of multiplexed client sessions (the mws, h2, http2 and grpc dialers). A session
// and all its streams live on one worker (DESIGN.md §3), so every worker has a pool of its own;
// only the map from worker to pool is shared, under a mutex. Tunnels that start while a session
// is being set up wait for it instead of each opening a connection of their own.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/asio.hpp"

namespace gost::net {

template <class Session>
class SessionPool {
 public:
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
    co_return session;
  }

 private:
  struct Local {
    explicit Local(asio::any_io_executor ex) : ready(ex, asio::steady_timer::time_point::max()) {}
    std::vector<std::shared_ptr<Session>> sessions;
    bool connecting = false;
    asio::steady_timer ready;  // condition: a session set-up finished
  };

  Local& local(const asio::any_io_executor& ex) {
    const void* worker = &asio::query(ex, asio::execution::context);
    std::lock_guard lock(mu_);
    auto it = pools_.find(worker);
    if (it == pools_.end()) it = pools_.emplace(worker, std::make_unique<Local>(ex)).first;
    return *it->second;
  }

  std::mutex mu_;  // the map only
  std::map<const void*, std::unique_ptr<Local>> pools_;
};

}  // namespace gost::net
