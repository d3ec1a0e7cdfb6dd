#include "net/pht_http1.hpp"

#include <fmt/format.h>

#include <ctime>
#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <mutex>

#include "chain/chain.hpp"
#include "core/timeout.hpp"
#include "net/http_io.hpp"
#include "proto/pht.hpp"

namespace gost::net::pht {
namespace {

namespace http = proto::http;
namespace codec = proto::pht;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

constexpr auto kHeadTimeout = std::chrono::seconds(30);
constexpr auto kKeepAliveIdle = std::chrono::seconds(120);
constexpr auto kIoTimeout = std::chrono::seconds(30);
constexpr std::size_t kReadChunk = 64 * 1024;
// Body bytes after the part a request needed that are read (and dropped) to keep the
// connection; more than this and the connection is closed instead.
constexpr std::size_t kMaxDrain = 64 * 1024;

awaitable<void> write_bounded(Stream& s, std::string_view data, error_code& ec) {
  Deadline deadline(s.executor(), kIoTimeout, [&s] { s.close(); });
  co_await write_all(s, asio::buffer(data.data(), data.size()), ec);
}

// Appends up to `want` bytes read from `s` to `buf`.
awaitable<void> read_more(Stream& s, std::string& buf, std::size_t want, error_code& ec) {
  std::size_t old = buf.size();
  buf.resize(old + want);
  std::size_t n = co_await s.read_some(asio::buffer(buf.data() + old, want), ec);
  buf.resize(old + n);
}

// ================================ server ========================================================

// The watcher of a pull's connection (watch_client). It outlives the exchange: when the pull
// has ended cleanly and the watcher consumed nothing, the connection carries the next request —
// the serve loop then waits for the watcher to step aside instead of waiting on the socket
// itself (one waiter per connection, also for TLS streams).
struct PullWatch {
  explicit PullWatch(asio::any_io_executor ex) : finished(ex, Clock::time_point::max()) {}
  asio::steady_timer finished;  // condition: the watcher returned
  bool running = true;
  bool pull_over = false;  // the last chunk went out: what the client sends next is a request
  bool consumed = false;   // it read bytes (EOF, or data a client should not send): no reuse
};

class Http1Exchange final : public ServerExchange {
 public:
  Http1Exchange(std::shared_ptr<Stream> conn, const http::Request& req, http::Framing framing,
                std::string& buf)
      : conn_(std::move(conn)),
        req_(req),
        framing_(framing),
        remaining_(framing.length),
        buf_(buf),
        done_(std::make_shared<bool>(false)) {
    expect_continue_ = framing_.kind != http::Framing::none &&
                       req_.headers.has_token("Expect", "100-continue") && req_.version_minor == 1;
    close_ = req_.version_minor == 0 || req_.headers.has_token("Connection", "close");
  }
  ~Http1Exchange() override { *done_ = true; }

  std::string_view method() const override { return req_.method; }
  std::string_view target() const override { return req_.target; }
  std::string remote_address() const override { return conn_->remote_address(); }
  std::string local_address() const override { return conn_->local_address(); }

  awaitable<void> read_body(std::string& out, std::size_t max, error_code& ec) override {
    ec = {};
    if (expect_continue_) {
      expect_continue_ = false;
      co_await write_bounded(*conn_, codec::kContinue, ec);
      if (ec) {
        broken_ = true;
        co_return;
      }
    }
    Deadline deadline(conn_->executor(), kIoTimeout, [c = conn_.get()] { c->close(); });
    for (;;) {
      if (body_done()) {
        ec = asio::error::eof;
        co_return;
      }
      if (!buf_.empty()) {
        std::size_t before = out.size();
        take_body(out, max);
        if (chunks_.bad()) {
          ec = asio::error::invalid_argument;
          broken_ = true;
          co_return;
        }
        if (out.size() > before) co_return;
        if (body_done()) continue;
      }
      co_await read_more(*conn_, buf_, kReadChunk, ec);
      if (ec) {
        broken_ = true;
        co_return;
      }
    }
  }

