// A QUIC connection (server or client side): the ngtcp2 connection and its TLS session, the
// nghttp3 connection on top of it, its request streams, the send path and the timer. The
// definitions: quic_connection.cpp (setup, receiving, closing, the ngtcp2 callbacks),
// quic_connection_send.cpp (writing packets, the timer), quic_request_stream.cpp (HTTP/3).
#pragma once

#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "net/quic_internal.hpp"
#include "net/quic_udp_port.hpp"

namespace gost::net::quic {

struct ServerHooks;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::any_io_executor ex, bool server, std::shared_ptr<UdpPort> port, Config cfg,
             log::Logger log)
      : ex_(ex),
        server_(server),
        port_(std::move(port)),
        cfg_(cfg),
        log_(std::move(log)),
        timer_(ex),
        handshake_cond_(ex, asio::steady_timer::time_point::max()) {
    ref_.get_conn = [](ngtcp2_crypto_conn_ref* r) {
      return static_cast<Connection*>(r->user_data)->conn_;
    };
    ref_.user_data = this;
  }
  ~Connection() {
    if (h3_) nghttp3_conn_del(h3_);
    if (conn_) ngtcp2_conn_del(conn_);
    if (tls_) gnutls_deinit(tls_);
  }

  // Server side: a connection for the client Initial `hd` from `remote`; `odcid` after a Retry.
  bool init_server(const ngtcp2_pkt_hd& hd, const sockaddr_storage& remote, const ngtcp2_cid* odcid,
                   gnutls_certificate_credentials_t cred,
                   const std::array<std::uint8_t, 32>& secret, std::weak_ptr<ServerHooks> hooks,
                   bool require_client_cert);
  // Client side: starts the handshake to `remote` (the port's socket is connected to it).
  void init_client(const sockaddr_storage& remote, const ClientTls& tls,
                   const std::shared_ptr<Credentials>& cred);

  void on_datagram(const Datagram& d);
  void flush();
  void schedule_flush();
  // Ends the connection: CONNECTION_CLOSE (H3_NO_ERROR) unless `silent`; streams fail with `ec`.
  void close(error_code ec, bool silent = false);

  // A new bidirectional stream's ID; -1 with connection_refused (no stream credit now) or
  // connection_aborted (closing).
  std::int64_t open_bidi(error_code& ec);
  std::shared_ptr<RequestStream> open_request(const Headers& head, bool body, error_code& ec);
  void respond(RequestStream& st, const Headers& head, error_code& ec);
  void resume(RequestStream& st);
  void consume(std::int64_t id, std::size_t n);
  void reset_stream(std::int64_t id, std::uint64_t code = NGHTTP3_H3_REQUEST_CANCELLED);
  // STOP_SENDING (H3_NO_ERROR): the rest of the peer's body is not wanted (a complete answer).
  void stop_reading(std::int64_t id);

  // WebTransport (quic_webtransport.cpp, docs/PROTOCOLS.md "wt: wire").
  using OnWtStream = std::function<void(std::shared_ptr<RequestStream>)>;
  void accept_wt_session(RequestStream& connect, OnWtStream on_stream);
  std::shared_ptr<RequestStream> open_wt_stream(std::int64_t session, error_code& ec);
  // A bidirectional stream of raw bytes starting with `first` (tests: any preamble at all).
  std::shared_ptr<RequestStream> open_raw_stream(std::string first, std::int64_t session,
                                                 error_code& ec);

  // HTTP/3 datagrams (Config::datagrams): `payload` (context ID and data) of request stream `id`
  // queued as a QUIC DATAGRAM frame; false when the peer takes none or it does not fit a packet.
  bool send_h3_datagram(std::int64_t id, std::string_view payload);

  // When the last request stream ended (or the connection began); max() while one is open.
  Clock::time_point idle_since() const {
    return streams_.empty() ? idle_since_ : Clock::time_point::max();
  }
  bool handshake_done() const { return handshake_done_; }
  bool closed() const { return closed_; }
  bool goaway() const { return goaway_; }
  bool can_open() const {
    return handshake_done_ && !closed_ && !goaway_ && conn_ &&
           ngtcp2_conn_get_streams_bidi_left(conn_) > 0;
  }
  awaitable<void> wait_handshake(error_code& ec);
  const Config& config() const { return cfg_; }
  std::string remote_text() const { return sockaddr_text(remote_); }
  std::string local_text() const { return sockaddr_text(port_->local); }
  asio::any_io_executor executor() const { return ex_; }
  bool dirty = false;  // server: in the receive batch's flush list
  error_code close_reason() const { return close_ec_; }

 private:
  friend struct Callbacks;
  friend class RequestStream;
  void setup_h3();
  void fatal(int liberr);
  void send_connection_close(const ngtcp2_connection_close_error& ccerr);
  void fatal_h3(int h3err);
  void send_batch(const std::uint8_t* data, std::size_t len, std::size_t seg, unsigned ecn);
  void arm_timer();
  void on_timer();
  // After a flush that sent `sent` bytes (`more`: it stopped at its send quantum).
  void pace(ngtcp2_tstamp ts, std::size_t sent, bool more);
  static constexpr std::chrono::nanoseconds kMinPacingDelay = std::chrono::milliseconds(1);
  void finish_close(error_code ec);
  void fail_streams(error_code ec);
  void on_send_ready();
  // nghttp3 reads `data` of stream `id`; its framing bytes are consumed at once (its body bytes
  // as the application reads them). An nghttp3 error code, or 0.
  int feed_h3(std::int64_t id, const std::uint8_t* data, std::size_t len, bool fin);
  // WebTransport: stream data that is not HTTP/3's (a WebTransport stream, or the start of a
  // new peer stream, whose first varint decides). True when handled; `rv` is the callback's
  // result.
  bool route_raw(std::int64_t id, std::uint32_t flags, std::uint64_t offset,
                 const std::uint8_t* data, std::size_t len, int& rv);
  void reject_raw(std::int64_t id, std::size_t consumed, std::uint64_t code);
  void deliver_raw(RequestStream& st, const std::uint8_t* data, std::size_t len, bool fin);
  void raw_closed(std::int64_t id, std::uint64_t code, bool app_code);
  void raw_acked(RequestStream& st, std::uint64_t len);
  void queue_raw(RequestStream& st);    // enqueue_raw + a flush
  void enqueue_raw(RequestStream& st);  // into raw_send_ when it has something to send
  void end_wt_session(std::int64_t id);
  // The control stream with the WebTransport SETTINGS added (nghttp3 0.8 cannot send them): what
  // nghttp3 writes on it is taken here (and acknowledged to nghttp3 at once), patched, and sent
  // from ctrl_out_.
  void take_control(const nghttp3_vec* vec, std::size_t n);
  // The control stream is ours to patch: WebTransport or HTTP/3 datagram SETTINGS to add.
  bool patch_control() const { return cfg_.webtransport || cfg_.datagrams; }
  // A QUIC DATAGRAM frame received: an HTTP/3 datagram for the request stream it names.
  void on_h3_datagram(const std::uint8_t* data, std::size_t len);
  std::size_t control_vec(nghttp3_vec* vec, std::size_t max) const;
  // The next WebTransport stream with something to send (null: none).
  RequestStream* next_raw();
  std::size_t raw_vec(RequestStream& st, nghttp3_vec* vec, std::size_t max, int& fin) const;
  RequestStream* stream_of(std::int64_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  asio::any_io_executor ex_;
  bool server_;
  std::shared_ptr<UdpPort> port_;
  Config cfg_;
  log::Logger log_;
  ngtcp2_conn* conn_ = nullptr;
  nghttp3_conn* h3_ = nullptr;
  gnutls_session_t tls_ = nullptr;
  ngtcp2_crypto_conn_ref ref_{};
  sockaddr_storage remote_{};
  std::unordered_map<std::int64_t, std::shared_ptr<RequestStream>> streams_;
  Clock::time_point idle_since_ = Clock::now();
  asio::steady_timer timer_;
  ngtcp2_tstamp armed_ = UINT64_MAX;
  std::size_t unpaced_ = 0;  // bytes sent that ngtcp2's pacer was not told about yet (pace())
  asio::steady_timer handshake_cond_;
  bool handshake_done_ = false;
  bool closed_ = false;
  bool goaway_ = false;
  bool flush_posted_ = false;
  bool blocked_ = false;   // the socket buffer is full: waiting for it to drain
  bool read_any_ = false;  // a packet was processed (before that, errors are junk: silent drop)
  std::string pending_;    // the batch that did not fit into the socket buffer
  std::size_t pending_seg_ = 0;
  unsigned pending_ecn_ = 0;
  error_code close_ec_;
  std::weak_ptr<ServerHooks> hooks_;
  std::vector<std::string> cids_;  // server: our connection IDs in the hooks' table
  std::array<std::uint8_t, 32> secret_{};
  std::uint64_t h3_error_ = 0;
  // WebTransport
  std::unordered_map<std::int64_t, std::string> wt_pending_;  // peer streams: preamble so far
  std::unordered_map<std::int64_t, OnWtStream> wt_sessions_;  // by CONNECT stream ID
  std::unordered_set<std::int64_t> wt_rejected_;  // peer streams reset by us, until closed
  std::deque<std::int64_t> raw_send_;             // WebTransport streams with something to send
  // Round robin over raw_send_ by kRawQuantum bytes: what the stream at its front has sent since
  // it got there (one packet each would hand every reader ~1.2 KB pieces, and its relay as many
  // small writes; a burst of tunnels ran 3.5x slower than MASQUE's nghttp3 streams).
  static constexpr std::size_t kRawQuantum = 64 * 1024;
  std::int64_t raw_turn_id_ = -1;
  std::size_t raw_turn_bytes_ = 0;
  std::int64_t ctrl_id_ = -1;
  std::deque<std::string> ctrl_out_;  // kept until the connection ends (a few dozen bytes)
  std::size_t ctrl_total_ = 0, ctrl_sent_ = 0;
  bool ctrl_patched_ = false, ctrl_blocked_ = false;
  // HTTP/3 datagrams to send (quarter stream ID, context ID, payload), bounded by bytes.
  std::deque<std::string> dgram_out_;
  std::size_t dgram_out_bytes_ = 0;
};

