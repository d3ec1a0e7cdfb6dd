#include "net/pht.hpp"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <cstring>
#include <deque>
#include <map>
#include <memory_resource>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "core/address.hpp"
#include "proto/pht.hpp"

namespace gost::net::pht {
namespace {

namespace codec = proto::pht;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Wakes one coroutine that waits on its own executor; notify() may be called from any thread.
// The wake-up is a cancel() of the waiter's timer posted to the waiter's executor, so the timer
// is only ever touched by its own thread; a notification that arrives while nobody waits is kept
// in `flag_` and consumed by the next wait.
class Waker : public std::enable_shared_from_this<Waker> {
 public:
  explicit Waker(asio::any_io_executor ex) : timer_(ex, TimePoint::max()) {}

  void notify() {
    {
      std::lock_guard lock(mu_);
      if (flag_) return;  // a wake-up is already on its way
      flag_ = true;
    }
    asio::post(timer_.get_executor(), [self = shared_from_this()] { self->timer_.cancel(); });
  }

  // On the waker's executor. Returns at a notification (consumed) or at `deadline`; may also
  // return spuriously, so callers re-check their condition.
  awaitable<void> wait(TimePoint deadline) {
    {
      std::lock_guard lock(mu_);
      if (flag_) {
        flag_ = false;
        co_return;
      }
    }
    if (Clock::now() >= deadline) co_return;
    timer_.expires_at(deadline);
    co_await timer_.async_wait(use_nothrow);
    std::lock_guard lock(mu_);
    flag_ = false;
  }

 private:
  std::mutex mu_;
  bool flag_ = false;
  asio::steady_timer timer_;
};

// Copies queued chunks into `buf` (from `offset` into the first); returns the bytes copied and
// counts the chunks used up in `finished`. Both sides queue received data this way.
std::size_t take_chunks(std::vector<std::string>& q, std::size_t& offset, asio::mutable_buffer buf,
                        std::uint64_t& finished) {
  std::size_t n = 0;
  auto* out = static_cast<char*>(buf.data());
  while (n < buf.size() && !q.empty()) {
    const std::string& front = q.front();
    std::size_t k = std::min(buf.size() - n, front.size() - offset);
    std::memcpy(out + n, front.data() + offset, k);
    n += k;
    offset += k;
    if (offset == front.size()) {
      q.erase(q.begin());
      offset = 0;
      ++finished;
    }
  }
  if (q.empty()) std::vector<std::string>().swap(q);  // nothing held while idle
  return n;
}

}  // namespace

// ================================ server ========================================================

// One tunnel on the server. Guarded by `mu`; whoever changes the state calls changed(), which
// wakes every coroutine registered in `waiters` (the application's reader/writer, the pull, the
// pushes waiting for their hand-off: a handful at most).
struct Session {
  Session(std::string t, std::string r, std::string l, std::size_t out_limit)
      : token(std::move(t)),
        remote(std::move(r)),
        local(std::move(l)),
        out_queue_bytes(out_limit) {}

  std::mutex mu;
  const std::string token;
  const std::string remote, local;
  const std::size_t out_queue_bytes;

  // client → application: decoded pushes not yet consumed by the application.
  std::vector<std::string> in_q;
  std::size_t in_off = 0;      // consumed bytes of in_q.front()
  std::uint64_t in_added = 0;  // pushes queued so far
  std::uint64_t in_taken = 0;  // pushes consumed so far (a push gets its 200 then)
  int pushes_waiting = 0;
  bool in_eof = false;  // the client's close notification (empty push)
  // application → client: bytes waiting for the pull.
  std::vector<std::string> out_q;
  std::size_t out_bytes = 0;
  bool out_eof = false;  // the application shut its write side (or closed)
  // lifecycle
  bool app_closed = false;     // the application closed its Stream: queued output still drains
  error_code aborted;          // set: nothing flows any more (client gone, bad push, reaper)
  std::uint64_t pull_gen = 0;  // the newest pull; an older one ends
  bool pulling = false;
  TimePoint last_active = Clock::now();
  std::vector<std::shared_ptr<Waker>> waiters;

  void changed() {
    for (auto& w : waiters) w->notify();
  }
  void abort(error_code reason) {
    if (aborted) return;
    aborted = reason;
    in_q.clear();
    in_off = 0;
    out_q.clear();
    out_bytes = 0;
    out_eof = true;
    changed();
  }
  // Gone for good: removed from the table, its token answered 403 from now on.
  bool finished() const { return aborted || (app_closed && out_q.empty() && !pulling); }
};

namespace {

// Waits on `w` until `ready()` (evaluated with s.mu held) or `deadline`; returns ready().
template <class Pred>
awaitable<bool> wait_until(Session& s, std::shared_ptr<Waker> w, Pred ready, TimePoint deadline) {
  bool registered = false;
  for (;;) {
    bool done = false, ok = false;
    {
      std::lock_guard lock(s.mu);
      ok = ready();
      if (ok || Clock::now() >= deadline) {
        done = true;
        if (registered) std::erase(s.waiters, w);
      } else if (!registered) {
        s.waiters.push_back(w);
        registered = true;
      }
    }
    if (done) co_return ok;
    co_await w->wait(deadline);
  }
}

}  // namespace

class Server : public std::enable_shared_from_this<Server> {
 public:
  Server(ServerOptions o, log::Logger l) : opts(std::move(o)), log(std::move(l)) {}

  const ServerOptions opts;
  const log::Logger log;

  enum class Found { existing, created, stale, busy, unknown };