  awaitable<void> reply(int status, error_code& ec) override {
    std::string wire =
        status == 404 ? codec::not_found_response(codec::current_http_date(), req_.version_minor, close_)
                      : codec::empty_response(status, codec::current_http_date(), req_.version_minor, close_);
    co_await write_bounded(*conn_, wire, ec);
    if (ec) broken_ = true;
  }

  awaitable<void> reply_authorize(std::string_view token, error_code& ec) override {
    std::string wire = codec::authorize_response(token, codec::current_http_date(), req_.version_minor, close_);
    co_await write_bounded(*conn_, wire, ec);
    if (ec) broken_ = true;
  }

  awaitable<void> start_pull(error_code& ec) override {
    pulled_ = true;  // the connection ends with the pull (see watch_client)
    std::string head = codec::pull_head(codec::current_http_date(), req_.version_minor);
    co_await write_bounded(*conn_, head, ec);
  }

  // No write timeout: a client that reads its pull slowly holds up only its own session, whose
  // queue is bounded (GOST has none either).
  awaitable<void> send_lines(const std::vector<std::string>& raw, error_code& ec) override {
    std::string wire;
    std::size_t size = 0;
    for (const auto& r : raw) size += r.size() / 3 * 4 + 24;
    wire.reserve(size);
    for (const auto& r : raw) {
      if (req_.version_minor == 0)
        codec::append_pull_line(wire, r);  // close-delimited
      else
        codec::append_pull_chunk(wire, r);
    }
    co_await write_all(*conn_, asio::buffer(wire), ec);
  }

  awaitable<void> end_pull(error_code& ec) override {
    if (req_.version_minor == 0) co_return;  // the end is the connection's close
    co_await write_bounded(*conn_, codec::kLastChunk, ec);
    if (!ec) pull_complete_ = true;
    if (!ec && watch_) watch_->pull_over = true;
  }

  // After a cleanly ended pull: the watcher to wait for before the next request (null = none).
  std::shared_ptr<PullWatch> pull_watch() const { return watch_; }

  // Nothing else is expected on a pull's connection: readable means closed (or a client that
  // does not follow HTTP), which ends the session now rather than at the next heartbeat.
  void watch_client(std::function<void()> gone) override {
    watch_ = std::make_shared<PullWatch>(conn_->executor());
    asio::co_spawn(
        conn_->executor(),
        [conn = conn_, done = done_, watch = watch_, gone = std::move(gone)]() -> awaitable<void> {
          std::size_t ignored = 0;
          for (;;) {
            error_code ec;
            co_await conn->wait_readable(ec);
            if (*done || watch->pull_over) break;
            char sink[512];
            std::size_t n = 0;
            if (!ec) n = co_await conn->read_some(asio::buffer(sink), ec);
            watch->consumed = true;
            if (*done) break;
            ignored += n;
            if (ec || ignored > kMaxDrain) {
              gone();
              break;
            }
          }
          watch->running = false;
          watch->finished.cancel();
        },
        asio::detached);
  }

  // After the request was served: reads what is left of its body (bounded) so that the next
  // request can follow. False when the connection must close.
  awaitable<bool> finish() {
    if (broken_ || close_) co_return false;
    // A pull's connection is kept only when the pull ended cleanly, it had no body and its
    // watcher read nothing (Go's server keeps it too, and GOST clients pool it).
    if (pulled_)
      co_return pull_complete_&& watch_ && !watch_->consumed &&
          framing_.kind == http::Framing::none;
    Deadline deadline(conn_->executor(), kIoTimeout, [c = conn_.get()] { c->close(); });
    std::size_t drained = 0;
    while (!body_done()) {
      if (buf_.empty()) {
        error_code ec;
        co_await read_more(*conn_, buf_, kReadChunk, ec);
        if (ec) co_return false;
      }
      std::string sink;
      std::size_t before = buf_.size();
      take_body(sink, buf_.size());
      drained += before - buf_.size();
      if (chunks_.bad() || drained > kMaxDrain) co_return false;
    }
    co_return true;
  }

