// HTTP/3 request streams: RequestStream (what the application reads and writes), the nghttp3
// connection of a QUIC connection and its callbacks, and header conversion.
#include <algorithm>
#include <cstring>

#include "net/quic_connection.hpp"
#include "proto/pht.hpp"

namespace gost::net::quic {

// ---- RequestStream ----------------------------------------------------------------------------

RequestStream::RequestStream(std::shared_ptr<Connection> conn, std::int64_t id)
    : conn_(std::move(conn)),
      id_(id),
      readable_(conn_->executor(), asio::steady_timer::time_point::max()),
      writable_(conn_->executor(), asio::steady_timer::time_point::max()) {}

RequestStream::~RequestStream() = default;

asio::any_io_executor RequestStream::executor() const { return conn_->executor(); }
std::string RequestStream::remote_address() const { return conn_->remote_text(); }
std::string RequestStream::local_address() const { return conn_->local_text(); }

void RequestStream::wake_readers() { readable_.cancel(); }
void RequestStream::wake_writers() { writable_.cancel(); }

void RequestStream::fail(error_code ec) {
  if (!error_) error_ = ec;
  wake_readers();
  wake_writers();
  if (gone_) {
    auto g = std::move(gone_);
    gone_ = nullptr;
    asio::post(conn_->executor(), std::move(g));
  }
}

awaitable<void> RequestStream::wait_head(std::chrono::nanoseconds timeout, error_code& ec) {
  ec = {};
  auto deadline = deadline_after(timeout);
  while (!head_done_) {
    if (error_) {
      ec = error_;
      co_return;
    }
    if (!co_await wait_until(readable_, deadline) && !head_done_) {
      ec = asio::error::timed_out;
      co_return;
    }
  }
}

awaitable<void> RequestStream::read(std::string& out, std::size_t max,
                                    std::chrono::nanoseconds idle, error_code& ec) {
  ec = {};
  for (;;) {
    if (in_off_ < in_.size()) {
      std::size_t n = std::min(max, in_.size() - in_off_);
      out.append(in_, in_off_, n);
      in_off_ += n;
      if (in_off_ == in_.size()) {
        std::string().swap(in_);  // an idle stream holds no buffer
        in_off_ = 0;
      }
      conn_->consume(id_, n);
      co_return;
    }
    if (in_eof_) {
      ec = asio::error::eof;
      co_return;
    }
    if (error_) {
      ec = error_;
      co_return;
    }
    bool woken = co_await wait_until(readable_, deadline_after(idle));
    if (!woken && in_off_ >= in_.size() && !in_eof_ && !error_) {
      ec = asio::error::timed_out;
      co_return;
    }
  }
}

void RequestStream::respond(const Headers& head, error_code& ec) {
  ec = {};
  if (error_ || closed_) {
    ec = error_ ? error_ : asio::error::connection_reset;
    return;
  }
  conn_->respond(*this, head, ec);
}

awaitable<void> RequestStream::write(std::string data, error_code& ec) {
  ec = {};
  while (!error_ && !closed_ && out_unacked_ > conn_->config().max_unacked)
    co_await wait_until(writable_, Clock::time_point::max());
  if (error_ || closed_) {
    ec = error_ ? error_ : asio::error::connection_reset;
    co_return;
  }
  if (data.empty()) co_return;
  out_unacked_ += data.size();
  out_.push_back(std::move(data));
  conn_->resume(*this);
}

void RequestStream::finish() {
  if (out_fin_ || error_ || closed_) return;
  out_fin_ = true;
  conn_->resume(*this);
}

void RequestStream::cancel(std::uint64_t code) {
  if (closed_) return;
  if (!error_) conn_->reset_stream(id_, code);
  gone_ = nullptr;
  fail(asio::error::operation_aborted);
}

void RequestStream::reject() { cancel(NGHTTP3_H3_REQUEST_REJECTED); }

void RequestStream::reset() {
  // A WebTransport stream is reset with WebTransport application error 0 as HTTP/3 code
  // (draft-ietf-webtrans-http3 §4.3: 0x52e4a40fa8db); a request with H3_REQUEST_CANCELLED.
  cancel(raw_ ? 0x52e4a40fa8dbULL : NGHTTP3_H3_REQUEST_CANCELLED);
}

awaitable<std::size_t> RequestStream::read_some(asio::mutable_buffer buf, error_code& ec) {
  ec = {};
  for (;;) {
    if (in_off_ < in_.size()) {
      std::size_t n = std::min(buf.size(), in_.size() - in_off_);
      std::memcpy(buf.data(), in_.data() + in_off_, n);
      in_off_ += n;
      if (in_off_ == in_.size()) {
        std::string().swap(in_);  // an idle stream holds no buffer
        in_off_ = 0;
      }
      conn_->consume(id_, n);
      co_return n;
    }
    if (in_eof_) {
      ec = asio::error::eof;
      co_return 0;
    }
    if (error_) {
      ec = error_;
      co_return 0;
    }
    co_await wait_until(readable_, Clock::time_point::max());
  }
}

awaitable<void> RequestStream::wait_readable(error_code& ec) {
  ec = {};
  while (in_off_ >= in_.size() && !in_eof_ && !error_ && dgram_in_.empty())
    co_await wait_until(readable_, Clock::time_point::max());
}

void RequestStream::accept_datagrams() { dgram_on_ = true; }

void RequestStream::stop_reading() {
  if (closed_ || error_ || in_eof_) return;
  // What was received but not read gives its connection credit back (ngtcp2 does so itself for
  // what comes after STOP_SENDING).
  if (std::size_t unread = in_.size() - in_off_) conn_->consume(id_, unread);
  conn_->stop_reading(id_);
  std::string().swap(in_);
  in_off_ = 0;
  in_eof_ = true;
  wake_readers();
}

std::optional<std::string> RequestStream::take_datagram() {
  if (dgram_in_.empty()) return std::nullopt;
  auto d = std::move(dgram_in_.front());
  dgram_in_.pop_front();
  return d;
}

bool RequestStream::send_datagram(std::string_view payload) {
  if (error_ || closed_) return true;  // dropped: the stream is gone (its reader sees why)
  return conn_->send_h3_datagram(id_, payload);
}

void RequestStream::accept_webtransport(
    std::function<void(std::shared_ptr<RequestStream>)> on_stream) {
  conn_->accept_wt_session(*this, std::move(on_stream));
}

std::shared_ptr<RequestStream> RequestStream::open_webtransport_stream(error_code& ec) {
  if (error_ || closed_ || !head_done_) {
    ec = error_ ? error_ : asio::error::connection_aborted;
    return nullptr;
  }
  return conn_->open_wt_stream(id_, ec);
}

awaitable<void> RequestStream::reply(int status, error_code& ec) {
  Headers head{{":status", std::to_string(status)}, {"date", proto::pht::current_http_date()}};
  std::string body;
  if (status == 404) {  // Go's http.NotFound
    body = "404 page not found\n";
    head.push_back({"content-type", "text/plain; charset=utf-8"});
    head.push_back({"x-content-type-options", "nosniff"});
  }
  head.push_back({"content-length", std::to_string(body.size())});
  respond(head, ec);
  if (ec) co_return;
  if (!body.empty()) co_await write(std::move(body), ec);
  finish();
}

void RequestStream::on_gone(std::function<void()> gone) {
  if (error_) {
    asio::post(conn_->executor(), std::move(gone));
    return;
  }
  gone_ = std::move(gone);
}

// ---- nghttp3 callbacks ------------------------------------------------------------------------

int Callbacks::h3_acked_stream_data(nghttp3_conn*, std::int64_t, std::uint64_t len, void*,
                                    void* sud) {
  auto* s = st(sud);
  if (!s) return 0;
  s->out_unacked_ -= std::min<std::size_t>(s->out_unacked_, len);
  while (len > 0 && !s->out_.empty()) {
    auto& f = s->out_.front();
    std::size_t take = std::min<std::uint64_t>(len, f.size() - s->out_acked_);
    s->out_acked_ += take;
    len -= take;
    if (s->out_acked_ == f.size()) {
      s->out_.pop_front();
      if (s->out_given_ > 0) --s->out_given_;
      s->out_acked_ = 0;
    }
  }
  s->wake_writers();
  return 0;
}

int Callbacks::h3_stream_close(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* ud,
                               void* sud) {
  auto* c = self(ud);
  auto it = c->streams_.find(id);
  if (it == c->streams_.end()) return 0;
  auto s = it->second;
  c->streams_.erase(it);
  if (c->streams_.empty()) c->idle_since_ = Clock::now();
  if (c->wt_sessions_.count(id)) c->end_wt_session(id);
  s->closed_ = true;
  bool clean = code == NGHTTP3_H3_NO_ERROR && s->in_eof_ && (s->out_fin_ || !s->responded_);
  if (!clean) s->fail(asio::error::connection_reset);
  s->wake_readers();
  s->wake_writers();
  (void)sud;
  return 0;
}

int Callbacks::h3_recv_data(nghttp3_conn*, std::int64_t, const std::uint8_t* data, std::size_t len,
                            void*, void* sud) {
  auto* s = st(sud);
  if (!s) return 0;
  if (s->in_off_ > 0 && s->in_off_ == s->in_.size()) {
    s->in_.clear();
    s->in_off_ = 0;
  }
  s->in_.append(reinterpret_cast<const char*>(data), len);
  s->wake_readers();
  return 0;
}

int Callbacks::h3_deferred_consume(nghttp3_conn*, std::int64_t id, std::size_t n, void* ud, void*) {
  auto* c = self(ud);
  ngtcp2_conn_extend_max_stream_offset(c->conn_, id, n);
  ngtcp2_conn_extend_max_offset(c->conn_, n);
  return 0;
}

int Callbacks::h3_begin_headers(nghttp3_conn* h3, std::int64_t id, void* ud, void* sud) {
  auto* c = self(ud);
  if (!c->server_ || sud) return 0;
  auto s = std::shared_ptr<RequestStream>(new RequestStream(c->shared_from_this(), id));
  c->streams_[id] = s;
  nghttp3_conn_set_stream_user_data(h3, id, s.get());
  return 0;
}

int Callbacks::h3_recv_header(nghttp3_conn*, std::int64_t id, std::int32_t, nghttp3_rcbuf* name,
                              nghttp3_rcbuf* value, std::uint8_t, void* ud, void* sud) {
  auto* s = st(sud);
  if (!s || s->head_done_) return 0;
  auto n = nghttp3_rcbuf_get_buf(name);
  auto v = nghttp3_rcbuf_get_buf(value);
  s->head_bytes_ += n.len + v.len + 32;  // RFC 9114 §4.2.2 size
  if (s->head_bytes_ > kMaxHead) {
    if (!s->bad_head_) {
      s->bad_head_ = true;
      self(ud)->reset_stream(id);
    }
    return 0;
  }
  s->head_.push_back({std::string(reinterpret_cast<const char*>(n.base), n.len),
                      std::string(reinterpret_cast<const char*>(v.base), v.len)});
  return 0;
}

int Callbacks::h3_end_headers(nghttp3_conn*, std::int64_t, int fin, void* ud, void* sud) {
  auto* c = self(ud);
  auto* s = st(sud);
  if (!s || s->head_done_ || s->bad_head_) return 0;
  if (!c->server_) {
    // Interim (1xx) responses are skipped: the final head follows.
    auto status = h2_header(s->head_, ":status");
    if (status.size() == 3 && status[0] == '1') {
      s->head_.clear();
      s->head_bytes_ = 0;
      return 0;
    }
  }
  s->head_done_ = true;
  if (fin) s->in_eof_ = true;
  s->wake_readers();
  if (c->server_)
    if (auto h = c->hooks_.lock()) {
      auto it = c->streams_.find(s->id_);
      if (it != c->streams_.end()) h->on_request(it->second);
    }
  return 0;
}

int Callbacks::h3_end_stream(nghttp3_conn*, std::int64_t, void*, void* sud) {
  if (auto* s = st(sud)) {
    s->in_eof_ = true;
    s->wake_readers();
  }
  return 0;
}

int Callbacks::h3_stop_sending(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* ud,
                               void*) {
  auto* c = self(ud);
  if (ngtcp2_conn_shutdown_stream_read(c->conn_, id, code) != 0)
    return NGHTTP3_ERR_CALLBACK_FAILURE;
  return 0;
}

int Callbacks::h3_reset_stream(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* ud,
                               void*) {
  auto* c = self(ud);
  if (ngtcp2_conn_shutdown_stream_write(c->conn_, id, code) != 0)
    return NGHTTP3_ERR_CALLBACK_FAILURE;
  return 0;
}

int Callbacks::h3_shutdown(nghttp3_conn*, std::int64_t, void* ud) {
  self(ud)->goaway_ = true;
  return 0;
}

nghttp3_ssize Callbacks::read_data(nghttp3_conn*, std::int64_t, nghttp3_vec* vec,
                                   std::size_t veccnt, std::uint32_t* pflags, void*, void* sud) {
  auto* s = st(sud);
  if (!s) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    return 0;
  }
  std::size_t n = 0;
  while (s->out_given_ < s->out_.size() && n < veccnt) {
    auto& chunk = s->out_[s->out_given_];
    vec[n].base = reinterpret_cast<std::uint8_t*>(chunk.data());
    vec[n].len = chunk.size();
    ++n;
    ++s->out_given_;
  }
  if (s->out_given_ == s->out_.size() && s->out_fin_) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
  } else if (n == 0) {
    s->body_blocked_ = true;
    return NGHTTP3_ERR_WOULDBLOCK;
  }
  return static_cast<nghttp3_ssize>(n);
}

