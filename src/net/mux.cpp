#include "net/mux.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <cstring>

#include "core/tcp_stream.hpp"
#include "core/tunnel.hpp"

namespace gost::net {

namespace smux = proto::smux;
using Cmd = smux::Cmd;
using TimePoint = asio::steady_timer::time_point;

MuxConfig mux_config(const config::Metadata& md, std::string_view where, int default_version,
                     int max_version, std::uint32_t default_stream_buffer) {
  MuxConfig c;
  c.version = static_cast<std::uint8_t>(default_version);
  c.max_stream_buffer = default_stream_buffer;
  if (auto t = md.get_string("mux.type")) {
    std::string type = *t;
    std::transform(type.begin(), type.end(), type.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (!type.empty() && type != "smux")
      throw config::ConfigError(fmt::format(
          "{}: mux.type={} is not supported by this implementation (only smux)", where, *t));
  }
  // value_or() rather than `opt && *opt ...`: GCC -O3 folds the latter into a branch on the
  // (uninitialised) payload of an empty optional first — harmless, but valgrind rightly flags it.
  if (auto v = md.get_int("mux.version").value_or(0); v != 0) {
    if (v < 1 || v > max_version)
      throw config::ConfigError(fmt::format(
          "{}: mux.version={} is not supported by this implementation (only smux version{})", where,
          v, max_version == 1 ? " 1" : "s 1 and 2"));
    c.version = static_cast<std::uint8_t>(v);
  }
  using std::chrono::nanoseconds;
  if (auto d = md.get_duration("mux.keepaliveInterval").value_or(nanoseconds(0)); d.count() > 0)
    c.keepalive_interval = d;
  if (auto d = md.get_duration("mux.keepaliveTimeout").value_or(nanoseconds(0)); d.count() > 0)
    c.keepalive_timeout = d;
  c.keepalive_disabled = md.get_bool("mux.keepaliveDisabled").value_or(false);
  if (auto n = md.get_int("mux.maxFrameSize").value_or(0); n > 0)
    c.max_frame_size = static_cast<std::size_t>(std::min<std::int64_t>(n, smux::kMaxPayload));
  if (auto n = md.get_int("mux.maxReceiveBuffer").value_or(0); n > 0)
    c.max_receive_buffer = static_cast<std::size_t>(n);
  // mux.maxStreamBuffer is a version-2 (per-stream window) setting: no effect with version 1.
  if (auto n = md.get_int("mux.maxStreamBuffer").value_or(0); n > 0)
    c.max_stream_buffer = static_cast<std::uint32_t>(std::min<std::int64_t>(n, 1 << 30));
  // mux.maxStreamWindow has no smux v1 meaning here either, but GOST would apply it: refuse it.
  reject_unsupported(md, {"mux.maxStreamWindow"}, where);
  return c;
}

// ---- streams ----------------------------------------------------------------------------------

struct MuxSession::StreamState {
  StreamState(asio::any_io_executor ex, std::uint32_t sid)
      : id(sid), readable(ex, TimePoint::max()), window(ex, TimePoint::max()) {}
  std::uint32_t id;
  std::deque<std::string> chunks;
  std::size_t offset = 0;  // consumed bytes of chunks.front()
  std::size_t buffered = 0;
  std::uint64_t written = 0;  // payload bytes sent: the stream's place in the write order
  bool fin_received = false;
  bool fin_sent = false;
  bool aborted = false;
  asio::steady_timer readable;  // condition: data, FIN, abort or session end
  // Version 2 (smux stream.go): what we read and told the peer, what we sent and the peer's
  // last UPD; a writer waits while its data in flight fills the peer's window.
  std::uint32_t num_read = 0;
  std::uint32_t incr = 0;
  std::uint32_t num_written = 0;
  std::uint32_t peer_consumed = 0;
  std::uint32_t peer_window = proto::smux::kInitialPeerWindow;
  asio::steady_timer window;  // condition: a UPD, abort or session end
};

class MuxStream final : public Stream {
 public:
  using State = MuxSession::StreamState;
  MuxStream(std::shared_ptr<MuxSession> s, std::shared_ptr<State> st)
      : session_(std::move(s)), st_(std::move(st)) {}
  ~MuxStream() override { close(); }

  asio::any_io_executor executor() override { return session_->conn_->executor(); }

  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    ec = {};
    for (;;) {
      if (st_->aborted) {
        ec = asio::error::operation_aborted;
        co_return 0;
      }
      if (st_->buffered > 0) co_return take(buf);
      if (st_->fin_received) {
        ec = asio::error::eof;
        co_return 0;
      }
      if (session_->closed_) {
        ec = asio::error::connection_reset;
        co_return 0;
      }
      co_await st_->readable.async_wait(use_nothrow);
    }
  }

  awaitable<void> wait_readable(error_code& ec) override {
    ec = {};
    while (!st_->aborted && st_->buffered == 0 && !st_->fin_received && !session_->closed_)
      co_await st_->readable.async_wait(use_nothrow);
    if (st_->aborted) ec = asio::error::operation_aborted;
  }

  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    ec = {};
    if (st_->aborted || st_->fin_sent || session_->closed_) {
      ec = asio::error::broken_pipe;
      co_return 0;
    }
    std::size_t n = std::min(buf.size(), session_->cfg_.max_frame_size);
    if (session_->cfg_.version == proto::smux::kVersion2) {
      for (;;) {
        if (st_->aborted || st_->fin_sent || session_->closed_) {
          ec = asio::error::broken_pipe;
          co_return 0;
        }
        auto inflight = static_cast<std::int32_t>(st_->num_written - st_->peer_consumed);
        if (inflight < 0) {  // the peer claims more than we sent (smux ErrConsumed)
          ec = asio::error::connection_reset;
          co_return 0;
        }
        std::int64_t win = static_cast<std::int64_t>(st_->peer_window) - inflight;
        if (win > 0) {
          n = std::min<std::size_t>(n, static_cast<std::size_t>(win));
          break;
        }
        co_await st_->window.async_wait(use_nothrow);
      }
      st_->num_written += static_cast<std::uint32_t>(n);
    }
    std::string_view data(static_cast<const char*>(buf.data()), n);
    co_await session_->write_frame(Cmd::psh, st_->id, data, ec);
    co_return ec ? 0 : n;
  }