 private:
  bool body_done() const {
    switch (framing_.kind) {
      case http::Framing::sized:
        return remaining_ == 0;
      case http::Framing::chunked:
        return chunks_.done();
      default:
        return true;  // requests have no close-delimited bodies
    }
  }

  // Moves up to `max` body bytes from buf_ to `out`; framing bytes are consumed as well.
  void take_body(std::string& out, std::size_t max) {
    if (framing_.kind == http::Framing::sized) {
      auto n = static_cast<std::size_t>(
          std::min<std::uint64_t>({remaining_, max, static_cast<std::uint64_t>(buf_.size())}));
      out.append(buf_, 0, n);
      buf_.erase(0, n);
      remaining_ -= n;
    } else if (framing_.kind == http::Framing::chunked) {
      std::size_t used = chunks_.feed(std::string_view(buf_).substr(0, max), &out);
      buf_.erase(0, used);
    }
  }

  std::shared_ptr<Stream> conn_;
  const http::Request& req_;
  http::Framing framing_;
  std::uint64_t remaining_ = 0;
  http::ChunkedScanner chunks_;
  std::string& buf_;  // the connection's read buffer: body bytes, then the next request
  std::shared_ptr<bool> done_;
  bool expect_continue_ = false;
  bool close_ = false;
  bool pulled_ = false;
  bool pull_complete_ = false;
  bool broken_ = false;
  std::shared_ptr<PullWatch> watch_;
};

}  // namespace

awaitable<void> serve_http1(StreamPtr s, std::shared_ptr<PhtServer> server, log::Logger log) {
  std::shared_ptr<Stream> conn(std::move(s));
  std::string buf;
  std::shared_ptr<PullWatch> watch;  // of the previous request, a pull
  for (;;) {
    error_code ec;
    if (buf.empty()) {
      // Between requests: no buffer, a bounded wait.
      std::string().swap(buf);
      Deadline idle(conn->executor(), kKeepAliveIdle, [c = conn.get()] { c->close(); });
      if (watch) {
        while (watch->running) co_await watch->finished.async_wait(use_nothrow);
        if (watch->consumed) break;
        watch.reset();
      } else {
        co_await conn->wait_readable(ec);
        if (ec) break;
      }
    }
    http::Request req;
    std::size_t head_len = 0;
    http::ParseStatus st;
    {
      Deadline deadline(conn->executor(), kHeadTimeout, [c = conn.get()] { c->close(); });
      st = co_await net::read_request(*conn, buf, req, head_len, ec);
    }
    if (st == http::ParseStatus::too_large) {
      co_await write_bounded(*conn, codec::head_too_large_close(), ec);
      break;
    }
    if (st != http::ParseStatus::complete) {
      if (!ec) co_await write_bounded(*conn, codec::bad_request_close(), ec);
      break;
    }
    buf.erase(0, head_len);
    auto framing = http::request_framing(req);
    if (!framing) {
      co_await write_bounded(*conn, codec::bad_request_close(), ec);
      break;
    }
    if (log::enabled(log::Level::trace))
      log.trace(fmt::format("pht: {} {} from {}", req.method, req.target, conn->remote_address()));
    Http1Exchange ex(conn, req, *framing, buf);
    co_await server->serve(ex);
    bool keep = co_await ex.finish();
    if (!keep) break;
    watch = ex.pull_watch();
  }
  conn->close();
}

// ================================ client ========================================================

namespace {

// A client connection; it belongs to the executor that dialed it.
struct Http1Conn {
  explicit Http1Conn(StreamPtr s)
      : stream(std::move(s)), watch_done(stream->executor(), TimePoint::max()) {}
  StreamPtr stream;
  bool in_pool = false;
  bool watching = false;  // the idle watcher's wait is still pending
  TimePoint idle_since;
  asio::steady_timer watch_done;  // condition: the watcher's wait completed
};
using ConnPtr = std::shared_ptr<Http1Conn>;

class Http1Client;

// Idle connections per executor (connections never change threads). The vectors are touched
// under the mutex; a connection's own fields only by its executor.
class Pool : public std::enable_shared_from_this<Pool> {
 public:
  Pool(std::size_t max_idle, std::chrono::nanoseconds idle_timeout)
      : max_idle_(max_idle), idle_timeout_(idle_timeout) {}