namespace {
const nghttp3_data_reader kBodyReader{Callbacks::read_data};

// nghttp3's view of `head` (valid while `head` is).
std::vector<nghttp3_nv> to_nv(const Headers& head) {
  std::vector<nghttp3_nv> nva;
  nva.reserve(head.size());
  for (const auto& h : head)
    nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(h.name.data())),
                   reinterpret_cast<std::uint8_t*>(const_cast<char*>(h.value.data())),
                   h.name.size(), h.value.size(), NGHTTP3_NV_FLAG_NONE});
  return nva;
}

}  // namespace

void Connection::setup_h3() {
  if (h3_ || ngtcp2_conn_get_streams_uni_left(conn_) < 3) return;
  nghttp3_callbacks cb{};
  cb.acked_stream_data = Callbacks::h3_acked_stream_data;
  cb.stream_close = Callbacks::h3_stream_close;
  cb.recv_data = Callbacks::h3_recv_data;
  cb.deferred_consume = Callbacks::h3_deferred_consume;
  cb.begin_headers = Callbacks::h3_begin_headers;
  cb.recv_header = Callbacks::h3_recv_header;
  cb.end_headers = Callbacks::h3_end_headers;
  cb.stop_sending = Callbacks::h3_stop_sending;
  cb.end_stream = Callbacks::h3_end_stream;
  cb.reset_stream = Callbacks::h3_reset_stream;
  cb.shutdown = Callbacks::h3_shutdown;
  nghttp3_settings s;
  nghttp3_settings_default(&s);
  s.max_field_section_size = kMaxHead;
  s.qpack_max_dtable_capacity = 0;  // what quic-go does: static table only
  s.qpack_blocked_streams = 0;
  // Extended CONNECT (RFC 9220) for WebTransport sessions and CONNECT-UDP: the server announces
  // it.
  if ((cfg_.webtransport || cfg_.datagrams) && server_) s.enable_connect_protocol = 1;
  int rv = server_ ? nghttp3_conn_server_new(&h3_, &cb, &s, nghttp3_mem_default(), this)
                   : nghttp3_conn_client_new(&h3_, &cb, &s, nghttp3_mem_default(), this);
  if (rv != 0) {
    h3_ = nullptr;
    return;
  }
  if (server_) {
    const auto* params = ngtcp2_conn_get_local_transport_params(conn_);
    nghttp3_conn_set_max_client_streams_bidi(h3_, params->initial_max_streams_bidi);
  }
  std::int64_t ctrl = -1, qenc = -1, qdec = -1;
  if (ngtcp2_conn_open_uni_stream(conn_, &ctrl, nullptr) != 0 ||
      nghttp3_conn_bind_control_stream(h3_, ctrl) != 0 ||
      ngtcp2_conn_open_uni_stream(conn_, &qenc, nullptr) != 0 ||
      ngtcp2_conn_open_uni_stream(conn_, &qdec, nullptr) != 0 ||
      nghttp3_conn_bind_qpack_streams(h3_, qenc, qdec) != 0) {
    nghttp3_conn_del(h3_);
    h3_ = nullptr;
    return;
  }
  ctrl_id_ = ctrl;
}

