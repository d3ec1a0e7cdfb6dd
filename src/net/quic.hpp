// The one QUIC + HTTP/3 engine (docs/ARCHITECTURE.md "Transports"): ngtcp2 (QUIC v1, TLS 1.3
// through GnuTLS, ALPN h3) and nghttp3, server and client roles. What it offers is HTTP/3 request
// streams (RequestStream): a head each way and a streamed body each way. PHT over HTTP/3 (the h3 /
// http3 listener and dialers) is net/pht_h3 on top of it.
//
// Threading: a connection and all its streams live on one worker. A server has one UDP socket
// per worker (SO_REUSEPORT: the kernel keeps a client's 4-tuple on one socket, so a connection's
// packets all arrive on its worker); a client connection has a connected UDP socket of its own.
//
// Data path: a receive loop reads datagrams (GRO-coalesced when the kernel offers it) and feeds
// them to their connection; packets are written in batches sent with one sendmsg (UDP GSO when the
// kernel offers it), paced by ngtcp2's send quantum and its timer, ECN marks as ngtcp2 asks.
// Flow control is the back-pressure: received body bytes count as consumed (and the peer's
// window grows) only when the application reads them, so a stream buffers at most its window and
// a connection at most the connection window; a writer waits while its unacknowledged bytes are
// above a bound. An idle stream holds no data buffer.
//
// Junk costs nothing: a datagram that is not a QUIC v1 packet of a known connection or a
// well-formed client Initial is dropped (an unknown version gets Version Negotiation), an Initial
// that does not decrypt is dropped with its connection, and past a number of handshakes in
// progress new clients must prove their address with a Retry first.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/model.hpp"
#include "core/log.hpp"
#include "core/stream.hpp"
#include "net/http2.hpp"

namespace gost::net::quic {

using Headers = H2Headers;  // HTTP/3 fields: lower-case names, pseudo-headers first

struct Config {
  // GOST's options (docs/PROTOCOLS.md "pht: HTTP/3"): keepalive + ttl, handshakeTimeout,
  // maxIdleTimeout, maxStreams.
  bool keepalive = false;
  std::chrono::nanoseconds keepalive_period = std::chrono::seconds(10);
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(5);
  std::chrono::nanoseconds idle_timeout = std::chrono::seconds(30);
  std::uint64_t max_streams = 100;  // bidirectional streams the peer may have open at once
  // Receive windows: one stream on loopback is not window-bound; the connection window bounds
  // what a connection may buffer for readers that do not read.
  std::uint64_t stream_window = 2 << 20;
  std::uint64_t connection_window = 16 << 20;
  // Body bytes of one stream written but not yet acknowledged by the peer; a writer waits beyond.
  std::size_t max_unacked = 1 << 20;
  // Server, per worker: connections at all, and handshakes in progress before Retry is required.
  std::size_t max_connections = 16384;
  std::size_t max_handshakes = 256;
  // WebTransport (docs/PROTOCOLS.md "wt: wire"): both sides announce H3_DATAGRAM and the
  // WebTransport SETTINGS of both draft generations and QUIC datagrams; a server also enables
  // extended CONNECT. Client-opened bidirectional streams that start with the WebTransport signal
  // are routed before nghttp3 sees them.
  bool webtransport = false;
  // HTTP/3 datagrams (RFC 9297, docs/PROTOCOLS.md "masque: wire"), for MASQUE's CONNECT-UDP:
  // both sides announce QUIC datagrams and H3_DATAGRAM; a server also enables extended CONNECT.
  // A request stream takes the datagrams naming it once it accept_datagrams().
  bool datagrams = false;
};

// The QUIC options of GOST's h3/http3 listener (`client` false) or dialer (`client` true: keepalive
// defaults to true). Throws config::ConfigError naming `where` for a bad value.
Config config_from(const config::Metadata& md, bool client, std::string_view where);

class Connection;
struct Callbacks;

// One HTTP/3 request: on a server the request head and body come in and the response goes out,
// on a client the other way round. Or, with Config::webtransport, one bidirectional WebTransport
// stream (webtransport_stream()): no head, the body is the stream's raw bytes (the signal and
// session ID preamble already taken off or put on). All calls on the connection's executor.
class RequestStream {
 public:
  ~RequestStream();
  std::int64_t id() const { return id_; }
  // The head received: the request (server) or the response (client, after wait_head()).
  const Headers& head() const { return head_; }
  std::string remote_address() const;
  std::string local_address() const;