  ConnPtr take(asio::execution_context* ctx) {
    std::lock_guard lock(mu_);
    auto& list = idle_[ctx];
    while (!list.empty()) {
      auto c = std::move(list.back());
      list.pop_back();
      c->in_pool = false;
      if (Clock::now() - c->idle_since < idle_timeout_) return c;
      c->stream->close();
    }
    return nullptr;
  }

  // Keeps `c` for the next request; a watcher notices when the server closes it meanwhile, so
  // that a request never goes out on a connection that is already gone.
  void put(asio::execution_context* ctx, ConnPtr c) {
    {
      std::lock_guard lock(mu_);
      auto& list = idle_[ctx];
      if (list.size() >= max_idle_) {
        c->stream->close();
        return;
      }
      c->in_pool = true;
      c->idle_since = Clock::now();
      list.push_back(c);
    }
    if (c->watching) return;
    c->watching = true;
    asio::co_spawn(c->stream->executor(), watch(c, weak_from_this(), ctx, idle_timeout_),
                   asio::detached);
  }

 private:
  static awaitable<void> watch(ConnPtr c, std::weak_ptr<Pool> pool, asio::execution_context* ctx,
                               std::chrono::nanoseconds idle_timeout) {
    error_code ec;
    {
      // An idle connection is closed after idle_timeout (unless taken by then).
      Deadline deadline(c->stream->executor(), idle_timeout, [raw = c.get()] {
        if (raw->in_pool) raw->stream->close();
      });
      co_await c->stream->wait_readable(ec);
    }
    c->watching = false;
    if (c->in_pool) {
      // Readable while idle: the server closed it (or sent something unasked for).
      if (auto p = pool.lock()) p->drop(ctx, c);
      c->in_pool = false;
      c->stream->close();
    }
    c->watch_done.cancel();
  }

  void drop(asio::execution_context* ctx, const ConnPtr& c) {
    std::lock_guard lock(mu_);
    std::erase(idle_[ctx], c);
  }

  std::mutex mu_;
  std::map<asio::execution_context*, std::vector<ConnPtr>> idle_;
  const std::size_t max_idle_;
  const std::chrono::nanoseconds idle_timeout_;
};

class Http1Request final : public ClientRequest {
 public:
  Http1Request(std::shared_ptr<const Http1ClientConfig> cfg, std::shared_ptr<Pool> pool,
               std::string_view method, std::string target, std::optional<std::string> body,
               RequestLimits limits)
      : cfg_(std::move(cfg)),
        pool_(std::move(pool)),
        method_(method),
        target_(std::move(target)),
        body_(std::move(body)),
        limits_(limits) {}
  ~Http1Request() override {
    if (conn_) conn_->stream->close();
  }