  awaitable<void> shutdown_write(error_code& ec) override {
    ec = {};
    if (st_->fin_sent || st_->aborted) co_return;
    st_->fin_sent = true;
    std::string_view none;
    co_await session_->write_frame(Cmd::fin, st_->id, none, ec);
  }

  void close() override {
    if (st_->aborted) return;
    st_->aborted = true;
    st_->readable.cancel();
    st_->window.cancel();
    session_->release(st_->buffered);
    st_->buffered = 0;
    st_->chunks.clear();
    session_->forget_stream(st_->id);
    if (!st_->fin_sent && !session_->closed_) {
      st_->fin_sent = true;
      session_->send_fin_detached(st_->id);
    }
    if (session_->close_when_idle_ && session_->streams_.empty()) session_->close_after_writes();
  }

  std::string remote_address() const override { return session_->conn_->remote_address(); }
  std::string local_address() const override { return session_->conn_->local_address(); }

 private:
  std::size_t take(asio::mutable_buffer buf) {
    std::size_t n = 0;
    auto* out = static_cast<char*>(buf.data());
    while (n < buf.size() && !st_->chunks.empty()) {
      const std::string& front = st_->chunks.front();
      std::size_t k = std::min(buf.size() - n, front.size() - st_->offset);
      std::memcpy(out + n, front.data() + st_->offset, k);
      n += k;
      st_->offset += k;
      if (st_->offset == front.size()) {
        st_->chunks.pop_front();
        st_->offset = 0;
      }
    }
    st_->buffered -= n;
    session_->release(n);
    if (session_->cfg_.version == proto::smux::kVersion2 && n > 0) {
      // smux tryReadv2: a UPD at the first read and whenever half the window was consumed.
      auto k = static_cast<std::uint32_t>(n);
      st_->num_read += k;
      st_->incr += k;
      if (st_->incr >= session_->cfg_.max_stream_buffer / 2 || st_->num_read == k) {
        st_->incr = 0;
        session_->send_upd_detached(st_->id, st_->num_read);
      }
    }
    return n;
  }

  std::shared_ptr<MuxSession> session_;
  std::shared_ptr<State> st_;
};

// ---- the session ------------------------------------------------------------------------------

namespace {

awaitable<void> read_exact(Stream& s, char* p, std::size_t n, error_code& ec) {
  while (n > 0) {
    std::size_t k = co_await s.read_some(asio::buffer(p, n), ec);
    if (ec) co_return;
    p += k;
    n -= k;
  }
}
}  // namespace