  // The session of `token`; an unknown token creates one when `create` (the lazy creation of
  // current GOST), unless it belongs to a recently closed session (403) or the backlog is full.
  std::pair<Found, std::shared_ptr<Session>> lookup(const std::string& token, bool create,
                                                    ServerExchange& ex,
                                                    const asio::any_io_executor& here) {
    std::lock_guard lock(mu_);
    if (auto it = sessions_.find(token); it != sessions_.end())
      return {Found::existing, it->second};
    if (stale_.contains(fingerprint(token))) return {Found::stale, nullptr};
    if (!create) return {Found::unknown, nullptr};
    if (shut_ || backlog_.size() >= opts.backlog) return {Found::busy, nullptr};
    auto s = std::make_shared<Session>(token, ex.remote_address(), ex.local_address(),
                                       opts.out_queue_bytes);
    sessions_.emplace(token, s);
    backlog_.push_back(s);
    wake_acceptor(here);
    if (log::enabled(log::Level::debug))
      log.debug(fmt::format("pht: session {} opened by {}", token, s->remote));
    return {Found::created, s};
  }

  // lookup(), but a new session that finds the backlog full waits for room (at most
  // opts.busy_hold) rather than being refused at once; a refusal it still makes is reported.
  awaitable<std::pair<Found, std::shared_ptr<Session>>> lookup_held(
      const std::string& token, bool create, ServerExchange& ex,
      const asio::any_io_executor& here) {
    const auto deadline = Clock::now() + opts.busy_hold;
    for (;;) {
      auto r = lookup(token, create, ex, here);
      if (r.first != Found::busy) co_return r;
      auto w = std::make_shared<Waker>(here);
      {
        std::lock_guard lock(mu_);
        if (backlog_.size() < opts.backlog && !shut_) continue;  // room meanwhile: try again
        if (shut_ || Clock::now() >= deadline) {
          if (opts.refusals) opts.refusals->add("session backlog full");
          co_return r;
        }
        if (room_waiters_.size() > 2 * opts.backlog)
          std::erase_if(room_waiters_, [](const auto& x) { return x.expired(); });
        room_waiters_.push_back(w);
      }
      co_await w->wait(deadline);
    }
  }

  // The backlog shrank: one waiting new session may try again. mu_ held.
  void wake_room_waiter() {
    while (!room_waiters_.empty()) {
      auto w = room_waiters_.front().lock();
      room_waiters_.pop_front();
      if (w) {
        w->notify();
        return;
      }
    }
  }

  // Takes a finished session out of the table and remembers its token.
  void remove(const std::shared_ptr<Session>& s) {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(s->token);
    if (it == sessions_.end() || it->second != s) return;
    sessions_.erase(it);
    if (std::erase(backlog_, s) > 0) wake_room_waiter();
    remember_stale(s->token);
    if (log::enabled(log::Level::debug)) log.debug(fmt::format("pht: session {} closed", s->token));
  }

  void mark_stale(const std::string& token) {
    std::lock_guard lock(mu_);
    if (!sessions_.contains(token)) remember_stale(token);
  }

  void abort_and_remove(const std::shared_ptr<Session>& s, error_code reason) {
    {
      std::lock_guard lock(s->mu);
      s->abort(reason);
    }
    remove(s);
  }

  // ---- acceptors (one per worker listener) ----
  int add_acceptor() {
    std::lock_guard lock(mu_);
    int id = next_acceptor_++;
    acceptors_[id];
    ++open_acceptors_;
    return id;
  }

  awaitable<StreamPtr> accept(int id, error_code& ec) {
    auto ex = co_await asio::this_coro::executor;
    std::shared_ptr<Waker> w;
    {
      std::lock_guard lock(mu_);
      auto& a = acceptors_.at(id);
      if (!a.waker) {
        a.waker = std::make_shared<Waker>(ex);
        a.ex = ex;
      }
      w = a.waker;
    }
    for (;;) {
      std::shared_ptr<Session> s;
      bool closed = false;
      {
        std::lock_guard lock(mu_);
        auto& a = acceptors_.at(id);
        closed = a.closed;
        while (!closed && !s && !backlog_.empty()) {
          auto c = std::move(backlog_.front());
          backlog_.pop_front();
          wake_room_waiter();
          std::lock_guard slock(c->mu);
          if (!c->aborted && !c->app_closed) s = std::move(c);
        }
        a.waiting = !closed && !s;
        // More waiting: let another idle acceptor take it rather than wait for this one.
        if (s && !backlog_.empty()) wake_acceptor(ex, id);
      }
      if (closed) {
        ec = asio::error::operation_aborted;
        co_return nullptr;
      }
      if (s) co_return make_stream(std::move(s), ex);
      co_await w->wait(TimePoint::max());
    }
  }

  void close_acceptor(int id) {
    std::vector<std::shared_ptr<Session>> all;
    {
      std::lock_guard lock(mu_);
      auto it = acceptors_.find(id);
      if (it == acceptors_.end() || it->second.closed) return;
      it->second.closed = true;
      if (it->second.waker) it->second.waker->notify();
      if (--open_acceptors_ > 0) return;
      // The service is going away: end every tunnel.
      shut_ = true;
      for (auto& [token, s] : sessions_) all.push_back(s);
      backlog_.clear();
    }
    for (auto& s : all) abort_and_remove(s, asio::error::operation_aborted);
  }

  // ---- reaper ----
  void start_reaper(asio::any_io_executor ex) {
    {
      std::lock_guard lock(mu_);
      if (reaper_started_) return;
      reaper_started_ = true;
    }
    asio::co_spawn(ex, reap_loop(weak_from_this(), ex), asio::detached);
  }

