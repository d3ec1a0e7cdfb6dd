#include "net/http2.hpp"

#include <fmt/format.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include "core/buffer_pool.hpp"
#include "core/timeout.hpp"
#include "proto/ws.hpp"

namespace gost::net {

using TimePoint = asio::steady_timer::time_point;
using Clock = asio::steady_timer::clock_type;

namespace {
// Frames are serialised into one batch up to this size before it is written: few large writes.
constexpr std::size_t kWriteBatch = 256 * 1024;
// An idle session keeps no larger output buffer than this.
constexpr std::size_t kKeepOutput = 16 * 1024;
// Received DATA is appended to blocks of this size (fewer allocations for small chunks).
constexpr std::size_t kRecvBlock = 16 * 1024;
constexpr std::uint32_t kMaxWindow = (1u << 31) - 1;
}  // namespace

std::string_view h2_header(const H2Headers& h, std::string_view name) {
  for (const auto& f : h)
    if (f.name == name) return f.value;
  return {};
}

H2Headers h2_header_map(const config::Metadata& md, std::string_view where, std::string_view key) {
  const auto* v = md.find(key);
  if (!v) return {};
  if (!v->is_map()) throw config::ConfigError(fmt::format("{}: \"{}\" must be a map", where, key));
  H2Headers out;
  for (const auto& [name, value] : std::get<config::ValueMap>(v->v)) {
    std::string n = name, text = value.as_string();
    std::transform(n.begin(), n.end(), n.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    bool ok = !n.empty();
    for (unsigned char c : n)
      if (c <= 0x20 || c >= 0x7f || std::strchr("()<>@,;:\\\"/[]?={}", c)) ok = false;
    for (unsigned char c : text)
      if (c == '\r' || c == '\n' || c == 0) ok = false;
    if (!ok)
      throw config::ConfigError(
          fmt::format("{}: \"{}\": invalid header \"{}: {}\"", where, key, name, text));
    out.push_back({std::move(n), std::move(text)});
  }
  return out;
}

H2Headers h2_tunnel_request(std::string_view authority, std::string_view path, bool tls,
                            const H2Headers& extra) {
  H2Headers h;
  h.push_back({":authority", std::string(authority)});
  if (path.empty()) {
    h.push_back({":method", "CONNECT"});
  } else {
    h.push_back({":method", "GET"});
    h.push_back({":path", std::string(path)});
    h.push_back({":scheme", tls ? "https" : "http"});
  }
  bool has_ua = false, has_ae = false;
  for (const auto& f : extra) {
    has_ua |= f.name == "user-agent";
    has_ae |= f.name == "accept-encoding";
    h.push_back(f);
  }
  if (!has_ae) h.push_back({"accept-encoding", "gzip"});
  if (!has_ua) h.push_back({"user-agent", "Go-http-client/2.0"});
  return h;
}

std::string h2_date() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return proto::ws::http_date(std::chrono::duration_cast<std::chrono::seconds>(now).count());
}

Http2Config http2_config(const config::Metadata& md, std::string_view where) {
  Http2Config c;
  auto window = [&](std::string_view key, std::uint32_t& out) {
    auto v = md.get_int(key);
    if (!v) return;
    if (*v < 65535 || *v > kMaxWindow)
      throw config::ConfigError(
          fmt::format("{}: \"{}\" = {} must be between 65535 and {}", where, key, *v, kMaxWindow));
    out = static_cast<std::uint32_t>(*v);
  };
  window("http2.streamWindow", c.stream_window);
  window("http2.connectionWindow", c.connection_window);
  if (auto v = md.get_int("http2.maxConcurrentStreams")) {
    if (*v < 1 || *v > 100000)
      throw config::ConfigError(fmt::format(
          "{}: \"http2.maxConcurrentStreams\" = {} must be between 1 and 100000", where, *v));
    c.max_concurrent_streams = static_cast<std::uint32_t>(*v);
  }
  if (auto d = md.get_duration("http2.idleTimeout")) c.idle_timeout = *d;
  c.connection_window = std::max(c.connection_window, c.stream_window);
  return c;
}

// ---- per-stream state ---------------------------------------------------------------------------

struct Http2StreamState {
  Http2StreamState(asio::any_io_executor ex)
      : readable(ex, TimePoint::max()), writable(ex, TimePoint::max()) {}
  std::int32_t id = -1;
  H2Headers headers;
  std::size_t header_bytes = 0;
  bool headers_too_large = false;
  bool headers_done = false;  // request (server) / final response (client) head complete
  int status = 0;
  // receive side
  std::deque<std::string> chunks;
  std::size_t offset = 0;  // consumed bytes of chunks.front()
  std::size_t buffered = 0;
  bool remote_ended = false;     // END_STREAM received
  bool ended_with_head = false;  // ... on the head itself: an answer without a body
  bool body_seen = false;        // a DATA frame arrived
  // send side: the writer's buffer, borrowed while write_some() waits
  const char* out = nullptr;
  std::size_t out_size = 0, out_reserved = 0, out_sent = 0;
  bool end_requested = false;  // shutdown_write()
  bool local_ended = false;    // END_STREAM sent
  bool deferred = false;       // the data provider returned DEFERRED: needs resume_data
  bool has_body = false;       // a data provider is attached
  bool responded = false;      // server: response head submitted
  bool rst_after_end = false;  // server: RST_STREAM(NO_ERROR) once END_STREAM is sent
  // life
  bool closed = false;  // nghttp2 closed the stream
  std::uint32_t close_code = 0;
  bool detached = false;        // the Http2Stream is gone: received data is dropped
  bool timed_out = false;       // client: no response head in time
  H2Headers trailers;           // received after the head
  H2Headers trailers_out;       // sent in place of END_STREAM on DATA (set_trailers)
  asio::steady_timer readable;  // condition: data, END_STREAM, head, close
  asio::steady_timer writable;  // condition: the borrowed buffer was taken, close
};

// ---- nghttp2 callbacks --------------------------------------------------------------------------

struct Http2Callbacks {
  static Http2Session& self(void* ud) { return *static_cast<Http2Session*>(ud); }

