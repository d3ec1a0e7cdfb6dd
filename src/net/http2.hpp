// The one HTTP/2 engine (docs/ARCHITECTURE.md "Transports"): an nghttp2 session over any
// Stream (TLS or plain TCP), server or client role; every HTTP/2 stream is a Stream. The http2
// proxy, the h2/h2c data channels and gRPC differ only in how a stream is opened and framed.
//
// Single-threaded: the session and all its streams live on the executor of the underlying stream
// (one worker). A read loop feeds nghttp2_session_mem_recv; a write loop serialises frames with
// nghttp2_session_mem_send into one batch buffer with one write in flight.
//
// Flow control is the back-pressure. Received DATA is queued per stream and counted as consumed
// (nghttp2_session_consume, automatic window updates off) only when the application reads it, so
// a stream buffers at most its window and a connection at most the connection window; nghttp2
// batches the WINDOW_UPDATEs (one per half window). Writing borrows the writer's buffer: the DATA
// frames are built straight from it (NGHTTP2_DATA_FLAG_NO_COPY) and write_some() completes once
// every byte is in the session's output batch — a flow-controlled peer holds the writer. An idle
// stream holds no data buffer.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "core/stream.hpp"
#include "net/tls.hpp"

typedef struct nghttp2_session nghttp2_session;

namespace gost::net {

struct H2Header {
  std::string name;  // lower case (HTTP/2)
  std::string value;
  bool operator==(const H2Header&) const = default;
};
using H2Headers = std::vector<H2Header>;

// The value of the first header called `name` ("" when absent).
std::string_view h2_header(const H2Headers& h, std::string_view name);

struct Http2Config {
  // Receive windows: one stream on loopback must not be window-bound, and the connection window
  // bounds the memory a session may buffer for readers that do not read (a stalled stream holds
  // at most its window of it).
  std::uint32_t stream_window = 4 << 20;
  std::uint32_t connection_window = 64 << 20;
  // Server: advertised SETTINGS_MAX_CONCURRENT_STREAMS. Client: streams opened on one session
  // before a pool opens another connection (the peer's own limit applies too).
  std::uint32_t max_concurrent_streams = 250;
  std::uint32_t max_frame_size = 64 << 10;   // largest frame we accept (advertised)
  std::uint32_t max_header_list = 64 << 10;  // request/response head, RFC 9113 §6.5.2 size
  std::uint32_t max_control_frames = 2000;   // PING/SETTINGS/RST/... per second, then GOAWAY
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(15);  // until peer SETTINGS
  std::chrono::nanoseconds idle_timeout{0};  // no open stream for this long → GOAWAY (0 = never)
  // Client: waiting for a response head (below the router's 15 s dial timeout, so that a pool
  // can drop a session whose server went away without a FIN).
  std::chrono::nanoseconds response_timeout = std::chrono::seconds(10);
  // PING keepalive (gRPC's, docs/PROTOCOLS.md "grpc: keepalive"): after `ping_interval` without
  // receiving anything, a PING; nothing received within `ping_timeout` after it ends the session.
  // Only while streams are open unless `ping_without_streams`. 0 = off.
  std::chrono::nanoseconds ping_interval{0};
  std::chrono::nanoseconds ping_timeout = std::chrono::seconds(20);
  bool ping_without_streams = false;
  // Server: where the streams it still refuses are reported (a GOAWAY raced them). A new stream
  // within SETTINGS_MAX_CONCURRENT_STREAMS is never refused: it waits for accept_stream(), which
  // bounds the queue by the advertised stream limit (nghttp2 refuses streams beyond it itself,
  // with REFUSED_STREAM, which clients retry).
  std::function<void(std::string_view why)> on_refused;
};

// Our (non-GOST) tuning options: http2.streamWindow, http2.connectionWindow,
// http2.maxConcurrentStreams, http2.idleTimeout. Throws config::ConfigError for bad values.
Http2Config http2_config(const config::Metadata& md, std::string_view where);

// The `header` metadata map as HTTP/2 fields (names lower-cased). Throws config::ConfigError for a
// value that is not a map or a name/value HTTP/2 forbids.
H2Headers h2_header_map(const config::Metadata& md, std::string_view where,
                        std::string_view key = "header");
// The request head of a GOST h2/h2c tunnel (docs/PROTOCOLS.md "h2: client"): a plain CONNECT to
// `authority`, or with `path` a GET of it (:scheme https for h2, http for h2c); then `extra` (the
// `header` map), accept-encoding and user-agent as Go's client adds them unless `extra` has them.
H2Headers h2_tunnel_request(std::string_view authority, std::string_view path, bool tls,
                            const H2Headers& extra);
// The current time as a `date` header value (IMF-fixdate).
std::string h2_date();

class Http2Session;
struct Http2StreamState;

// One HTTP/2 stream as a Stream: shutdown_write() = END_STREAM, close() = RST_STREAM (CANCEL
// from a client; a server ends its response first, then resets with NO_ERROR if the client still
// sends, as Go's server does). Reading after the peer's END_STREAM gives EOF; after a reset, an
// error (a NO_ERROR reset after all data counts as EOF).
class Http2Stream final : public Stream {
 public:
  Http2Stream(std::shared_ptr<Http2Session> s, std::shared_ptr<Http2StreamState> st);
  ~Http2Stream() override;