  std::size_t count() const {
    std::lock_guard lock(mu_);
    return sessions_.size();
  }

  // ---- requests ----
  awaitable<void> serve(ServerExchange& ex);

 private:
  struct Acceptor {
    std::shared_ptr<Waker> waker;
    asio::any_io_executor ex;
    bool waiting = false;
    bool closed = false;
  };

  StreamPtr make_stream(std::shared_ptr<Session> s, asio::any_io_executor ex);

  // Wakes an acceptor waiting on `here` (the session's handler then runs on the thread that got
  // its first request), else every waiting one (first come, first served). mu_ held.
  void wake_acceptor(const asio::any_io_executor& here, int except = -1) {
    for (auto& [id, a] : acceptors_)
      if (id != except && a.waiting && a.waker && a.ex == here) {
        a.waiting = false;
        a.waker->notify();
        return;
      }
    for (auto& [id, a] : acceptors_)
      if (id != except && a.waiting && a.waker) a.waker->notify();
  }

  void remember_stale(const std::string& token) {  // mu_ held
    auto f = fingerprint(token);
    if (!stale_.insert(f).second) return;
    stale_order_.emplace_back(Clock::now(), f);
    while (stale_order_.size() > opts.stale_tokens) {
      stale_.erase(stale_order_.front().second);
      stale_order_.pop_front();
    }
  }

  static awaitable<void> reap_loop(std::weak_ptr<Server> weak, asio::any_io_executor ex) {
    asio::steady_timer timer(ex);
    for (;;) {
      timer.expires_after(std::chrono::seconds(5));
      auto [ec] = co_await timer.async_wait(use_nothrow);
      auto self = weak.lock();
      if (ec || !self || self->shut_) co_return;
      self->reap();
    }
  }

  void reap() {
    std::vector<std::shared_ptr<Session>> idle;
    auto now = Clock::now();
    {
      std::lock_guard lock(mu_);
      for (auto& [token, s] : sessions_) {
        std::lock_guard slock(s->mu);
        auto limit = s->app_closed ? opts.closing_linger : opts.session_idle;
        if (!s->pulling && s->pushes_waiting == 0 && now - s->last_active > limit)
          idle.push_back(s);
      }
      while (!stale_order_.empty() && now - stale_order_.front().first > opts.stale_ttl) {
        stale_.erase(stale_order_.front().second);
        stale_order_.pop_front();
      }
    }
    for (auto& s : idle) {
      if (log::enabled(log::Level::debug))
        log.debug(fmt::format("pht: session {} idle, closed", s->token));
      abort_and_remove(s, asio::error::timed_out);
    }
  }

  awaitable<void> push(ServerExchange& ex, const std::string& token);
  awaitable<void> pull(ServerExchange& ex, const std::string& token);
  awaitable<void> authorize(ServerExchange& ex);

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_;
  std::deque<std::shared_ptr<Session>> backlog_;  // created, not yet accepted
  std::deque<std::weak_ptr<Waker>> room_waiters_;  // new sessions waiting for backlog room
  // Tokens of recently closed sessions (a late pull gets 403), as 64-bit fingerprints in a pool
  // of their own: a burst's thousands of them, kept for stale_ttl, each a few small allocations
  // made among the burst's, kept a page or two of the freed heap each from going back (2,000
  // tunnels: 6,000 free holes of 3-30 KiB in 54 MiB of heap; issue 16 §2).
  static std::uint64_t fingerprint(std::string_view token) {
    return std::hash<std::string_view>{}(token);
  }
  std::pmr::unsynchronized_pool_resource stale_pool_;
  std::pmr::unordered_set<std::uint64_t> stale_{&stale_pool_};
  std::pmr::deque<std::pair<TimePoint, std::uint64_t>> stale_order_{&stale_pool_};
  std::map<int, Acceptor> acceptors_;
  int next_acceptor_ = 0;
  int open_acceptors_ = 0;
  bool reaper_started_ = false;
  bool shut_ = false;
};

namespace {

// The application's side of a session (what the service's handler reads and writes).
class ServerStream final : public Stream {
 public:
  ServerStream(std::shared_ptr<Session> s, std::weak_ptr<Server> server, asio::any_io_executor ex)
      : s_(std::move(s)),
        server_(std::move(server)),
        ex_(ex),
        reader_(std::make_shared<Waker>(ex)),
        writer_(std::make_shared<Waker>(ex)) {}
  ~ServerStream() override { close(); }

  asio::any_io_executor executor() override { return ex_; }

  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    ec = {};
    if (buf.size() == 0) co_return 0;
    Session& s = *s_;
    co_await wait_until(
        s, reader_, [&s] { return readable(s); }, TimePoint::max());
    std::size_t n = 0;
    {
      std::lock_guard lock(s.mu);
      if (s.app_closed) {
        ec = asio::error::operation_aborted;
      } else if (!s.in_q.empty()) {
        std::uint64_t taken = s.in_taken;
        n = take_chunks(s.in_q, s.in_off, buf, s.in_taken);
        if (s.in_taken != taken) s.changed();  // those pushes may now answer 200
      } else if (s.aborted) {
        ec = asio::error::connection_reset;
      } else {
        ec = asio::error::eof;
      }
    }
    co_return n;
  }