  awaitable<void> send(error_code& ec) override {
    ec = {};
    auto ex = co_await asio::this_coro::executor;
    ctx_ = &asio::query(ex, asio::execution::context_as<asio::execution_context&>);
    // A request on a reused connection that dies before any answer is retried once on a new
    // connection when it is a GET (nothing was delivered); a POST is not replayed, as in Go.
    for (int attempt = 0;; ++attempt) {
      conn_ = pool_->take(ctx_);
      bool reused = conn_ != nullptr;
      if (!conn_) conn_ = co_await dial(ec);
      if (aborted_) ec = asio::error::operation_aborted;
      if (ec) {
        conn_.reset();
        co_return;
      }
      bool got_bytes = false;
      co_await exchange(ec, got_bytes);
      if (aborted_) ec = asio::error::operation_aborted;
      if (!ec) co_return;
      conn_->stream->close();
      conn_.reset();
      if (!(reused && !got_bytes && attempt == 0 && method_ == "GET" && !aborted_)) co_return;
      ec = {};
    }
  }

  int status() const override { return resp_.status; }

  awaitable<void> read_body(std::string& out, std::size_t max, error_code& ec) override {
    ec = {};
    if (aborted_) {
      ec = asio::error::operation_aborted;
      co_return;
    }
    if (body_done_) {
      ec = asio::error::eof;
      co_return;
    }
    if (!conn_) {
      ec = asio::error::not_connected;
      co_return;
    }
    Deadline deadline(conn_->stream->executor(), limits_.body_idle,
                      [c = conn_.get()] { c->stream->close(); });
    for (;;) {
      if (!rbuf_.empty() || framing_.kind == http::Framing::none) {
        std::size_t before = out.size();
        take(out, max);
        if (chunks_.bad()) {
          ec = asio::error::invalid_argument;
          co_return;
        }
        if (finished()) release();
        if (out.size() > before) co_return;
        if (body_done_) {
          ec = asio::error::eof;
          co_return;
        }
      }
      // A pull spends most of its life waiting here: wait without a buffer, and give the
      // read buffer back once it is consumed (an idle tunnel holds no 64 KiB of ours).
      if (rbuf_.empty()) {
        std::string().swap(rbuf_);
        co_await conn_->stream->wait_readable(ec);
      }
      if (!ec) co_await read_more(*conn_->stream, rbuf_, kReadChunk, ec);
      if (aborted_) ec = asio::error::operation_aborted;
      if (ec == asio::error::eof && framing_.kind == http::Framing::until_close) {
        body_done_ = true;
        conn_->stream->close();
        conn_.reset();
        continue;
      }
      if (ec) {
        if (ec == asio::error::eof) ec = asio::error::connection_reset;  // truncated body
        co_return;
      }
    }
  }

  void abort() override {
    aborted_ = true;
    if (conn_) conn_->stream->close();
  }

 private:
  awaitable<ConnPtr> dial(error_code& ec) {
    try {
      auto s = co_await with_timeout(dial_tcp(cfg_->node_addr), cfg_->connect_timeout);
      if (cfg_->tls) {
        Stream& raw = *s;
        Deadline deadline(raw.executor(), cfg_->connect_timeout, [&raw] { raw.close(); });
        s = co_await tls_connect(std::move(s), cfg_->tls);
      }
      co_return std::make_shared<Http1Conn>(std::move(s));
    } catch (const system_error& e) {
      ec = e.code();
    }
    co_return nullptr;
  }