  static Http2StreamState* find(Http2Session& s, std::int32_t id) {
    auto it = s.streams_.find(id);
    return it == s.streams_.end() ? nullptr : it->second.get();
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    auto& s = self(ud);
    if (!s.server_ || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
      return 0;
    auto st = std::make_shared<Http2StreamState>(s.conn_->executor());
    st->id = frame->hd.stream_id;
    s.streams_[st->id] = std::move(st);
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
    auto& s = self(ud);
    auto* st = find(s, frame->hd.stream_id);
    if (!st) return 0;
    if (st->headers_done) {
      // Trailers (gRPC's grpc-status), bounded together with the head.
      if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_HEADERS) return 0;
      st->header_bytes += namelen + valuelen + 32;
      if (st->header_bytes > s.cfg_.max_header_list) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      st->trailers.push_back({std::string(reinterpret_cast<const char*>(name), namelen),
                              std::string(reinterpret_cast<const char*>(value), valuelen)});
      return 0;
    }
    // RFC 9113 §6.5.2: the size of a header list counts 32 bytes per field.
    st->header_bytes += namelen + valuelen + 32;
    if (st->header_bytes > s.cfg_.max_header_list) {
      st->headers_too_large = true;
      st->headers.clear();
      return 0;
    }
    if (st->headers_too_large) return 0;
    st->headers.push_back({std::string(reinterpret_cast<const char*>(name), namelen),
                           std::string(reinterpret_cast<const char*>(value), valuelen)});
    return 0;
  }