  awaitable<void> wait_readable(error_code& ec) override {
    ec = {};
    Session& s = *s_;
    co_await wait_until(
        s, reader_, [&s] { return readable(s); }, TimePoint::max());
    std::lock_guard lock(s.mu);
    if (s.app_closed) ec = asio::error::operation_aborted;
  }

  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    ec = {};
    if (buf.size() == 0) co_return 0;
    Session& s = *s_;
    co_await wait_until(
        s, writer_,
        [&s] { return s.out_bytes < s.out_queue_bytes || s.out_eof || s.aborted || s.app_closed; },
        TimePoint::max());
    std::lock_guard lock(s.mu);
    if (s.aborted) {
      ec = asio::error::connection_reset;
      co_return 0;
    }
    if (s.out_eof || s.app_closed) {
      ec = asio::error::broken_pipe;
      co_return 0;
    }
    std::size_t n = std::min(buf.size(), codec::kMaxChunk);
    s.out_q.emplace_back(static_cast<const char*>(buf.data()), n);
    s.out_bytes += n;
    s.changed();
    co_return n;
  }

  // The pull ends once the queued bytes are out: the client reads EOF; pushes still work.
  awaitable<void> shutdown_write(error_code& ec) override {
    ec = {};
    std::lock_guard lock(s_->mu);
    if (s_->aborted) {
      ec = asio::error::connection_reset;
      co_return;
    }
    if (!s_->out_eof) {
      s_->out_eof = true;
      s_->changed();
    }
  }

  void close() override {
    bool finished = false;
    {
      std::lock_guard lock(s_->mu);
      if (s_->app_closed) return;
      s_->app_closed = true;
      s_->in_q.clear();  // waiting pushes get 410
      s_->in_off = 0;
      s_->out_eof = true;
      s_->last_active = Clock::now();
      finished = s_->finished();
      s_->changed();
    }
    if (finished)
      if (auto srv = server_.lock()) srv->remove(s_);
  }

  std::string remote_address() const override { return s_->remote; }
  std::string local_address() const override { return s_->local; }

 private:
  static bool readable(const Session& s) {
    return !s.in_q.empty() || s.in_eof || s.aborted || s.app_closed;
  }

  std::shared_ptr<Session> s_;
  std::weak_ptr<Server> server_;
  asio::any_io_executor ex_;
  std::shared_ptr<Waker> reader_, writer_;
};

}  // namespace

StreamPtr Server::make_stream(std::shared_ptr<Session> s, asio::any_io_executor ex) {
  return std::make_unique<ServerStream>(std::move(s), weak_from_this(), ex);
}

awaitable<void> Server::serve(ServerExchange& ex) {
  error_code ec;
  auto target = codec::parse_target(ex.target());
  if (!target) {
    co_await ex.reply(400, ec);
    co_return;
  }
  const std::string& path = target->path;
  const bool is_push = path == opts.push_path;
  const bool is_pull = path == opts.pull_path;
  if (path == opts.authorize_path && !is_push && !is_pull) {
    co_await authorize(ex);
    co_return;
  }
  if (!is_push && !is_pull) {
    co_await ex.reply(404, ec);
    co_return;
  }
  // Step 1 (method), then step 2 (query), as the Go handlers check them.
  if (ex.method() != (is_push ? "POST" : "GET") || target->bad_query) {
    co_await ex.reply(400, ec);
    co_return;
  }
  std::string token = target->token.value_or(std::string());
  if (is_push)
    co_await push(ex, token);
  else
    co_await pull(ex, token);
}

awaitable<void> Server::authorize(ServerExchange& ex) {
  error_code ec;
  auto here = co_await asio::this_coro::executor;
  std::string token = random_token();
  auto [found, s] = co_await lookup_held(token, true, ex, here);
  if (!s) {
    co_await ex.reply(429, ec);
    co_return;
  }
  co_await ex.reply_authorize(token, ec);
}