MuxSession::MuxSession(StreamPtr conn, MuxConfig cfg)
    : conn_(std::move(conn)),
      cfg_(cfg),
      writers_(conn_->executor(), TimePoint::max()),
      budget_(conn_->executor(), TimePoint::max()),
      done_(conn_->executor(), TimePoint::max()),
      incoming_(conn_->executor(), TimePoint::max()),
      keepalive_(conn_->executor()),
      timeout_(conn_->executor()) {
  cfg_.max_frame_size = std::clamp<std::size_t>(cfg_.max_frame_size, 1, smux::kMaxPayload);
  if (cfg_.max_receive_buffer == 0) cfg_.max_receive_buffer = 1;
}

MuxSession::~MuxSession() { close(); }

std::shared_ptr<MuxSession> MuxSession::client(StreamPtr conn, MuxConfig cfg) {
  std::shared_ptr<MuxSession> s(new MuxSession(std::move(conn), cfg));
  s->start();
  return s;
}

std::shared_ptr<MuxSession> MuxSession::server(StreamPtr conn, MuxConfig cfg) {
  std::shared_ptr<MuxSession> s(new MuxSession(std::move(conn), cfg));
  s->server_ = true;
  s->next_id_ = 0;  // smux: the server side would open even stream ids
  s->start();
  return s;
}

namespace {
// Peer-opened streams waiting for accept_stream(); while this many wait, the read loop reads no
// more frames (smux's own back-pressure: its receive loop blocks on a full accept channel).
// Refusing the stream instead would end a tunnel the client already wrote to (issue 16).
constexpr std::size_t kAcceptBacklog = 256;
}  // namespace

void MuxSession::peer_opened(std::uint32_t sid) {
  if (!server_) {
    send_fin_detached(sid);
    return;
  }
  auto st = std::make_shared<StreamState>(conn_->executor(), sid);
  streams_[sid] = st;
  accept_queue_.push_back(std::move(st));
  incoming_.cancel();
}

awaitable<StreamPtr> MuxSession::accept_stream(error_code& ec) {
  ec = {};
  while (accept_queue_.empty() && !closed_) co_await incoming_.async_wait(use_nothrow);
  if (accept_queue_.empty()) {
    ec = asio::error::connection_reset;
    co_return nullptr;
  }
  auto st = std::move(accept_queue_.front());
  accept_queue_.pop_front();
  budget_.cancel();  // the read loop may wait for room in the queue
  StreamPtr s = std::make_unique<MuxStream>(shared_from_this(), std::move(st));
  co_return s;
}

void MuxSession::forget_stream(std::uint32_t sid) {
  streams_.erase(sid);
  if (streams_.empty()) idle_since_ = std::chrono::steady_clock::now();
}

void MuxSession::start() {
  auto ex = conn_->executor();
  auto keep = [self = shared_from_this()](std::exception_ptr) {};
  asio::co_spawn(ex, read_loop(), keep);
  if (!cfg_.keepalive_disabled) {
    asio::co_spawn(ex, keepalive_loop(), keep);
    asio::co_spawn(ex, timeout_loop(), keep);
  }
}

void MuxSession::close() {
  if (closed_) return;
  closed_ = true;
  if (conn_) conn_->close();
  for (auto& [id, st] : streams_) {
    st->readable.cancel();
    st->window.cancel();
  }
  writers_.cancel();
  for (auto& w : write_queue_) w.wake->cancel();
  budget_.cancel();
  done_.cancel();
  incoming_.cancel();
  keepalive_.cancel();
  timeout_.cancel();
}

awaitable<void> MuxSession::wait_closed() {
  while (!closed_) co_await done_.async_wait(use_nothrow);
}

awaitable<StreamPtr> MuxSession::open_stream(error_code& ec) {
  ec = {};
  if (closed_) {
    ec = asio::error::broken_pipe;
    co_return nullptr;
  }
  next_id_ += 2;
  std::uint32_t sid = next_id_;
  auto st = std::make_shared<StreamState>(conn_->executor(), sid);
  streams_[sid] = st;
  std::string_view none;
  co_await write_frame(Cmd::syn, sid, none, ec);
  if (ec) {
    forget_stream(sid);
    co_return nullptr;
  }
  StreamPtr s = std::make_unique<MuxStream>(shared_from_this(), std::move(st));
  co_return s;
}