std::int64_t Connection::open_bidi(error_code& ec) {
  ec = {};
  if (closed_ || goaway_ || !h3_) {
    ec = asio::error::connection_aborted;
    return -1;
  }
  std::int64_t id = -1;
  int rv = ngtcp2_conn_open_bidi_stream(conn_, &id, nullptr);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) {
    ec = asio::error::connection_refused;
    return -1;
  }
  if (rv != 0) {
    ec = asio::error::connection_aborted;
    return -1;
  }
  return id;
}

std::shared_ptr<RequestStream> Connection::open_request(const Headers& head, bool body,
                                                        error_code& ec) {
  std::int64_t id = open_bidi(ec);
  if (id < 0) return nullptr;
  auto s = std::shared_ptr<RequestStream>(new RequestStream(shared_from_this(), id));
  auto nva = to_nv(head);
  if (!body) s->out_fin_ = true;
  int rv = nghttp3_conn_submit_request(h3_, id, nva.data(), nva.size(),
                                       body ? &kBodyReader : nullptr, s.get());
  if (rv != 0) {
    ngtcp2_conn_shutdown_stream(conn_, id, NGHTTP3_H3_INTERNAL_ERROR);
    ec = asio::error::connection_aborted;
    return nullptr;
  }
  s->responded_ = true;  // "sent its head"
  streams_[id] = s;
  schedule_flush();
  return s;
}