// docs/PROTOCOLS.md "pht: push", the table of steps; see the comments for where we differ.
awaitable<void> Server::push(ServerExchange& ex, const std::string& token) {
  auto here = co_await asio::this_coro::executor;
  // Steps 4–7 depend on the body: read it up to its first '\n' (the rest is ignored), bounded.
  enum class Body { line, no_line, read_error, too_long } kind = Body::line;
  std::string body;
  error_code ec;
  std::size_t scanned = 0;
  for (;;) {
    co_await ex.read_body(body, 16 * 1024, ec);
    if (ec) {
      kind = ec == asio::error::eof ? Body::no_line : Body::read_error;
      break;
    }
    auto nl = body.find('\n', scanned);
    if (nl != std::string::npos) {
      kind = nl > codec::kMaxLine ? Body::too_long : Body::line;
      body.resize(nl);
      break;
    }
    scanned = body.size();
    if (body.size() > codec::kMaxLine) {
      kind = Body::too_long;
      break;
    }
  }
  std::optional<std::string> data;
  bool bad_base64 = false;
  if (kind == Body::line && !body.empty()) {
    data = codec::decode_line(body);
    bad_base64 = !data;
  }
  std::string().swap(body);

  // Step 3: only a push with bytes to deliver opens a session; for an unknown token anything else
  // is answered without one (GOST would open it only to close it at once).
  auto [found, s] = co_await lookup_held(token, data.has_value(), ex, here);
  int status = 200;
  if (found == Found::stale) {
    status = 403;
  } else if (found == Found::busy) {
    status = 429;
  } else if (kind == Body::read_error) {
    status = 206;  // step 4: the session is closed
  } else if (kind == Body::too_long) {
    status = 413;  // our bound (GOST has none): the session is closed
  } else if (bad_base64) {
    status = 400;  // step 7: the session is closed
  } else if (!data) {
    // Steps 5 and 6: the close notification. We treat it as the client's half-close: the
    // application reads EOF, the pull goes on until the application closes (a GOST client
    // aborts its pull right after, which ends the session; ours keeps reading what is left).
    if (s) {
      std::lock_guard lock(s->mu);
      s->last_active = Clock::now();
      if (!s->in_eof) {
        s->in_eof = true;
        s->changed();
      }
    } else {
      mark_stale(token);  // a pull racing in later must not open a session for it
    }
  }
  if (s && status != 200 && found != Found::stale)
    abort_and_remove(s, asio::error::connection_reset);
  if (status != 200 || !data) {
    co_await ex.reply(status, ec);
    co_return;
  }

  // Step 8: hand the bytes to the application; the 200 waits until it has taken them (this is
  // PHT's flow control), at most handoff_timeout (then 410 and the session is closed).
  std::uint64_t seq = 0;
  {
    std::lock_guard lock(s->mu);
    s->last_active = Clock::now();
    if (s->aborted || s->app_closed || s->in_eof)
      status = 410;
    else if (s->pushes_waiting >= opts.max_waiting_pushes)
      status = 429;  // more concurrent pushes than any client sends: refused, session kept
    else {
      s->in_q.push_back(std::move(*data));
      seq = ++s->in_added;
      ++s->pushes_waiting;
      s->changed();
    }
  }
  if (seq != 0) {
    auto w = std::make_shared<Waker>(here);
    Session& ss = *s;
    auto deadline = Clock::now() + opts.handoff_timeout;
    bool taken = co_await wait_until(
        ss, w, [&ss, seq] { return ss.in_taken >= seq || ss.aborted || ss.app_closed; }, deadline);
    bool timed_out = false;
    {
      std::lock_guard lock(ss.mu);
      --ss.pushes_waiting;
      ss.last_active = Clock::now();
      taken = ss.in_taken >= seq;
      // Closed meanwhile: 410, but what the application wrote before closing still drains.
      timed_out = !taken && !ss.aborted && !ss.app_closed;
    }
    if (!taken) status = 410;
    if (timed_out) abort_and_remove(s, asio::error::timed_out);
  }
  co_await ex.reply(status, ec);
}

// docs/PROTOCOLS.md "pht: pull": one streamed response; every batch of queued application bytes
// goes out as lines (one chunk each), a heartbeat line after `heartbeat` without data; the response
// ends when the application shut its write side or closed (terminating chunk), or when a newer pull
// of the session arrived. A failed write means the client is gone: the session is closed.
awaitable<void> Server::pull(ServerExchange& ex, const std::string& token) {
  auto here = co_await asio::this_coro::executor;
  error_code ec;
  auto [found, s] = co_await lookup_held(token, true, ex, here);
  if (!s) {
    int status = found == Found::busy ? 429 : 403;
    co_await ex.reply(status, ec);
    co_return;
  }
  Session& ss = *s;
  std::uint64_t gen = 0;
  {
    std::lock_guard lock(ss.mu);
    gen = ++ss.pull_gen;
    ss.pulling = true;
    ss.last_active = Clock::now();
    ss.changed();  // an older pull of this session ends
  }
  co_await ex.start_pull(ec);
  if (!ec) {
    std::weak_ptr<Session> weak_session = s;
    std::weak_ptr<Server> weak_server = weak_from_this();
    ex.watch_client([weak_session, weak_server, gen] {
      auto sp = weak_session.lock();
      auto srv = weak_server.lock();
      if (!sp || !srv) return;
      bool current = false;
      {
        std::lock_guard lock(sp->mu);
        current = sp->pull_gen == gen;
      }
      if (current) srv->abort_and_remove(sp, asio::error::connection_reset);
    });
    auto w = std::make_shared<Waker>(here);
    auto last_write = Clock::now();
    std::vector<std::string> batch;
    for (;;) {
      auto deadline = last_write + opts.heartbeat;
      co_await wait_until(
          ss, w,
          [&ss, gen] {
            return !ss.out_q.empty() || ss.out_eof || ss.aborted || ss.pull_gen != gen;
          },
          deadline);
      bool end = false;
      {
        std::lock_guard lock(ss.mu);
        if (ss.pull_gen != gen || ss.aborted) {
          end = true;
        } else if (!ss.out_q.empty()) {
          batch.swap(ss.out_q);
          ss.out_bytes = 0;
          ss.last_active = Clock::now();
          ss.changed();  // the application may write again
        } else if (ss.out_eof) {
          end = true;
        }
      }
      if (end) break;
      if (batch.empty()) batch.emplace_back();  // nothing for `heartbeat`: an empty line
      co_await ex.send_lines(batch, ec);
      batch.clear();
      if (ec) break;
      last_write = Clock::now();
    }
    if (!ec) co_await ex.end_pull(ec);
  }
  bool finished = false;
  {
    std::lock_guard lock(ss.mu);
    if (ss.pull_gen == gen) {
      ss.pulling = false;
      ss.last_active = Clock::now();
      if (ec) ss.abort(asio::error::connection_reset);  // the client is gone
    }
    finished = ss.finished();
  }
  if (finished) remove(s);
}

// ---- options --------------------------------------------------------------------------------

namespace {
std::string path_option(const config::Metadata& md, std::string_view key, std::string_view def) {
  auto v = md.get_string(key);
  if (!v) v = md.get_string(fmt::format("pht.{}", key));
  return codec::normalize_path(v.value_or(std::string()), def);
}
}  // namespace