// What a server connection needs from its worker's server.
struct ServerHooks {
  virtual ~ServerHooks() = default;
  virtual void add_cid(const std::string& cid, std::shared_ptr<Connection> c) = 0;
  virtual void remove_cid(const std::string& cid) = 0;
  virtual void handshake_finished() = 0;  // one fewer handshake in progress
  virtual void removed(bool handshake_done) = 0;
  virtual void on_request(std::shared_ptr<RequestStream> st) = 0;
};

// The ngtcp2 callbacks (quic_connection.cpp) and the nghttp3 callbacks (quic_request_stream.cpp):
// user_data is the Connection, stream user data the RequestStream.
struct Callbacks {
  static Connection* self(void* user_data) { return static_cast<Connection*>(user_data); }

  // ngtcp2
  static int recv_stream_data(ngtcp2_conn*, std::uint32_t flags, std::int64_t id, std::uint64_t,
                              const std::uint8_t* data, std::size_t len, void* ud, void*);
  static int acked_stream_data_offset(ngtcp2_conn*, std::int64_t id, std::uint64_t,
                                      std::uint64_t len, void* ud, void*);
  static int stream_close(ngtcp2_conn* conn, std::uint32_t flags, std::int64_t id,
                          std::uint64_t code, void* ud, void*);
  static int stream_reset(ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t, void* ud,
                          void*);
  static int stream_stop_sending(ngtcp2_conn*, std::int64_t id, std::uint64_t, void* ud, void*);
  static int extend_max_remote_streams_bidi(ngtcp2_conn*, std::uint64_t max, void* ud);
  static int extend_max_stream_data(ngtcp2_conn*, std::int64_t id, std::uint64_t, void* ud, void*);
  static void rand(std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*);
  static int get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token,
                                   std::size_t cidlen, void* ud);
  static int remove_connection_id(ngtcp2_conn*, const ngtcp2_cid* cid, void* ud);
  static int handshake_completed(ngtcp2_conn*, void* ud);
  static int recv_datagram(ngtcp2_conn*, std::uint32_t, const std::uint8_t*, std::size_t, void*);

  // nghttp3
  static RequestStream* st(void* sud) { return static_cast<RequestStream*>(sud); }
  static int h3_acked_stream_data(nghttp3_conn*, std::int64_t, std::uint64_t len, void*, void* sud);
  static int h3_stream_close(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* ud,
                             void* sud);
  static int h3_recv_data(nghttp3_conn*, std::int64_t, const std::uint8_t* data, std::size_t len,
                          void*, void* sud);
  static int h3_deferred_consume(nghttp3_conn*, std::int64_t id, std::size_t n, void* ud, void*);
  static int h3_begin_headers(nghttp3_conn* h3, std::int64_t id, void* ud, void* sud);
  static int h3_recv_header(nghttp3_conn*, std::int64_t id, std::int32_t, nghttp3_rcbuf* name,
                            nghttp3_rcbuf* value, std::uint8_t, void* ud, void* sud);
  static int h3_end_headers(nghttp3_conn*, std::int64_t, int fin, void* ud, void* sud);
  static int h3_end_stream(nghttp3_conn*, std::int64_t, void*, void* sud);
  static int h3_stop_sending(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* ud, void*);
  static int h3_reset_stream(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* ud, void*);
  static int h3_shutdown(nghttp3_conn*, std::int64_t, void* ud);
  static nghttp3_ssize read_data(nghttp3_conn*, std::int64_t, nghttp3_vec* vec, std::size_t veccnt,
                                 std::uint32_t* pflags, void*, void* sud);
};

}  // namespace gost::net::quic