  static int on_frame_recv(nghttp2_session* ng, const nghttp2_frame* frame, void* ud) {
    auto& s = self(ud);
    const auto& hd = frame->hd;
    bool control = false;
    switch (hd.type) {
      case NGHTTP2_SETTINGS:
        if (!(hd.flags & NGHTTP2_FLAG_ACK)) {
          control = s.peer_settings_;  // the first SETTINGS is the preface
          // The watchdog waits for the handshake deadline: keepalive starts now.
          if (!s.peer_settings_ && s.cfg_.ping_interval.count() > 0) s.watchdog_.cancel();
          if (!s.peer_settings_) s.settled_.cancel();
          s.peer_settings_ = true;
        }
        break;
      case NGHTTP2_PING:
        control = !(hd.flags & NGHTTP2_FLAG_ACK);
        break;
      case NGHTTP2_PRIORITY:
      case NGHTTP2_RST_STREAM:
      case NGHTTP2_WINDOW_UPDATE:
        control = true;
        break;
      case NGHTTP2_GOAWAY:
        s.goaway_ = true;
        break;
      case NGHTTP2_DATA:
        control = hd.length == 0 && !(hd.flags & NGHTTP2_FLAG_END_STREAM);
        break;
      default:
        break;
    }
    if (control && !s.control_frame()) {
      nghttp2_session_terminate_session(ng, NGHTTP2_ENHANCE_YOUR_CALM);
      return 0;
    }
    auto* st = find(s, hd.stream_id);
    if (!st) return 0;
    if (hd.type == NGHTTP2_HEADERS && !st->headers_done) {
      if (s.server_) {
        if (st->headers_too_large) {
          // RFC 9113 §10.5.1: 431 for a header list the server will not process.
          st->headers_done = true;
          st->rst_after_end = !(hd.flags & NGHTTP2_FLAG_END_STREAM);
          st->responded = true;
          nghttp2_nv nv[] = {
              {(uint8_t*)":status", (uint8_t*)"431", 7, 3, NGHTTP2_NV_FLAG_NONE},
              {(uint8_t*)"content-length", (uint8_t*)"0", 14, 1, NGHTTP2_NV_FLAG_NONE}};
          nghttp2_submit_response(ng, hd.stream_id, nv, 2, nullptr);
          st->detached = true;
        } else if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          st->headers_done = true;
          if (s.closing() || s.accept_queue_.size() >= s.cfg_.max_concurrent_streams) {
            st->detached = true;
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, hd.stream_id, NGHTTP2_REFUSED_STREAM);
            if (s.cfg_.on_refused) s.cfg_.on_refused(s.closing() ? "session closing" : "too many");
          } else {
            s.accept_queue_.push_back(s.streams_[hd.stream_id]);
            s.incoming_.cancel();
          }
        }
      } else {
        auto code = h2_header(st->headers, ":status");
        int status = 0;
        for (char c : code) status = c >= '0' && c <= '9' ? status * 10 + (c - '0') : -1000;
        if (status >= 100 && status < 200) {
          st->headers.clear();  // informational: the final head follows
          st->header_bytes = 0;
        } else {
          st->status = status;
          st->headers_done = true;
          st->readable.cancel();
        }
      }
    }
    if (hd.type == NGHTTP2_DATA) st->body_seen = true;
    if ((hd.type == NGHTTP2_HEADERS || hd.type == NGHTTP2_DATA) &&
        (hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      st->remote_ended = true;
      st->ended_with_head = hd.type == NGHTTP2_HEADERS && st->headers_done && !st->body_seen;
      st->readable.cancel();
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                           void* ud) {
    auto& s = self(ud);
    auto* st = find(s, id);
    if (!st || st->detached || st->remote_ended) {
      s.conn_consume_ += len;  // nobody will read it: give the window back at once
      return 0;
    }
    auto* p = reinterpret_cast<const char*>(data);
    if (st->chunks.empty() || st->chunks.back().capacity() - st->chunks.back().size() < len) {
      st->chunks.emplace_back();
      st->chunks.back().reserve(std::max(kRecvBlock, len));
    }
    st->chunks.back().append(p, len);
    st->buffered += len;
    st->readable.cancel();
    return 0;
  }

  static int on_frame_send(nghttp2_session* ng, const nghttp2_frame* frame, void* ud) {
    auto& s = self(ud);
    if (frame->hd.type == NGHTTP2_GOAWAY) s.goaway_ = true;
    if (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
    auto* st = find(s, frame->hd.stream_id);
    if (!st) return 0;
    st->local_ended = true;
    if (st->rst_after_end && !st->remote_ended)
      nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
    return 0;
  }

  static int on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int error, void* ud) {
    auto& s = self(ud);
    if (error == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED ||
        error == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE)
      s.goaway_ = true;
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t code, void* ud) {
    self(ud).stream_closed(id, code);
    return 0;
  }

  // The end of a body: END_STREAM on this DATA frame, or the trailers carry it.
  static void end_body(nghttp2_session* ng, Http2StreamState* st, uint32_t* flags) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->trailers_out.empty()) return;
    std::vector<nghttp2_nv> nva;
    for (const auto& h : st->trailers_out)
      nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(h.name.data())),
                     reinterpret_cast<uint8_t*>(const_cast<char*>(h.value.data())), h.name.size(),
                     h.value.size(), NGHTTP2_NV_FLAG_NONE});
    if (nghttp2_submit_trailer(ng, st->id, nva.data(), nva.size()) == 0)
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  }

  static ssize_t read_data(nghttp2_session* ng, int32_t, uint8_t*, size_t length, uint32_t* flags,
                           nghttp2_data_source* source, void*) {
    auto* st = static_cast<Http2StreamState*>(source->ptr);
    std::size_t avail = st->out_size - st->out_reserved;
    if (avail > 0) {
      std::size_t n = std::min(length, avail);
      st->out_reserved += n;
      *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
      if (st->end_requested && st->out_reserved == st->out_size) end_body(ng, st, flags);
      return static_cast<ssize_t>(n);
    }
    if (st->end_requested) {
      end_body(ng, st, flags);
      return 0;
    }
    st->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }

  // NO_COPY: the DATA frame goes straight from the writer's buffer into the output batch.
  static int send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                       size_t length, nghttp2_data_source* source, void* ud) {
    auto& s = self(ud);
    auto* st = static_cast<Http2StreamState*>(source->ptr);
    if (!st->out || st->out_sent + length > st->out_reserved)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // the writer is gone: reset the stream
    s.out_.append(reinterpret_cast<const char*>(framehd), 9);
    if (frame->data.padlen > 0) s.out_.push_back(static_cast<char>(frame->data.padlen - 1));
    s.out_.append(st->out + st->out_sent, length);
    if (frame->data.padlen > 1) s.out_.append(frame->data.padlen - 1, '\0');
    st->out_sent += length;
    if (st->out_sent == st->out_size) st->writable.cancel();
    return 0;
  }

  // Frames as large as the peer allows: fewer frame headers and callbacks per byte.
  static ssize_t read_length(nghttp2_session*, uint8_t, int32_t, int32_t session_window,
                             int32_t stream_window, uint32_t remote_max_frame, void*) {
    return std::min<ssize_t>({session_window, stream_window, remote_max_frame});
  }
};