void Connection::respond(RequestStream& st, const Headers& head, error_code& ec) {
  if (closed_ || !h3_ || st.responded_) {
    ec = asio::error::connection_aborted;
    return;
  }
  auto nva = to_nv(head);
  if (nghttp3_conn_submit_response(h3_, st.id_, nva.data(), nva.size(), &kBodyReader) != 0) {
    ec = asio::error::connection_reset;
    return;
  }
  st.responded_ = true;
  schedule_flush();
}

void Connection::resume(RequestStream& st) {
  if (closed_ || !h3_) return;
  if (st.raw_) {
    queue_raw(st);
    return;
  }
  if (st.body_blocked_) {
    st.body_blocked_ = false;
    nghttp3_conn_resume_stream(h3_, st.id_);
  }
  schedule_flush();
}

void Connection::consume(std::int64_t id, std::size_t n) {
  if (closed_) return;
  ngtcp2_conn_extend_max_stream_offset(conn_, id, n);
  ngtcp2_conn_extend_max_offset(conn_, n);
  schedule_flush();
}

void Connection::reset_stream(std::int64_t id, std::uint64_t code) {
  if (closed_) return;
  ngtcp2_conn_shutdown_stream(conn_, id, code);
  schedule_flush();
}

void Connection::stop_reading(std::int64_t id) {
  if (closed_) return;
  if (h3_) nghttp3_conn_shutdown_stream_read(h3_, id);
  ngtcp2_conn_shutdown_stream_read(conn_, id, NGHTTP3_H3_NO_ERROR);
  schedule_flush();
}