awaitable<void> MuxSession::write_frame(Cmd cmd, std::uint32_t sid, std::string_view payload,
                                        error_code& ec) {
  ec = {};
  if (payload.size() > smux::kMaxPayload) {
    ec = asio::error::message_size;
    co_return;
  }
  std::shared_ptr<StreamState> st;
  if (cmd == Cmd::psh)
    if (auto it = streams_.find(sid); it != streams_.end()) st = it->second;
  bool own = false;
  if (!closed_ && (writing_ || !write_queue_.empty())) {
    // Control frames: priority 0; data: 1 + what the stream has written so far.
    std::uint64_t prio = st ? 1 + st->written : 0;
    asio::steady_timer wake(conn_->executor(), TimePoint::max());
    bool granted = false;
    write_queue_.push_back({prio, write_seq_++, &wake, &granted});
    std::push_heap(write_queue_.begin(), write_queue_.end(), std::greater<>());
    while (!granted && !closed_) co_await wake.async_wait(use_nothrow);
    own = granted;
    if (!own) {  // closed: leave the queue (close() woke everyone)
      std::erase_if(write_queue_, [&](const WriteWaiter& w) { return w.granted == &granted; });
      std::make_heap(write_queue_.begin(), write_queue_.end(), std::greater<>());
    }
  } else if (!closed_) {
    writing_ = true;
    own = true;
  }
  if (closed_) {
    if (own) grant_next_writer();
    ec = asio::error::broken_pipe;
    co_return;
  }
  if (st) st->written += payload.size();
  // Encoded only now: a writer waiting in line holds no copy of its frame.
  auto frame = smux::encode_frame(cmd, sid, payload, cfg_.version);
  if (frame)
    co_await write_all(*conn_, asio::buffer(*frame), ec);
  else
    ec = asio::error::message_size;
  grant_next_writer();
  if (ec) close();  // a partly written frame would corrupt the session
}

// The connection passes from the writer done (writing_ held) to the next in line, if any.
void MuxSession::grant_next_writer() {
  while (!write_queue_.empty()) {
    std::pop_heap(write_queue_.begin(), write_queue_.end(), std::greater<>());
    WriteWaiter w = write_queue_.back();
    write_queue_.pop_back();
    *w.granted = true;  // writing_ stays true: it is handed over
    w.wake->cancel();
    return;
  }
  writing_ = false;
  writers_.cancel();
}

awaitable<void> MuxSession::fin_frame(std::uint32_t sid) {
  error_code ec;
  std::string_view none;
  co_await write_frame(Cmd::fin, sid, none, ec);
}

void MuxSession::send_fin_detached(std::uint32_t sid) {
  asio::co_spawn(conn_->executor(), fin_frame(sid),
                 [self = shared_from_this()](std::exception_ptr) {});
}

void MuxSession::send_upd_detached(std::uint32_t sid, std::uint32_t consumed) {
  auto upd = [](std::shared_ptr<MuxSession> self, std::uint32_t stream,
                std::string payload) -> awaitable<void> {
    error_code ec;
    co_await self->write_frame(Cmd::upd, stream, payload, ec);
  };
  asio::co_spawn(conn_->executor(),
                 upd(shared_from_this(), sid, smux::encode_upd(consumed, cfg_.max_stream_buffer)),
                 asio::detached);
}

void MuxSession::close_after_writes() {
  auto drain = [](std::shared_ptr<MuxSession> self) -> awaitable<void> {
    // Queued writers (spawned before us) go first: wait until nobody holds the write lock.
    while ((self->writing_ || !self->write_queue_.empty()) && !self->closed_)
      co_await self->writers_.async_wait(use_nothrow);
    self->close();
  };
  asio::co_spawn(conn_->executor(), drain(shared_from_this()), asio::detached);
}

void MuxSession::release(std::size_t n) {
  buffered_ -= std::min(n, buffered_);
  budget_.cancel();
}

awaitable<void> MuxSession::read_loop() {
  char head[smux::kHeaderSize];
  error_code ec;
  while (!closed_) {
    while ((buffered_ >= cfg_.max_receive_buffer || accept_queue_.size() >= kAcceptBacklog) &&
           !closed_)
      co_await budget_.async_wait(use_nothrow);
    if (closed_) break;
    co_await read_exact(*conn_, head, sizeof head, ec);
    if (ec) break;
    auto h = smux::parse_header(std::string_view(head, sizeof head));
    // smux: a frame of another version or an unknown command is an invalid protocol → the end
    if (!h || !smux::valid_for(*h, cfg_.version)) break;
    data_seen_ = true;
    std::string payload(h->length, '\0');
    if (h->length > 0) {
      co_await read_exact(*conn_, payload.data(), payload.size(), ec);
      if (ec) break;
    }
    auto it = streams_.find(h->stream_id);
    switch (static_cast<Cmd>(h->cmd)) {
      case Cmd::syn:  // a stream opened by the peer: queued (server) or refused with a FIN
        if (it == streams_.end()) peer_opened(h->stream_id);
        break;
      case Cmd::fin:
        if (it != streams_.end()) {
          it->second->fin_received = true;
          it->second->readable.cancel();
        }
        break;
      case Cmd::psh:
        if (it != streams_.end() && !payload.empty() && !it->second->fin_received) {
          it->second->buffered += payload.size();
          buffered_ += payload.size();
          it->second->chunks.push_back(std::move(payload));
          it->second->readable.cancel();
        }
        break;
      case Cmd::upd:  // version 2: the peer's window for our writes on this stream
        if (it != streams_.end())
          if (auto u = smux::parse_upd(payload)) {
            it->second->peer_consumed = u->consumed;
            it->second->peer_window = u->window;
            it->second->window.cancel();
          }
        break;
      default:  // NOP
        break;
    }
  }
  close();
}