namespace {

struct CallbacksHolder {
  nghttp2_session_callbacks* cb = nullptr;
  CallbacksHolder() {
    nghttp2_session_callbacks_new(&cb);
    using C = Http2Callbacks;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, C::on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, C::on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, C::on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, C::on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, C::on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, C::on_frame_not_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, C::on_stream_close);
    nghttp2_session_callbacks_set_send_data_callback(cb, C::send_data);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cb, C::read_length);
  }
  ~CallbacksHolder() { nghttp2_session_callbacks_del(cb); }
};

const nghttp2_session_callbacks* callbacks() {
  static const CallbacksHolder holder;
  return holder.cb;
}

nghttp2_nv make_nv(const H2Header& h) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(h.name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(h.value.data())), h.name.size(),
          h.value.size(), NGHTTP2_NV_FLAG_NONE};
}

bool cancelled(asio::cancellation_type t) { return t != asio::cancellation_type::none; }

}  // namespace

// ---- the stream ---------------------------------------------------------------------------------

Http2Stream::Http2Stream(std::shared_ptr<Http2Session> s, std::shared_ptr<Http2StreamState> st)
    : session_(std::move(s)), st_(std::move(st)) {}

Http2Stream::~Http2Stream() { close(); }

const H2Headers& Http2Stream::headers() const { return st_->headers; }
int Http2Stream::status() const { return st_->status; }
bool Http2Stream::head_received() const { return st_->headers_done; }
bool Http2Stream::ended_with_head() const { return st_->ended_with_head; }
const H2Headers& Http2Stream::trailers() const { return st_->trailers; }
void Http2Stream::set_trailers(H2Headers trailers) { st_->trailers_out = std::move(trailers); }

void Http2Stream::reset(std::uint32_t code) {
  auto& st = *st_;
  if (!closed_ && !st.closed && !session_->closed_) {
    nghttp2_submit_rst_stream(session_->ng_, NGHTTP2_FLAG_NONE, st.id, code);
    session_->kick();
  }
  close();
}
std::int32_t Http2Stream::id() const { return st_->id; }
asio::any_io_executor Http2Stream::executor() { return session_->conn_->executor(); }
std::string Http2Stream::remote_address() const { return session_->remote_address(); }
std::string Http2Stream::local_address() const { return session_->local_address(); }

void Http2Stream::respond(int status, const H2Headers& extra, bool end_stream) {
  auto& st = *st_;
  if (st.responded || st.closed || session_->closed_) return;
  st.responded = true;
  std::string code = std::to_string(status);
  std::vector<nghttp2_nv> nva;
  nva.reserve(extra.size() + 1);
  nva.push_back({(uint8_t*)":status", reinterpret_cast<uint8_t*>(code.data()), 7, code.size(),
                 NGHTTP2_NV_FLAG_NONE});
  for (const auto& h : extra) nva.push_back(make_nv(h));
  nghttp2_data_provider prd{};
  prd.source.ptr = &st;
  prd.read_callback = Http2Callbacks::read_data;
  if (end_stream) st.rst_after_end = !st.remote_ended;
  st.has_body = !end_stream;
  nghttp2_submit_response(session_->ng_, st.id, nva.data(), nva.size(),
                          end_stream ? nullptr : &prd);
  session_->kick();
}