ServerOptions server_options(const config::Metadata& md, std::string_view where) {
  ServerOptions so;
  so.authorize_path = path_option(md, "authorizePath", codec::kDefaultAuthorizePath);
  so.push_path = path_option(md, "pushPath", codec::kDefaultPushPath);
  so.pull_path = path_option(md, "pullPath", codec::kDefaultPullPath);
  if (so.push_path == so.pull_path || so.push_path == so.authorize_path ||
      so.pull_path == so.authorize_path)
    throw config::ConfigError(
        fmt::format("{}: authorizePath, pushPath and pullPath must differ", where));
  if (auto b = md.get_int("backlog").value_or(0); b > 0) so.backlog = static_cast<std::size_t>(b);
  return so;
}

ClientOptions client_options(const config::Metadata& md) {
  ClientOptions o;
  o.authorize_path = path_option(md, "authorizePath", codec::kDefaultAuthorizePath);
  o.push_path = path_option(md, "pushPath", codec::kDefaultPushPath);
  o.pull_path = path_option(md, "pullPath", codec::kDefaultPullPath);
  return o;
}

// ---- PhtServer (the public face) ----------------------------------------------------------------

PhtServer::PhtServer(ServerOptions opts, log::Logger log)
    : impl_(std::make_shared<Server>(std::move(opts), std::move(log))) {}
PhtServer::~PhtServer() = default;
awaitable<void> PhtServer::serve(ServerExchange& ex) { return impl_->serve(ex); }
int PhtServer::add_acceptor() { return impl_->add_acceptor(); }
awaitable<StreamPtr> PhtServer::accept(int acceptor, error_code& ec) {
  return impl_->accept(acceptor, ec);
}
void PhtServer::close_acceptor(int acceptor) { impl_->close_acceptor(acceptor); }
void PhtServer::start_reaper(asio::any_io_executor ex) { impl_->start_reaper(std::move(ex)); }
const ServerOptions& PhtServer::options() const { return impl_->opts; }
std::size_t PhtServer::session_count() const { return impl_->count(); }

std::string random_token() {
  unsigned char bytes[13];
  if (RAND_bytes(bytes, sizeof bytes) != 1)
    throw system_error(asio::error::no_memory, "pht: no random bytes for a token");
  // 20 characters of 5 bits each from the 100 random bits, in xid's alphabet.
  static constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuv";
  std::string out(20, '0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::size_t bit = i * 5;
    unsigned v = (static_cast<unsigned>(bytes[bit / 8]) << 8) | bytes[bit / 8 + 1];
    out[i] = kAlphabet[(v >> (11 - bit % 8)) & 31];
  }
  return out;
}

// ================================ client ========================================================

namespace {

// What the pull loop and the Stream share; single-threaded (the dialing coroutine's executor).
// Timers with an infinite expiry serve as condition variables (cancel() = notify).
struct ClientSession : std::enable_shared_from_this<ClientSession> {
  ClientSession(asio::any_io_executor e, std::shared_ptr<ClientCarrier> c, const ClientOptions& o,
                std::string t, log::Logger l)
      : ex(e),
        carrier(std::move(c)),
        opts(o),
        token(std::move(t)),
        push_target(codec::request_target(o.push_path, token)),
        pull_target(codec::request_target(o.pull_path, token)),
        log(std::move(l)),
        readable(e, TimePoint::max()),
        space(e, TimePoint::max()) {}

  asio::any_io_executor ex;
  std::shared_ptr<ClientCarrier> carrier;
  ClientOptions opts;
  std::string token, push_target, pull_target;
  log::Logger log;
  asio::steady_timer readable;  // condition: data, end or close (the reader waits)
  asio::steady_timer space;     // condition: the reader consumed (the pull loop waits)

  std::vector<std::string> rq;  // decoded pull lines for the application
  std::size_t roff = 0, rbytes = 0;
  bool r_eof = false;
  error_code r_err;
  std::shared_ptr<ClientRequest> pull_req, push_req;
  bool closed = false;
  bool shut = false;  // the close notification was sent (or is on its way)
  std::uint64_t pushed = 0;  // push body bytes sent so far (their place in the PushQueue)
  bool holds_slot = false;   // a push slot taken ahead of the next push (reserve_push())

  static constexpr RequestLimits kPushLimits{std::chrono::seconds(60), std::chrono::seconds(30)};
  static constexpr RequestLimits kPullLimits{std::chrono::seconds(30), std::chrono::seconds(45)};
  static constexpr RequestLimits kClosingLimits{std::chrono::seconds(5), std::chrono::seconds(5)};

  void end_reading(error_code err) {
    if (r_eof || r_err) return;
    if (err)
      r_err = err;
    else
      r_eof = true;
    readable.cancel();
  }