  // Server: the request head. Client: the response head (incl. ":status").
  const H2Headers& headers() const;
  std::string_view header(std::string_view name) const { return h2_header(headers(), name); }
  int status() const;  // client: the response status
  std::int32_t id() const;
  // Client: the response head has arrived (see Http2Session::start_stream).
  bool head_received() const;
  // The peer ended its side with the head itself (END_STREAM on HEADERS, no DATA before).
  bool ended_with_head() const;
  // Trailers received after the head (gRPC's grpc-status); empty when there were none.
  const H2Headers& trailers() const;
  // Ends the body with these trailers (a HEADERS frame with END_STREAM) instead of END_STREAM on
  // DATA, when it ends (shutdown_write(), or a server's close()). Replaces earlier ones.
  void set_trailers(H2Headers trailers);
  // Resets the stream with `code` (RST_STREAM), as close() does with its own code.
  void reset(std::uint32_t code);

  // Server: submits the response head (":status" first, then `extra`). With end_stream the
  // response has no body (error replies); otherwise the stream's writes are its body.
  void respond(int status, const H2Headers& extra, bool end_stream);

  asio::any_io_executor executor() override;
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override;
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override;
  awaitable<void> wait_readable(error_code& ec) override;
  awaitable<void> shutdown_write(error_code& ec) override;
  void close() override;
  std::string remote_address() const override;
  std::string local_address() const override;

 private:
  std::size_t take(asio::mutable_buffer buf);
  std::shared_ptr<Http2Session> session_;
  std::shared_ptr<Http2StreamState> st_;
  bool closed_ = false;
};
using Http2StreamPtr = std::unique_ptr<Http2Stream>;

class Http2Session : public std::enable_shared_from_this<Http2Session> {
 public:
  // Starts the session (read loop, write loop, watchdog) on `conn`'s executor. The client sends
  // the connection preface at once (prior knowledge).
  static std::shared_ptr<Http2Session> server(StreamPtr conn, Http2Config cfg);
  static std::shared_ptr<Http2Session> client(StreamPtr conn, Http2Config cfg);
  // Server after an HTTP/1.1 `Upgrade: h2c` answered with 101 (RFC 7540 §3.2): `settings` is the
  // decoded HTTP2-Settings payload, `request` the upgraded request, which becomes stream 1
  // (already complete: no body) waiting in accept_stream(). Null if the settings are invalid.
  static std::shared_ptr<Http2Session> server_upgrade(StreamPtr conn, Http2Config cfg,
                                                      std::string_view settings, H2Headers request,
                                                      bool head_request);
  ~Http2Session();
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // Server: the next complete request head (the stream has no response yet). Fails once the
  // session has ended.
  awaitable<Http2StreamPtr> accept_stream(error_code& ec);
  // Client: opens a stream with `request` (pseudo-headers first; the request has a body: its
  // writes) and waits for the final response head. A non-2xx answer is returned too (status()).
  awaitable<Http2StreamPtr> open_stream(const H2Headers& request, error_code& ec);
  // Client: opens a stream with `request` and returns it at once, without waiting for the
  // response (gRPC: the head may come only with the server's first message). Reads wait for
  // the head; head_received()/status() tell it. Null (ec set) if no stream can be opened.
  Http2StreamPtr start_stream(const H2Headers& request, error_code& ec);