std::size_t Http2Stream::take(asio::mutable_buffer buf) {
  auto& st = *st_;
  std::size_t n = 0;
  auto* out = static_cast<char*>(buf.data());
  while (n < buf.size() && !st.chunks.empty()) {
    const std::string& front = st.chunks.front();
    std::size_t k = std::min(buf.size() - n, front.size() - st.offset);
    std::memcpy(out + n, front.data() + st.offset, k);
    n += k;
    st.offset += k;
    if (st.offset == front.size()) {
      st.chunks.pop_front();
      st.offset = 0;
    }
  }
  st.buffered -= n;
  return n;
}

awaitable<std::size_t> Http2Stream::read_some(asio::mutable_buffer buf, error_code& ec) {
  ec = {};
  auto& st = *st_;
  for (;;) {
    if (closed_) {
      ec = asio::error::operation_aborted;
      co_return 0;
    }
    if (st.buffered > 0 && buf.size() > 0) {
      std::size_t n = take(buf);
      session_->consume(st.id, n);
      co_return n;
    }
    if (st.remote_ended || (st.closed && st.close_code == NGHTTP2_NO_ERROR)) {
      ec = asio::error::eof;
      co_return 0;
    }
    if (st.closed || session_->closed_) {
      ec = asio::error::connection_reset;
      co_return 0;
    }
    co_await st.readable.async_wait(use_nothrow);
    if (cancelled((co_await asio::this_coro::cancellation_state).cancelled())) {
      ec = asio::error::operation_aborted;
      co_return 0;
    }
  }
}

awaitable<void> Http2Stream::wait_readable(error_code& ec) {
  ec = {};
  auto& st = *st_;
  while (!closed_ && st.buffered == 0 && !st.remote_ended && !st.closed && !session_->closed_) {
    co_await st.readable.async_wait(use_nothrow);
    if (cancelled((co_await asio::this_coro::cancellation_state).cancelled())) {
      ec = asio::error::operation_aborted;
      co_return;
    }
  }
  if (closed_) ec = asio::error::operation_aborted;
}

awaitable<std::size_t> Http2Stream::write_some(asio::const_buffer buf, error_code& ec) {
  ec = {};
  auto& st = *st_;
  if (closed_ || st.closed || st.end_requested || st.local_ended || !st.has_body ||
      session_->closed_) {
    ec = asio::error::broken_pipe;
    co_return 0;
  }
  if (buf.size() == 0) co_return 0;
  st.out = static_cast<const char*>(buf.data());
  st.out_size = buf.size();
  st.out_reserved = st.out_sent = 0;
  session_->resume(st);
  bool aborted = false;
  while (st.out_sent < st.out_size && !st.closed && !session_->closed_ && !closed_) {
    co_await st.writable.async_wait(use_nothrow);
    if (cancelled((co_await asio::this_coro::cancellation_state).cancelled())) {
      aborted = true;
      break;
    }
  }
  std::size_t n = st.out_sent;
  bool complete = n == st.out_size;
  // The buffer is the caller's: never touched again once we return.
  st.out = nullptr;
  st.out_size = st.out_reserved = st.out_sent = 0;
  if (complete) co_return n;
  // Bytes already in frames count as written; a reset stream is an error.
  if (aborted) {
    ec = asio::error::operation_aborted;
    close();
  } else {
    ec = asio::error::broken_pipe;
  }
  co_return n > 0 && !aborted ? n : 0;
}

awaitable<void> Http2Stream::shutdown_write(error_code& ec) {
  ec = {};
  auto& st = *st_;
  if (closed_ || st.closed || st.end_requested || st.local_ended) co_return;
  if (!st.has_body) {
    ec = asio::error::broken_pipe;
    co_return;
  }
  st.end_requested = true;
  session_->resume(st);
}

void Http2Stream::close() {
  if (closed_) return;
  closed_ = true;
  auto& st = *st_;
  auto& s = *session_;
  st.detached = true;
  if (st.buffered > 0) {
    s.consume(st.id, st.buffered);
    st.chunks.clear();
    st.buffered = 0;
    st.offset = 0;
  }
  st.out = nullptr;
  st.out_size = st.out_reserved = st.out_sent = 0;
  if (!st.closed && !s.closed_) {
    if (!s.server_) {
      // Go's client closes both bodies: RST_STREAM(CANCEL), the normal end of a GOST tunnel.
      if (!(st.local_ended && st.remote_ended))
        nghttp2_submit_rst_stream(s.ng_, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_CANCEL);
    } else if (!st.responded) {
      nghttp2_submit_rst_stream(s.ng_, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_CANCEL);
    } else if (!st.local_ended && st.has_body && !st.end_requested) {
      // Go's server ends the response when the handler returns, then resets a request body
      // that is still open with NO_ERROR.
      st.end_requested = true;
      st.rst_after_end = true;
      s.resume(st);
    } else if (st.local_ended && !st.remote_ended) {
      nghttp2_submit_rst_stream(s.ng_, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_NO_ERROR);
    } else {
      st.rst_after_end = true;
    }
    s.kick();
  }
  st.readable.cancel();
  st.writable.cancel();
}