  // The pull loop of docs/PROTOCOLS.md "pht: client".
  awaitable<void> pull_loop() {
    auto self = shared_from_this();
    error_code err;
    while (!closed) {
      auto req = carrier->request("GET", pull_target, std::nullopt, kPullLimits);
      pull_req = req;
      error_code ec;
      co_await req->send(ec);
      if (closed) break;
      if (ec) {
        err = ec;
        break;
      }
      if (req->status() == 403) break;  // a session the server no longer knows: the end
      if (req->status() != 200) {
        log.debug(fmt::format("pht: pull {}: status {}", token, req->status()));
        err = asio::error::connection_refused;
        break;
      }
      std::size_t lines = 0;
      codec::LineReader reader;
      std::string body;
      for (;;) {
        std::string().swap(body);  // nothing held while the pull waits
        co_await req->read_body(body, 64 * 1024, ec);
        if (closed || ec) break;
        reader.feed(body);
        while (auto line = reader.next()) {
          ++lines;
          if (line->empty()) continue;  // heartbeat
          std::string data;
          if (auto d = codec::decode_line(*line))
            data = std::move(*d);
          else {
            ec = asio::error::invalid_argument;
            break;
          }
          if (data.empty()) continue;
          rbytes += data.size();
          rq.push_back(std::move(data));
          readable.cancel();
          // Bounded: stop reading the response (TCP back-pressure) until the reader catches up.
          while (rbytes >= opts.in_queue_bytes && !closed) {
            space.expires_at(TimePoint::max());
            co_await space.async_wait(use_nothrow);
          }
          if (closed) break;
        }
        if (reader.too_long()) ec = asio::error::message_size;
        if (ec || closed) break;
      }
      if (closed) break;
      if (ec == asio::error::eof && reader.empty()) {
        // A clean end: re-pull if anything came (old servers end every idle pull after a
        // heartbeat), else the server has nothing more for us.
        if (lines == 0) break;
        continue;
      }
      err = ec == asio::error::eof ? error_code(asio::error::connection_reset) : ec;
      break;
    }
    pull_req.reset();
    if (err && !closed) log.debug(fmt::format("pht: pull {}: {}", token, err.message()));
    end_reading(err);
  }

  // One POST of `raw` as a push body (empty: the close notification); ok = 200. The body of the
  // answer (empty from GOST) is read so that the connection can carry the next request. `raw` is
  // encoded only once the push has its slot: a burst's waiting pushes hold no base64 copy (issue
  // 16 §5).
  awaitable<void> post(std::string_view raw, RequestLimits limits, error_code& ec) {
    auto ex = co_await asio::this_coro::executor;
    PushQueue& q = carrier->pushes();
    if (holds_slot)
      holds_slot = false;  // taken by reserve_push(): this push uses it
    else
      co_await q.acquire(pushed);
    struct Slot {
      PushQueue& q;
      asio::any_io_executor ex;
      ~Slot() { q.release(ex); }
    } slot{q, ex};
    std::string body = codec::push_body(raw);
    pushed += body.size();
    auto req = carrier->request("POST", push_target, std::move(body), limits);
    push_req = req;
    co_await req->send(ec);
    int status = req->status();
    if (!ec) {
      std::string sink;
      while (!ec && sink.size() < 4096) co_await req->read_body(sink, 4096, ec);
      if (ec == asio::error::eof) ec = {};
    }
    if (push_req == req) push_req.reset();
    if (!ec && status != 200) {
      log.debug(fmt::format("pht: push {}: status {}", token, status));
      ec = asio::error::broken_pipe;
    }
  }

  // The slot of the next push, taken now (in the queue's order): a relay waits for it before it
  // reads what it will push, so that a tunnel waiting for its turn holds no buffer.
  awaitable<void> reserve_push() {
    if (holds_slot || closed) co_return;
    co_await carrier->pushes().acquire(pushed);
    holds_slot = true;
    if (closed) drop_slot();  // closed meanwhile: no push will use it
  }
  void drop_slot() {
    if (!holds_slot) return;
    holds_slot = false;
    carrier->pushes().release(ex);
  }

  void close() {
    if (closed) return;
    closed = true;
    drop_slot();
    if (pull_req) pull_req->abort();
    if (push_req) push_req->abort();
    readable.cancel();
    space.cancel();
    if (!shut) {
      shut = true;
      // The close notification, without holding up close(): it has its own bounded lifetime.
      auto c = carrier;
      auto target = push_target;
      asio::co_spawn(
          ex,
          [c, target]() -> awaitable<void> {
            auto req = c->request("POST", target, std::string(), kClosingLimits);
            error_code ec;
            co_await req->send(ec);
            std::string sink;
            while (!ec && sink.size() < 4096) co_await req->read_body(sink, 4096, ec);
          },
          asio::detached);
    }
  }
};

class ClientStream final : public Stream {
 public:
  explicit ClientStream(std::shared_ptr<ClientSession> s) : s_(std::move(s)) {}
  ~ClientStream() override { s_->close(); }

  asio::any_io_executor executor() override { return s_->ex; }

  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    co_await wait_readable(ec);
    if (ec) co_return 0;
    ClientSession& s = *s_;
    if (s.rbytes == 0) {
      ec = s.r_err ? s.r_err : error_code(asio::error::eof);
      co_return 0;
    }
    std::uint64_t lines = 0;
    std::size_t n = take_chunks(s.rq, s.roff, buf, lines);
    s.rbytes -= n;
    s.space.cancel();
    co_return n;
  }

  awaitable<void> wait_readable(error_code& ec) override {
    ec = {};
    ClientSession& s = *s_;
    while (s.rbytes == 0 && !s.r_eof && !s.r_err && !s.closed) {
      s.readable.expires_at(TimePoint::max());
      co_await s.readable.async_wait(use_nothrow);
    }
    if (s.closed) ec = asio::error::operation_aborted;
  }