  // Writes the request and reads the response head (1xx answers skipped).
  awaitable<void> exchange(error_code& ec, bool& got_bytes) {
    Stream& s = *conn_->stream;
    Deadline deadline(s.executor(), limits_.head_timeout, [&s] { s.close(); });
    std::string wire = codec::client_request(method_, target_, cfg_->authority, cfg_->headers,
                                             body_ ? &*body_ : nullptr);
    co_await write_all(s, asio::buffer(wire), ec);
    if (ec) co_return;
    // The response makes the idle watcher's wait complete; read only after it (one reader).
    while (conn_->watching) {
      conn_->watch_done.expires_at(TimePoint::max());
      co_await conn_->watch_done.async_wait(use_nothrow);
    }
    for (;;) {
      std::size_t head_len = 0;
      auto st = co_await net::read_response(s, rbuf_, resp_, head_len, ec);
      got_bytes = got_bytes || !rbuf_.empty();
      if (st != http::ParseStatus::complete) {
        if (!ec) ec = asio::error::invalid_argument;
        co_return;
      }
      rbuf_.erase(0, head_len);
      if (resp_.status >= 100 && resp_.status < 200 && resp_.status != 101) continue;
      break;
    }
    auto framing = http::response_framing(resp_, method_);
    if (!framing) {
      ec = asio::error::invalid_argument;
      co_return;
    }
    framing_ = *framing;
    remaining_ = framing_.length;
    // A chunked response is a pull: servers (ours among them) may close its connection when the
    // pull ends, and a request sent on it at that moment would fail — never reuse one.
    keep_alive_ = resp_.version_minor == 1 && !resp_.headers.has_token("Connection", "close") &&
                  framing_.kind != http::Framing::until_close &&
                  framing_.kind != http::Framing::chunked;
  }

  bool finished() const {
    switch (framing_.kind) {
      case http::Framing::none:
        return true;
      case http::Framing::sized:
        return remaining_ == 0;
      case http::Framing::chunked:
        return chunks_.done();
      default:
        return false;
    }
  }

  void take(std::string& out, std::size_t max) {
    switch (framing_.kind) {
      case http::Framing::sized: {
        auto n = static_cast<std::size_t>(
            std::min<std::uint64_t>({remaining_, max, static_cast<std::uint64_t>(rbuf_.size())}));
        out.append(rbuf_, 0, n);
        rbuf_.erase(0, n);
        remaining_ -= n;
        break;
      }
      case http::Framing::chunked: {
        std::size_t used = chunks_.feed(std::string_view(rbuf_).substr(0, max), &out);
        rbuf_.erase(0, used);
        break;
      }
      case http::Framing::until_close: {
        std::size_t n = std::min(max, rbuf_.size());
        out.append(rbuf_, 0, n);
        rbuf_.erase(0, n);
        break;
      }
      default:
        break;
    }
  }

  // The body is complete: the connection goes back to the pool if it can carry another request.
  void release() {
    body_done_ = true;
    if (!conn_) return;
    if (keep_alive_ && rbuf_.empty() && !aborted_)
      pool_->put(ctx_, std::move(conn_));
    else
      conn_->stream->close();
    conn_.reset();
  }

  std::shared_ptr<const Http1ClientConfig> cfg_;
  std::shared_ptr<Pool> pool_;
  std::string method_;
  std::string target_;
  std::optional<std::string> body_;
  RequestLimits limits_;
  asio::execution_context* ctx_ = nullptr;
  ConnPtr conn_;
  std::string rbuf_;
  http::Response resp_;
  http::Framing framing_;
  std::uint64_t remaining_ = 0;
  http::ChunkedScanner chunks_;
  bool keep_alive_ = false;
  bool body_done_ = false;
  bool aborted_ = false;
};

class Http1Client final : public ClientCarrier {
 public:
  explicit Http1Client(Http1ClientConfig cfg)
      : cfg_(std::make_shared<const Http1ClientConfig>(std::move(cfg))),
        pool_(std::make_shared<Pool>(cfg_->max_idle, cfg_->idle_timeout)) {}

  std::shared_ptr<ClientRequest> request(std::string_view method, std::string target,
                                         std::optional<std::string> body,
                                         RequestLimits limits) override {
    return std::make_shared<Http1Request>(cfg_, pool_, method, std::move(target), std::move(body),
                                          limits);
  }

 private:
  std::shared_ptr<const Http1ClientConfig> cfg_;
  std::shared_ptr<Pool> pool_;
};

}  // namespace

std::shared_ptr<ClientCarrier> make_http1_client(Http1ClientConfig cfg) {
  return std::make_shared<Http1Client>(std::move(cfg));
}

}  // namespace gost::net::pht