// ---- the session --------------------------------------------------------------------------------

Http2Session::Http2Session(StreamPtr conn, Http2Config cfg, bool server)
    : conn_(std::move(conn)),
      cfg_(cfg),
      server_(server),
      wake_(conn_->executor(), TimePoint::max()),
      incoming_(conn_->executor(), TimePoint::max()),
      settled_(conn_->executor(), TimePoint::max()),
      done_(conn_->executor(), TimePoint::max()),
      watchdog_(conn_->executor()) {
  cfg_.stream_window = std::clamp<std::uint32_t>(cfg_.stream_window, 65535, kMaxWindow);
  cfg_.connection_window = std::clamp<std::uint32_t>(cfg_.connection_window, 65535, kMaxWindow);
  cfg_.max_frame_size = std::clamp<std::uint32_t>(cfg_.max_frame_size, 16384, (1 << 24) - 1);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // The application consumes: the window is the back-pressure (see the header).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_no_closed_streams(opt, 1);
  // RFC 9113 §6.5.2 suggests 100 until the peer's SETTINGS arrive.
  nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
  nghttp2_option_set_max_outbound_ack(opt, 1000);  // PING/SETTINGS flood not read by the peer
  nghttp2_option_set_max_settings(opt, 32);
  int rv = server ? nghttp2_session_server_new2(&ng_, callbacks(), this, opt)
                  : nghttp2_session_client_new2(&ng_, callbacks(), this, opt);
  nghttp2_option_del(opt);
  if (rv != 0) throw system_error(asio::error::no_memory, "http2 session");
  std::vector<nghttp2_settings_entry> iv;
  if (server) {
    iv.push_back({NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg_.max_concurrent_streams});
  } else {
    iv.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  }
  iv.push_back({NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg_.stream_window});
  iv.push_back({NGHTTP2_SETTINGS_MAX_FRAME_SIZE, cfg_.max_frame_size});
  iv.push_back({NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg_.max_header_list});
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
  nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(cfg_.connection_window));
  started_ = idle_since_ = last_recv_ = Clock::now();
}

Http2Session::~Http2Session() {
  close();
  nghttp2_session_del(ng_);
}

std::shared_ptr<Http2Session> Http2Session::server(StreamPtr conn, Http2Config cfg) {
  std::shared_ptr<Http2Session> s(new Http2Session(std::move(conn), cfg, true));
  s->start();
  return s;
}

std::shared_ptr<Http2Session> Http2Session::client(StreamPtr conn, Http2Config cfg) {
  std::shared_ptr<Http2Session> s(new Http2Session(std::move(conn), cfg, false));
  s->start();
  return s;
}

std::shared_ptr<Http2Session> Http2Session::server_upgrade(StreamPtr conn, Http2Config cfg,
                                                           std::string_view settings,
                                                           H2Headers request, bool head_request) {
  std::shared_ptr<Http2Session> s(new Http2Session(std::move(conn), cfg, true));
  if (nghttp2_session_upgrade2(s->ng_, reinterpret_cast<const uint8_t*>(settings.data()),
                               settings.size(), head_request ? 1 : 0, nullptr) != 0)
    return nullptr;
  auto st = std::make_shared<Http2StreamState>(s->conn_->executor());
  st->id = 1;
  st->headers = std::move(request);
  st->headers_done = true;
  st->remote_ended = true;  // the HTTP/1.1 request was the whole request
  s->streams_[1] = st;
  s->accept_queue_.push_back(std::move(st));
  s->start();
  return s;
}

void Http2Session::start() {
  auto ex = conn_->executor();
  auto keep = [self = shared_from_this()](std::exception_ptr) {};
  asio::co_spawn(ex, read_loop(), keep);
  asio::co_spawn(ex, write_loop(), keep);
  asio::co_spawn(ex, watchdog(), keep);
}

std::string Http2Session::remote_address() const { return conn_->remote_address(); }
std::string Http2Session::local_address() const { return conn_->local_address(); }

void Http2Session::kick() { wake_.cancel(); }

void Http2Session::consume(std::int32_t id, std::size_t n) {
  if (closed_ || n == 0) return;
  // Counts for the connection, and for the stream while nghttp2 still has it.
  nghttp2_session_consume(ng_, id, n);
  kick();
}