  // One push per call (≤ 32 KiB), answered after the server handed the bytes on.
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    ec = {};
    ClientSession& s = *s_;
    if (s.closed) {
      ec = asio::error::operation_aborted;
      co_return 0;
    }
    if (s.shut) {
      ec = asio::error::broken_pipe;
      co_return 0;
    }
    if (buf.size() == 0) co_return 0;
    std::size_t n = std::min(buf.size(), codec::kMaxChunk);
    std::string_view raw(static_cast<const char*>(buf.data()), n);
    co_await s.post(raw, ClientSession::kPushLimits, ec);
    if (!ec && s.closed) ec = asio::error::operation_aborted;
    co_return ec ? 0 : n;
  }

  bool writable_now() override {
    ClientSession& s = *s_;
    return s.closed || s.shut || s.holds_slot || s.carrier->pushes().available(s.ex);
  }
  awaitable<void> wait_writable(error_code& ec) override {
    co_await s_->reserve_push();
    ec = s_->closed ? error_code(asio::error::operation_aborted) : error_code();
  }

  // The close notification (empty push): the server's application reads EOF; our pull goes on.
  awaitable<void> shutdown_write(error_code& ec) override {
    ec = {};
    ClientSession& s = *s_;
    if (s.shut || s.closed) co_return;
    s.shut = true;
    co_await s.post({}, ClientSession::kPushLimits, ec);
  }

  void close() override { s_->close(); }

 private:
  std::shared_ptr<ClientSession> s_;
};

}  // namespace

// ---- PushQueue ----------------------------------------------------------------------------------

struct PushQueue::Waiter {
  explicit Waiter(asio::any_io_executor ex) : wake(ex, TimePoint::max()) {}
  asio::steady_timer wake;
  bool granted = false;
};

PushQueue::Slots& PushQueue::slots(const asio::any_io_executor& ex) {
  const void* worker = &asio::query(ex, asio::execution::context);
  std::lock_guard lock(mu_);
  return slots_[worker];  // std::map: the reference stays valid
}

awaitable<void> PushQueue::acquire(std::uint64_t order) {
  auto ex = co_await asio::this_coro::executor;
  Slots& sl = slots(ex);
  if (has_room(sl)) {
    ++sl.active;
    co_return;
  }
  auto w = std::make_shared<Waiter>(ex);
  sl.waiting.push_back({order, sl.seq++, w});
  std::push_heap(sl.waiting.begin(), sl.waiting.end(), std::greater<>());
  while (!w->granted) co_await w->wake.async_wait(use_nothrow);
}

bool PushQueue::available(const asio::any_io_executor& ex) { return has_room(slots(ex)); }

void PushQueue::release(const asio::any_io_executor& ex) {
  Slots& sl = slots(ex);
  while (!sl.waiting.empty()) {
    std::pop_heap(sl.waiting.begin(), sl.waiting.end(), std::greater<>());
    auto w = sl.waiting.back().waiter.lock();
    sl.waiting.pop_back();
    if (!w) continue;  // its tunnel is gone
    w->granted = true;  // the slot passes on: `active` stays
    w->wake.cancel();
    return;
  }
  --sl.active;
}

namespace {
constexpr int kAuthorizeRetries = 5;  // 50 ms .. 0.8 s apart: 1.55 s in all
}  // namespace

awaitable<StreamPtr> open_client(std::shared_ptr<ClientCarrier> carrier, const ClientOptions& o,
                                 const log::Logger& log) {
  auto ex = co_await asio::this_coro::executor;
  std::string token;
  // A 429 opened nothing on the server (its session backlog was full): safe to ask again, a few
  // times with a growing pause (issue 16: a burst of tunnels must not lose any).
  auto pause = std::chrono::milliseconds(50);
  for (int attempt = 0;; ++attempt) {
    RequestLimits limits;
    auto req = carrier->request("GET", o.authorize_path, std::nullopt, limits);
    error_code ec;
    co_await req->send(ec);
    if (ec) throw system_error(ec, "pht: authorize");
    int status = req->status();
    std::string body;
    while (!ec && body.size() <= 4096) co_await req->read_body(body, 4096, ec);
    if (status == 429) {
      if (attempt >= kAuthorizeRetries)
        throw system_error(asio::error::connection_refused, "pht: authorize: 429");
      log.debug(fmt::format("pht: authorize: 429, retrying in {}ms", pause.count()));
      asio::steady_timer t(ex, pause);
      co_await t.async_wait(use_nothrow);
      pause *= 2;
      continue;
    }
    if (status == 200 && ec == asio::error::eof)
      if (auto t = codec::parse_authorize_body(body)) token = std::move(*t);
    if (token.empty()) {
      // A server without authorize (current GOST clients skip it): our own token, and the
      // session opens with the first push or pull.
      token = random_token();
      log.debug(fmt::format("pht: authorize answered {}, using a local token", status));
    }
    break;
  }
  auto s = std::make_shared<ClientSession>(ex, std::move(carrier), o, token, log);
  asio::co_spawn(ex, s->pull_loop(), asio::detached);
  co_return std::make_unique<ClientStream>(std::move(s));
}

bool is_client_stream(const Stream& s) { return dynamic_cast<const ClientStream*>(&s) != nullptr; }

std::shared_ptr<PhtServer> PhtServer::shared(const void* service, bool first, ServerOptions opts,
                                             const log::Logger& log) {
  static std::mutex mu;
  static std::map<const void*, std::weak_ptr<PhtServer>> servers;
  std::lock_guard lock(mu);
  if (service && !first)
    if (auto it = servers.find(service); it != servers.end())
      if (auto s = it->second.lock()) return s;
  auto s = std::make_shared<PhtServer>(std::move(opts), log);
  if (service) servers[service] = s;
  return s;
}

std::string client_authority(const config::Metadata& md, const std::string& node_addr) {
  auto hp = split_host_port(node_addr).value_or(HostPort{});
  std::string host = md.get_string("host").value_or(std::string());
  if (host.empty()) host = hp.host.empty() ? std::string("localhost") : hp.host;
  auto hhp = split_host_port(host);
  return hhp && !hhp->port.empty() ? host : join_host_port(host, hp.port);
}

}  // namespace gost::net::pht