  // Client: waits for the response head until `timeout`; timed_out, or the stream's error.
  awaitable<void> wait_head(std::chrono::nanoseconds timeout, error_code& ec);
  // Appends at most `max` body bytes to `out`; eof at the end of the body; timed_out when nothing
  // arrives for `idle` (<= 0: no limit).
  awaitable<void> read(std::string& out, std::size_t max, std::chrono::nanoseconds idle,
                       error_code& ec);
  // Server: sends the response head; the body follows through write() and finish().
  void respond(const Headers& head, error_code& ec);
  // Queues body bytes; waits while more than Config::max_unacked are unacknowledged.
  awaitable<void> write(std::string data, error_code& ec);
  // Ends the body after the queued bytes.
  void finish();
  // Server: a whole response of `status` with a date, as Go's net/http writes a status without a
  // body (content-length: 0) — and for 404 http.NotFound's "404 page not found".
  awaitable<void> reply(int status, error_code& ec);
  // Cancels the stream both ways (RESET_STREAM + STOP_SENDING, H3_REQUEST_CANCELLED).
  void reset();
  // Server: refuses a request it has not processed (H3_REQUEST_REJECTED, RFC 9114 §4.1.1), which
  // tells the client it may send it again; the client's wait_head/read then fail with try_again.
  void reject();
  // Server, after a complete answer: the rest of the request body is not wanted (STOP_SENDING
  // with H3_NO_ERROR, RFC 9114 §4.1); the stream then counts as done() once the answer is out.
  void stop_reading();
  // `gone` runs (once, on this executor) when the stream is reset by the peer or its connection
  // ends before the stream finished.
  void on_gone(std::function<void()> gone);

  // HTTP/3 datagrams (Config::datagrams) of this request stream. From accept_datagrams() on, the
  // peer's datagrams naming it are kept (at most kMaxDatagramQueue; more are dropped, as a full
  // socket buffer would) for take_datagram(), which gives one payload (context ID and data);
  // wait_readable() wakes for them too.
  static constexpr std::size_t kMaxDatagramQueue = 256;
  void accept_datagrams();
  std::optional<std::string> take_datagram();
  // Sends `payload` (context ID and data) as a QUIC DATAGRAM frame: false when it cannot go that
  // way (the peer takes no datagrams, or it is larger than a packet carries; the caller may send
  // it as a capsule on the stream instead). Dropped when the connection's queue is full.
  bool send_datagram(std::string_view payload);

  // Byte-stream access (a WebTransport stream): reads at most buf.size() bytes (0 and eof at the
  // end); waits until a read would not block, without a buffer.
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec);
  awaitable<void> wait_readable(error_code& ec);
  // read_some() would not wait: body bytes, the body's end or an error are there.
  bool body_ready() const { return in_off_ < in_.size() || in_eof_ || error_; }
  bool webtransport_stream() const { return raw_; }
  // Nothing left to lose: ended both ways, failed, or closed.
  bool done() const { return closed_ || error_ || (in_eof_ && out_fin_); }
  asio::any_io_executor executor() const;
  // Server, on an extended CONNECT answered with 2xx: this request stream is a WebTransport
  // session; the client's bidirectional streams naming it come to `on_stream` (on this executor)
  // until the request stream ends, which resets them.
  void accept_webtransport(std::function<void(std::shared_ptr<RequestStream>)> on_stream);
  // Client, on an extended CONNECT answered with 2xx: opens a bidirectional stream of this
  // WebTransport session. connection_refused when the stream limit is reached.
  std::shared_ptr<RequestStream> open_webtransport_stream(error_code& ec);

 private:
  friend class Connection;
  friend struct Callbacks;
  RequestStream(std::shared_ptr<Connection> conn, std::int64_t id);
  void wake_readers();
  void wake_writers();
  void fail(error_code ec);
  void cancel(std::uint64_t code);  // reset() and reject(): RESET_STREAM + STOP_SENDING with `code`