  // Client: a new stream may be opened here (not closing, below both stream limits).
  bool can_open() const;
  // GOAWAY sent or received, or ended: no new streams.
  bool closing() const { return closed_ || goaway_; }
  bool closed() const { return closed_; }
  // Waits until the peer's first SETTINGS arrived (true) or the session ended (false; the
  // watchdog ends a session without SETTINGS after cfg.handshake_timeout).
  awaitable<bool> wait_peer_settings();
  std::size_t stream_count() const { return streams_.size(); }
  // When the last stream closed (or the session began); max() while one is open.
  std::chrono::steady_clock::time_point idle_since() const {
    return streams_.empty() ? idle_since_ : std::chrono::steady_clock::time_point::max();
  }
  // Ends the session (GOAWAY) once its last stream has closed (a session made for one tunnel).
  void close_when_idle();
  // Sends GOAWAY(NO_ERROR): streams already open go on, no new ones; the session ends with them.
  void shutdown();
  // Ends the session now: every stream fails.
  void close();
  awaitable<void> wait_closed();
  std::string remote_address() const;
  std::string local_address() const;

 private:
  friend class Http2Stream;
  friend struct Http2Callbacks;
  Http2Session(StreamPtr conn, Http2Config cfg, bool server);
  void start();
  awaitable<void> read_loop();
  awaitable<void> write_loop();
  awaitable<void> watchdog();
  void kick();  // something may be ready to send
  bool fill_output();
  void consume(std::int32_t id, std::size_t n);
  void resume(Http2StreamState& st);
  void stream_closed(std::int32_t id, std::uint32_t code);
  bool control_frame();  // counts one; false once the flood limit is passed

  StreamPtr conn_;
  Http2Config cfg_;
  bool server_;
  nghttp2_session* ng_ = nullptr;
  std::map<std::int32_t, std::shared_ptr<Http2StreamState>> streams_;
  std::deque<std::shared_ptr<Http2StreamState>> accept_queue_;
  std::string out_;  // the batch being serialised / written (one write in flight)
  bool closed_ = false;
  bool goaway_ = false;
  bool close_when_idle_ = false;
  bool peer_settings_ = false;
  std::size_t conn_consume_ = 0;  // bytes of dropped streams, counted consumed after mem_recv
  std::uint32_t control_frames_ = 0;
  asio::steady_timer::time_point control_window_{};
  asio::steady_timer::time_point idle_since_;
  asio::steady_timer::time_point last_recv_;  // keepalive: the last bytes read
  asio::steady_timer::time_point ping_sent_;
  bool ping_outstanding_ = false;
  asio::steady_timer::time_point started_;
  asio::steady_timer wake_;      // condition: output may be ready
  asio::steady_timer incoming_;  // condition: accept queue changed / session ended
  asio::steady_timer settled_;   // condition: peer SETTINGS arrived / session ended
  asio::steady_timer done_;      // condition: session ended
  asio::steady_timer watchdog_;
};

// The client session of the h2, grpc and http2 dialers over `s`: with `tls`, a TLS handshake
// first (within `tls_timeout`) in which the server must select ALPN h2 — errors name `where`.
awaitable<std::shared_ptr<Http2Session>> http2_client_session(StreamPtr s, TlsContextPtr tls,
                                                              std::chrono::nanoseconds tls_timeout,
                                                              Http2Config cfg, std::string where);

}  // namespace gost::net