awaitable<void> MuxSession::keepalive_loop() {
  error_code ec;
  std::string_view none;
  while (!closed_) {
    keepalive_.expires_after(cfg_.keepalive_interval);
    co_await keepalive_.async_wait(use_nothrow);
    if (closed_) break;
    co_await write_frame(Cmd::nop, 0, none, ec);
    if (ec) break;
  }
}

awaitable<void> MuxSession::timeout_loop() {
  while (!closed_) {
    timeout_.expires_after(cfg_.keepalive_timeout);
    co_await timeout_.async_wait(use_nothrow);
    if (closed_) break;
    if (!data_seen_) {
      close();
      break;
    }
    data_seen_ = false;
  }
}

// ---- multiplexed BIND -------------------------------------------------------------------------

namespace {

struct BindChildren {
  explicit BindChildren(asio::any_io_executor ex) : idle(ex, TimePoint::max()) {}
  int active = 0;
  std::uint64_t input = 0;
  std::uint64_t output = 0;
  asio::steady_timer idle;  // condition: active dropped to 0
};

awaitable<void> watch_session(std::shared_ptr<MuxSession> session,
                              std::shared_ptr<tcp::acceptor> acceptor) {
  co_await session->wait_closed();
  error_code ignored;
  acceptor->close(ignored);
}

awaitable<void> bind_child(std::shared_ptr<MuxSession> session, StreamPtr peer,
                           std::string peer_addr, std::string header, ConnInfo conn,
                           std::shared_ptr<BindChildren> kids, RelayOptions options) {
  error_code ec;
  StreamPtr s = co_await session->open_stream(ec);
  if (!s) co_return;
  co_await write_all(*s, asio::buffer(header), ec);
  if (ec) co_return;
  try {
    co_await relay_logged(*s, *peer, peer_addr, conn, options);
  } catch (const std::exception& e) {
    conn.log.debug(fmt::format("mux bind {}: {}", peer_addr, error_text(e)));
  }
  kids->input += conn.input_bytes;
  kids->output += conn.output_bytes;
}

}  // namespace

awaitable<void> serve_mux_bind(std::shared_ptr<tcp::acceptor> acceptor,
                               std::shared_ptr<MuxSession> session,
                               std::function<std::string(const std::string&)> header,
                               ConnInfo& conn, RelayOptions options) {
  auto ex = acceptor->get_executor();
  auto kids = std::make_shared<BindChildren>(ex);
  asio::co_spawn(ex, watch_session(session, acceptor), asio::detached);
  for (;;) {
    tcp::socket peer(ex);
    auto [aec] = co_await acceptor->async_accept(peer, use_nothrow);
    if (aec) {
      if (!session->closed()) conn.log.error(fmt::format("bind accept: {}", aec.message()));
      break;
    }
    error_code pec;
    auto ep = peer.remote_endpoint(pec);
    std::string peer_addr = pec ? std::string("0.0.0.0:0") : endpoint_text(ep);
    std::string head = header(peer_addr);
    ++kids->active;
    auto stream = std::make_unique<TcpStream>(std::move(peer));
    asio::co_spawn(ex,
                   bind_child(session, std::move(stream), peer_addr, std::move(head), conn.child(),
                              kids, options),
                   [kids](std::exception_ptr) {
                     if (--kids->active == 0) kids->idle.cancel();
                   });
  }
  session->close();
  error_code ignored;
  acceptor->close(ignored);
  while (kids->active > 0) co_await kids->idle.async_wait(use_nothrow);
  conn.input_bytes += kids->input;
  conn.output_bytes += kids->output;
}

}  // namespace gost::net