  std::shared_ptr<Connection> conn_;
  std::int64_t id_;
  Headers head_;
  std::size_t head_bytes_ = 0;
  bool head_done_ = false;
  bool bad_head_ = false;
  // Received body not yet read (its flow-control credit is returned as it is read).
  std::string in_;
  std::size_t in_off_ = 0;
  bool in_eof_ = false;
  // Body to send: chunks handed to nghttp3 stay alive until acknowledged.
  std::deque<std::string> out_;
  std::size_t out_given_ = 0;    // chunks of out_ handed to nghttp3
  std::size_t out_acked_ = 0;    // bytes of out_.front() acknowledged
  std::size_t out_unacked_ = 0;  // bytes queued or in flight
  bool out_fin_ = false;
  bool body_blocked_ = false;  // nghttp3 was told WOULDBLOCK
  bool responded_ = false;
  error_code error_;  // set once: the stream ended abnormally
  bool closed_ = false;
  std::function<void()> gone_;
  // A WebTransport stream: its bytes go to ngtcp2 directly (Connection::flush).
  bool raw_ = false;
  bool raw_queued_ = false;  // in the connection's send queue
  bool raw_fin_sent_ = false;
  std::int64_t session_ = -1;  // the WebTransport session (its CONNECT stream)
  std::size_t raw_sent_ = 0;   // bytes of out_ (from out_.front()'s start) handed to ngtcp2
  // HTTP/3 datagrams received for this stream (accept_datagrams())
  bool dgram_on_ = false;
  std::deque<std::string> dgram_in_;
  asio::steady_timer readable_;
  asio::steady_timer writable_;
};

// A request stream's body, or a WebTransport stream, as a byte Stream (a MASQUE CONNECT tunnel,
// a wt tunnel): reads and writes go to the body, shutdown_write() ends it (FIN), close() resets
// it, and so does dropping it before it ended both ways. `on_end` runs when it is dropped (a
// session pool's accounts).
StreamPtr byte_stream(std::shared_ptr<RequestStream> st, std::function<void()> on_end = {});
bool is_byte_stream(Stream& s);
// The request stream under a byte_stream() (null for any other Stream): the http3 listener
// hands a CONNECT to handler masque this way, which answers it and then relays its body.
std::shared_ptr<RequestStream> request_of(Stream& s);

// A client connection (one per worker and node in the dialer's pool).
class ClientSession {
 public:
  virtual ~ClientSession() = default;
  // Opens a request stream with `head` (a request body follows through write()/finish() when
  // `body`, else the request ends with its head). connection_refused when no stream can be opened
  // now (the stream limit), connection_aborted when the connection is closing.
  virtual std::shared_ptr<RequestStream> open(const Headers& head, bool body, error_code& ec) = 0;
  // With Config::webtransport: a bidirectional stream of raw bytes that starts with `first`, no
  // HTTP/3 framing (open_webtransport_stream() writes the WebTransport preamble; this is for
  // tests that need any other start).
  virtual std::shared_ptr<RequestStream> open_raw(std::string first, error_code& ec) = 0;
  // The pool's questions: it can take a request now; it will never again.
  virtual bool usable() const = 0;
  virtual bool closing() const = 0;
  // When its last request stream ended; time_point::max() while it has one.
  virtual std::chrono::steady_clock::time_point idle_since() const = 0;
  virtual void close() = 0;
};

struct ClientTls {
  std::string server_name;          // SNI ("" = none)
  std::string verify_name;          // name or IP the certificate must match ("" = no name check)
  bool verify = false;              // verify the chain (secure=true, or caFile)
  std::string ca_file;              // trust anchors instead of the system's
  std::string cert_file, key_file;  // client certificate
};
// The TLS settings of a dialer from the node's tls block (docs/PROTOCOLS.md
// "tls: server and client": no verification unless secure=true; caFile pins the chain; SNI =
// serverName, else the node host unless an IP literal).
ClientTls client_tls(const std::optional<config::TLS>& tls, const std::string& node_addr);

// Connects to `addr` ("host:port") and completes the QUIC handshake (ALPN h3) within the
// handshake timeout. Throws system_error.
awaitable<std::shared_ptr<ClientSession>> connect(std::string addr, const ClientTls& tls,
                                                  const Config& cfg, log::Logger log);

// An HTTP/3 server on one worker: a UDP socket bound to `addr` with SO_REUSEPORT. Every request
// whose head is complete goes to `on_request` (on this worker).
class Server {
 public:
  using OnRequest = std::function<void(std::shared_ptr<RequestStream>)>;
  Server(asio::io_context& ctx, const std::string& addr, const std::optional<config::TLS>& tls,
         const Config& cfg, OnRequest on_request, log::Logger log);
  ~Server();
  void start();
  void close();
  std::string bound_address() const;
  // Handles `data` as a datagram from `from` ("ip:port") as the receive loop would (fuzzing).
  void inject(const std::uint8_t* data, std::size_t len, const std::string& from);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace gost::net::quic