void Http2Session::resume(Http2StreamState& st) {
  if (closed_) return;
  if (st.deferred) {
    st.deferred = false;
    nghttp2_session_resume_data(ng_, st.id);
  }
  kick();
}

bool Http2Session::control_frame() {
  auto now = Clock::now();
  if (now - control_window_ >= std::chrono::seconds(1)) {
    control_window_ = now;
    control_frames_ = 0;
  }
  return ++control_frames_ <= cfg_.max_control_frames;
}

void Http2Session::stream_closed(std::int32_t id, std::uint32_t code) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  auto st = std::move(it->second);
  streams_.erase(it);
  st->closed = true;
  st->close_code = code;
  if (st->detached && st->buffered > 0) {
    conn_consume_ += st->buffered;
    st->chunks.clear();
    st->buffered = 0;
  }
  st->readable.cancel();
  st->writable.cancel();
  std::erase(accept_queue_, st);
  if (streams_.empty()) {
    idle_since_ = Clock::now();
    if (close_when_idle_) nghttp2_session_terminate_session(ng_, NGHTTP2_NO_ERROR);
  }
}

void Http2Session::close_when_idle() {
  close_when_idle_ = true;
  if (streams_.empty() && !closed_) {
    nghttp2_session_terminate_session(ng_, NGHTTP2_NO_ERROR);
    kick();
  }
}

void Http2Session::shutdown() {
  if (closed_ || goaway_) return;
  goaway_ = true;
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  close_when_idle_ = true;
  if (streams_.empty()) nghttp2_session_terminate_session(ng_, NGHTTP2_NO_ERROR);
  kick();
}

void Http2Session::close() {
  if (closed_) return;
  closed_ = true;
  if (conn_) conn_->close();
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, st] : streams) {
    st->closed = true;
    st->close_code = NGHTTP2_CANCEL;
    st->readable.cancel();
    st->writable.cancel();
  }
  accept_queue_.clear();
  wake_.cancel();
  incoming_.cancel();
  settled_.cancel();
  done_.cancel();
  watchdog_.cancel();
}

awaitable<bool> Http2Session::wait_peer_settings() {
  while (!peer_settings_ && !closed_) co_await settled_.async_wait(use_nothrow);
  co_return peer_settings_ && !closed_;
}

awaitable<void> Http2Session::wait_closed() {
  while (!closed_) co_await done_.async_wait(use_nothrow);
}

bool Http2Session::can_open() const {
  if (closing()) return false;
  auto limit = std::min<std::uint32_t>(
      cfg_.max_concurrent_streams,
      nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
  return streams_.size() < limit;
}

awaitable<Http2StreamPtr> Http2Session::accept_stream(error_code& ec) {
  ec = {};
  while (accept_queue_.empty() && !closed_) co_await incoming_.async_wait(use_nothrow);
  if (accept_queue_.empty()) {
    ec = asio::error::connection_reset;
    co_return nullptr;
  }
  auto st = std::move(accept_queue_.front());
  accept_queue_.pop_front();
  co_return std::make_unique<Http2Stream>(shared_from_this(), std::move(st));
}

Http2StreamPtr Http2Session::start_stream(const H2Headers& request, error_code& ec) {
  ec = {};
  if (server_ || closing()) {
    ec = asio::error::broken_pipe;
    return nullptr;
  }
  auto st = std::make_shared<Http2StreamState>(conn_->executor());
  std::vector<nghttp2_nv> nva;
  nva.reserve(request.size());
  for (const auto& h : request) nva.push_back(make_nv(h));
  nghttp2_data_provider prd{};
  prd.source.ptr = st.get();
  prd.read_callback = Http2Callbacks::read_data;
  std::int32_t id = nghttp2_submit_request(ng_, nullptr, nva.data(), nva.size(), &prd, nullptr);
  if (id < 0) {
    if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) goaway_ = true;
    ec = asio::error::broken_pipe;
    return nullptr;
  }
  st->id = id;
  st->has_body = true;
  streams_[id] = st;
  kick();
  return std::make_unique<Http2Stream>(shared_from_this(), std::move(st));
}