// ---- as a byte Stream --------------------------------------------------------------------------

namespace {

class ByteStream final : public Stream {
 public:
  ByteStream(std::shared_ptr<RequestStream> st, std::function<void()> on_end)
      : st_(std::move(st)), on_end_(std::move(on_end)) {}
  ~ByteStream() override {
    if (!st_->done()) st_->reset();
    if (on_end_) on_end_();
  }

  asio::any_io_executor executor() override { return st_->executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    co_return co_await st_->read_some(buf, ec);
  }
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    co_await st_->write(std::string(static_cast<const char*>(buf.data()), buf.size()), ec);
    co_return ec ? 0 : buf.size();
  }
  awaitable<void> wait_readable(error_code& ec) override { co_await st_->wait_readable(ec); }
  awaitable<void> shutdown_write(error_code& ec) override {
    ec = {};
    st_->finish();
    co_return;
  }
  void close() override { st_->reset(); }
  std::string remote_address() const override { return st_->remote_address(); }
  std::string local_address() const override { return st_->local_address(); }
  const std::shared_ptr<RequestStream>& request() const { return st_; }

 private:
  std::shared_ptr<RequestStream> st_;
  std::function<void()> on_end_;
};

}  // namespace

StreamPtr byte_stream(std::shared_ptr<RequestStream> st, std::function<void()> on_end) {
  return std::make_unique<ByteStream>(std::move(st), std::move(on_end));
}

bool is_byte_stream(Stream& s) { return dynamic_cast<ByteStream*>(&s) != nullptr; }

std::shared_ptr<RequestStream> request_of(Stream& s) {
  auto* b = dynamic_cast<ByteStream*>(&s);
  return b ? b->request() : nullptr;
}

}  // namespace gost::net::quic