awaitable<Http2StreamPtr> Http2Session::open_stream(const H2Headers& request, error_code& ec) {
  auto stream = start_stream(request, ec);
  if (!stream) co_return nullptr;
  auto st = streams_[stream->id()];  // nothing has run since it was submitted
  {
    Deadline deadline(conn_->executor(), cfg_.response_timeout, [st] {
      st->timed_out = true;
      st->readable.cancel();
    });
    while (!st->headers_done && !st->closed && !closed_ && !st->timed_out)
      co_await st->readable.async_wait(use_nothrow);
  }
  if (!st->headers_done) {
    ec = st->timed_out                              ? asio::error::timed_out
         : closed_                                  ? asio::error::connection_reset
         : st->close_code == NGHTTP2_REFUSED_STREAM ? asio::error::connection_refused
                                                    : asio::error::connection_reset;
    co_return nullptr;  // the stream's destructor resets it
  }
  co_return stream;
}

bool Http2Session::fill_output() {
  while (out_.size() < kWriteBatch) {
    std::size_t before = out_.size();
    const uint8_t* p = nullptr;
    ssize_t n = nghttp2_session_mem_send(ng_, &p);
    if (n < 0) return false;
    if (n > 0)
      out_.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    else if (out_.size() == before)
      break;  // nothing to send (0 also follows a NO_COPY frame appended by its callback)
  }
  return true;
}

awaitable<void> Http2Session::write_loop() {
  error_code ec;
  while (!closed_) {
    if (!fill_output()) break;
    if (out_.empty()) {
      if (!nghttp2_session_want_read(ng_) && !nghttp2_session_want_write(ng_)) break;
      if (out_.capacity() > kKeepOutput) std::string().swap(out_);
      co_await wake_.async_wait(use_nothrow);
      continue;
    }
    co_await write_all(*conn_, asio::buffer(out_), ec);
    if (ec) break;
    out_.clear();
  }
  close();
}

awaitable<void> Http2Session::read_loop() {
  error_code ec;
  while (!closed_) {
    co_await conn_->wait_readable(ec);
    if (ec || closed_) break;
    {
      RelayBuffer buf;  // held only while bytes are being processed
      std::size_t n = co_await conn_->read_some(asio::buffer(buf.data(), buf.size()), ec);
      if (ec || closed_) break;
      if (cfg_.ping_interval.count() > 0) last_recv_ = Clock::now();
      ssize_t rv = nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(buf.data()), n);
      if (conn_consume_ > 0 && !closed_) {
        nghttp2_session_consume_connection(ng_, conn_consume_);
        conn_consume_ = 0;
      }
      if (rv < 0) {
        // Bad preface, flood, ...: nghttp2 may have queued a GOAWAY; the connection ends.
        nghttp2_session_terminate_session(
            ng_, rv == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
        kick();
        co_return;
      }
    }
    kick();
    // After a GOAWAY both ways nghttp2 reads no more: the write loop ends the session once the
    // last frames are out.
    if (!nghttp2_session_want_read(ng_)) co_return;
  }
  close();
}

awaitable<void> Http2Session::watchdog() {
  while (!closed_) {
    auto now = Clock::now();
    TimePoint next = TimePoint::max();
    if (!peer_settings_ && cfg_.handshake_timeout.count() > 0) {
      auto d = started_ + std::chrono::duration_cast<Clock::duration>(cfg_.handshake_timeout);
      if (now >= d) break;
      next = d;
    } else {
      if (cfg_.idle_timeout.count() > 0) {
        auto idle = std::chrono::duration_cast<Clock::duration>(cfg_.idle_timeout);
        if (streams_.empty() && now >= idle_since_ + idle) {
          shutdown();
          co_return;
        }
        next = streams_.empty() ? idle_since_ + idle : now + idle;
      }
      if (cfg_.ping_interval.count() > 0) {
        auto interval = std::chrono::duration_cast<Clock::duration>(cfg_.ping_interval);
        auto timeout = std::chrono::duration_cast<Clock::duration>(cfg_.ping_timeout);
        if (ping_outstanding_ && last_recv_ > ping_sent_) ping_outstanding_ = false;
        if (ping_outstanding_) {
          if (now >= ping_sent_ + timeout) break;  // the peer is gone
          next = std::min(next, ping_sent_ + timeout);
        } else if (!streams_.empty() || cfg_.ping_without_streams) {
          if (now >= last_recv_ + interval) {
            nghttp2_submit_ping(ng_, NGHTTP2_FLAG_NONE, nullptr);
            ping_sent_ = now;
            ping_outstanding_ = true;
            kick();
            next = std::min(next, now + timeout);
          } else {
            next = std::min(next, last_recv_ + interval);
          }
        } else {
          next = std::min(next, now + interval);  // a stream may open meanwhile
        }
      }
    }
    if (next == TimePoint::max()) co_return;
    watchdog_.expires_at(next);
    co_await watchdog_.async_wait(use_nothrow);
  }
  close();
}

}  // namespace gost::net
