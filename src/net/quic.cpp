#include "net/quic.hpp"

#include <fmt/format.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <sys/socket.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "core/address.hpp"
#include "net/tls.hpp"
#include "net/udp.hpp"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace gost::net::quic {

using config::ConfigError;

// ---- options ----------------------------------------------------------------------------------

Config config_from(const config::Metadata& md, bool client, std::string_view where) {
  Config c;
  c.keepalive = client;
  auto bad = [&](std::string_view key) {
    return ConfigError(fmt::format("{}: invalid \"{}\"", where, key));
  };
  if (md.contains("keepalive")) {
    auto v = md.get_bool("keepalive");
    if (!v) throw bad("keepalive");
    c.keepalive = *v;
  }
  auto duration = [&](std::string_view key, std::chrono::nanoseconds& out) {
    if (!md.contains(key)) return;
    auto v = md.get_duration(key);
    if (!v || v->count() < 0) throw bad(key);
    if (v->count() > 0) out = *v;  // 0: GOST's default
  };
  duration("ttl", c.keepalive_period);
  duration("handshakeTimeout", c.handshake_timeout);
  duration("maxIdleTimeout", c.idle_timeout);
  if (md.contains("maxStreams")) {
    auto v = md.get_int("maxStreams");
    if (!v || *v < 0 || *v > (1 << 20)) throw bad("maxStreams");
    if (*v > 0) c.max_streams = static_cast<std::uint64_t>(*v);
  }
  return c;
}

ClientTls client_tls(const std::optional<config::TLS>& tls, const std::string& node_addr) {
  ClientTls t;
  std::string name = tls ? tls->serverName : "";
  if (name.empty())
    if (auto hp = split_host_port(node_addr)) name = hp->host;
  if (!name.empty() && !parse_ip(name)) t.server_name = name;
  if (tls) {
    t.verify = tls->secure || !tls->caFile.empty();
    t.ca_file = tls->caFile;
    t.cert_file = tls->certFile;
    t.key_file = tls->keyFile;
    if (!tls->options.alpn.empty() && std::find(tls->options.alpn.begin(), tls->options.alpn.end(),
                                                "h3") == tls->options.alpn.end())
      throw ConfigError("tls: HTTP/3 needs ALPN h3");
    // Name verification only with secure=true (as for TLS over TCP, net/tls.cpp).
    if (tls->secure) t.verify_name = name;
  }
  return t;
}

namespace {

using Clock = std::chrono::steady_clock;
using udp = asio::ip::udp;

constexpr std::size_t kCidLen = 18;
constexpr std::size_t kMaxHead = 64 * 1024;  // received header section (bytes, as counted)
constexpr std::size_t kMaxBatch = 65000;     // one sendmsg (GSO) / one GRO datagram
constexpr std::size_t kMaxSegments = 44;     // GSO segments per sendmsg
constexpr std::size_t kMinInitial = 1200;    // RFC 9000 §14.1
constexpr int kRecvBudget = 128;             // datagrams per wake-up before yielding

ngtcp2_tstamp now_ts() {
  return static_cast<ngtcp2_tstamp>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
          .count());
}

void random_bytes(std::uint8_t* p, std::size_t n) {
  if (gnutls_rnd(GNUTLS_RND_RANDOM, p, n) != 0)
    throw system_error(asio::error::no_memory, "quic: no random bytes");
}

std::string cid_key(const std::uint8_t* p, std::size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}
std::string cid_key(const ngtcp2_cid& c) { return cid_key(c.data, c.datalen); }

std::string sockaddr_text(const sockaddr_storage& sa) {
  udp::endpoint ep;
  std::memcpy(ep.data(), &sa,
              sa.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  return endpoint_text(ep);
}

socklen_t sockaddr_len(const sockaddr_storage& sa) {
  return sa.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

// GSO/GRO can be turned off to measure what they bring (GOST_QUIC_GSO=0).
bool offload_allowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("GOST_QUIC_GSO");
    return !(v && std::string_view(v) == "0");
  }();
  return allowed;
}

// ---- a UDP socket with batched, ECN-marked sends and coalesced receives -----------------------

class UdpPort {
 public:
  explicit UdpPort(udp::socket s) : sock(std::move(s)) {
    int fd = sock.native_handle();
    int one = 1, zero = 0;
    if (offload_allowed()) {
      gso = ::setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
      ::setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    local = ss;
    v6 = ss.ss_family == AF_INET6;
    ::setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof one);
    if (v6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof one);
    sock.non_blocking(true);
  }

  // Sends `len` bytes as segments of `seg` bytes (the last may be shorter) to `to`. Returns false
  // when the socket buffer is full (EAGAIN); other errors drop the packets (QUIC recovers), except
  // that `refused` is set on ECONNREFUSED (a connected client socket: the server port is closed).
  bool send(const sockaddr* to, socklen_t tolen, const std::uint8_t* data, std::size_t len,
            std::size_t seg, unsigned ecn, bool& refused) {
    set_ecn(ecn, to->sa_family);
    int fd = sock.native_handle();
    if (len > seg && !gso) {  // no GSO: one sendmsg per packet
      for (std::size_t off = 0; off < len; off += seg) {
        std::size_t n = std::min(seg, len - off);
        if (!send_one(fd, to, tolen, data + off, n, 0, refused)) {
          carry_off = off;  // what was sent already is not sent again
          return false;
        }
      }
      return true;
    }
    return send_one(fd, to, tolen, data, len, len > seg ? seg : 0, refused);
  }

  udp::socket sock;
  bool gso = false;
  bool v6 = false;
  sockaddr_storage local{};
  std::size_t carry_off = 0;  // bytes of the failed batch already sent (no-GSO path)

 private:
  bool send_one(int fd, const sockaddr* to, socklen_t tolen, const std::uint8_t* data,
                std::size_t len, std::size_t gso_size, bool& refused) {
    iovec iov{const_cast<std::uint8_t*>(data), len};
    msghdr msg{};
    msg.msg_name = const_cast<sockaddr*>(to);
    msg.msg_namelen = tolen;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint16_t))];
    if (gso_size) {
      std::memset(control, 0, sizeof control);
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* cm = CMSG_FIRSTHDR(&msg);
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
      std::uint16_t s = static_cast<std::uint16_t>(gso_size);
      std::memcpy(CMSG_DATA(cm), &s, sizeof s);
    }
    for (;;) {
      ssize_t n = ::sendmsg(fd, &msg, 0);
      if (n >= 0) return true;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      if (errno == ECONNREFUSED) refused = true;
      if (errno == EIO && gso_size) gso = false;  // GSO refused by the device: stop using it
      return true;                                // dropped; loss recovery resends
    }
  }

  void set_ecn(unsigned ecn, int family) {
    if (static_cast<int>(ecn) == ecn_) return;
    ecn_ = static_cast<int>(ecn);
    int tos = static_cast<int>(ecn);
    int fd = sock.native_handle();
    if (family == AF_INET6 || v6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos);
    if (family == AF_INET || v6) ::setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
  }
  int ecn_ = -1;
};

struct Datagram {
  const std::uint8_t* data;
  std::size_t len;
  const sockaddr_storage* from;
  unsigned ecn;
};

// Reads what is queued on `port` (at most kRecvBudget datagrams): each to `on`. Returns the
// socket error that ended reading other than EAGAIN (e.g. ECONNREFUSED on a connected socket).
template <class On>
int receive_batch(UdpPort& port, On&& on) {
  thread_local std::vector<std::uint8_t> buf(kMaxBatch + 1500);
  int fd = port.sock.native_handle();
  for (int i = 0; i < kRecvBudget; ++i) {
    sockaddr_storage from{};
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int)) * 4];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &msg, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return errno;
    }
    std::size_t seg = static_cast<std::size_t>(n);
    unsigned ecn = 0;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
        int s = 0;
        std::memcpy(&s, CMSG_DATA(cm), sizeof s);
        if (s > 0) seg = static_cast<std::size_t>(s);
      } else if ((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TOS) ||
                 (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_TCLASS)) {
        unsigned char tos = 0;
        if (cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
          int t = 0;
          std::memcpy(&t, CMSG_DATA(cm), sizeof t);
          tos = static_cast<unsigned char>(t);
        } else {
          std::memcpy(&tos, CMSG_DATA(cm), 1);
        }
        ecn = tos & 0x3;
      }
    }
    if (seg == 0) seg = static_cast<std::size_t>(n);
    for (std::size_t off = 0; off < static_cast<std::size_t>(n); off += seg)
      on(Datagram{buf.data() + off, std::min(seg, static_cast<std::size_t>(n) - off), &from, ecn});
  }
  return 0;
}

// The gnutls priorities QUIC needs (TLS 1.3 only, no middlebox compatibility mode).
constexpr const char* kPriority =
    "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
    "+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "+GROUP-SECP384R1:+GROUP-SECP521R1";

struct Credentials {
  gnutls_certificate_credentials_t cred = nullptr;
  Credentials() {
    if (gnutls_certificate_allocate_credentials(&cred) != 0)
      throw std::runtime_error("quic: cannot allocate credentials");
  }
  ~Credentials() { gnutls_certificate_free_credentials(cred); }
  Credentials(const Credentials&) = delete;
  Credentials& operator=(const Credentials&) = delete;
};

}  // namespace

// ---- the connection ---------------------------------------------------------------------------

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

  std::shared_ptr<RequestStream> open_request(const Headers& head, bool body, error_code& ec);
  void respond(RequestStream& st, const Headers& head, error_code& ec);
  void resume(RequestStream& st);
  void consume(std::int64_t id, std::size_t n);
  void reset_stream(std::int64_t id);

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
  void finish_close(error_code ec);
  void fail_streams(error_code ec);
  void on_send_ready();
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
  asio::steady_timer timer_;
  ngtcp2_tstamp armed_ = UINT64_MAX;
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

// ---- RequestStream ----------------------------------------------------------------------------

RequestStream::RequestStream(std::shared_ptr<Connection> conn, std::int64_t id)
    : conn_(std::move(conn)),
      id_(id),
      readable_(conn_->executor(), asio::steady_timer::time_point::max()),
      writable_(conn_->executor(), asio::steady_timer::time_point::max()) {}

RequestStream::~RequestStream() = default;

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

namespace {
// Waits on `cond` until woken (true) or `deadline` (false).
awaitable<bool> wait_until(asio::steady_timer& cond, Clock::time_point deadline) {
  cond.expires_at(deadline);
  auto [ec] = co_await cond.async_wait(use_nothrow);
  co_return ec == asio::error::operation_aborted;
}
Clock::time_point deadline_after(std::chrono::nanoseconds d) {
  return d.count() > 0 ? Clock::now() + d : Clock::time_point::max();
}
}  // namespace

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

void RequestStream::reset() {
  if (closed_) return;
  if (!error_) conn_->reset_stream(id_);
  gone_ = nullptr;
  fail(asio::error::operation_aborted);
}

void RequestStream::on_gone(std::function<void()> gone) {
  if (error_) {
    asio::post(conn_->executor(), std::move(gone));
    return;
  }
  gone_ = std::move(gone);
}

// ---- callbacks --------------------------------------------------------------------------------

struct Callbacks {
  static Connection* self(void* user_data) { return static_cast<Connection*>(user_data); }

  // ngtcp2
  static int recv_stream_data(ngtcp2_conn*, std::uint32_t flags, std::int64_t id, std::uint64_t,
                              const std::uint8_t* data, std::size_t len, void* ud, void*) {
    auto* c = self(ud);
    if (!c->h3_) c->setup_h3();
    if (!c->h3_) return NGTCP2_ERR_CALLBACK_FAILURE;
    auto n = nghttp3_conn_read_stream(c->h3_, id, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
    if (n < 0) {
      c->h3_error_ = nghttp3_err_infer_quic_app_error_code(static_cast<int>(n));
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    ngtcp2_conn_extend_max_stream_offset(c->conn_, id, static_cast<std::uint64_t>(n));
    ngtcp2_conn_extend_max_offset(c->conn_, static_cast<std::uint64_t>(n));
    return 0;
  }
  static int acked_stream_data_offset(ngtcp2_conn*, std::int64_t id, std::uint64_t,
                                      std::uint64_t len, void* ud, void*) {
    auto* c = self(ud);
    if (c->h3_ && nghttp3_conn_add_ack_offset(c->h3_, id, len) != 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
  }
  static int stream_close(ngtcp2_conn* conn, std::uint32_t flags, std::int64_t id,
                          std::uint64_t code, void* ud, void*) {
    auto* c = self(ud);
    if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) code = NGHTTP3_H3_NO_ERROR;
    if (c->h3_) {
      int rv = nghttp3_conn_close_stream(c->h3_, id, code);
      if (rv != 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND) {
        c->h3_error_ = nghttp3_err_infer_quic_app_error_code(rv);
        return NGTCP2_ERR_CALLBACK_FAILURE;
      }
    }
    if (c->server_ && ngtcp2_is_bidi_stream(id)) ngtcp2_conn_extend_max_streams_bidi(conn, 1);
    return 0;
  }
  static int stream_reset(ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t, void* ud,
                          void*) {
    auto* c = self(ud);
    if (auto* st = c->stream_of(id)) st->fail(asio::error::connection_reset);
    if (c->h3_ && nghttp3_conn_shutdown_stream_read(c->h3_, id) != 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
  }
  static int stream_stop_sending(ngtcp2_conn*, std::int64_t id, std::uint64_t, void* ud, void*) {
    auto* c = self(ud);
    if (auto* st = c->stream_of(id)) st->fail(asio::error::connection_reset);
    if (c->h3_ && nghttp3_conn_shutdown_stream_read(c->h3_, id) != 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
  }
  static int extend_max_remote_streams_bidi(ngtcp2_conn*, std::uint64_t max, void* ud) {
    auto* c = self(ud);
    if (c->h3_) nghttp3_conn_set_max_client_streams_bidi(c->h3_, max);
    return 0;
  }
  static int extend_max_stream_data(ngtcp2_conn*, std::int64_t id, std::uint64_t, void* ud, void*) {
    auto* c = self(ud);
    if (c->h3_ && nghttp3_conn_unblock_stream(c->h3_, id) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
  }
  static void rand(std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*) {
    gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
  }
  static int get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token,
                                   std::size_t cidlen, void* ud) {
    auto* c = self(ud);
    if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
    cid->datalen = cidlen;
    if (ngtcp2_crypto_generate_stateless_reset_token(token, c->secret_.data(), c->secret_.size(),
                                                     cid) != 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;
    if (c->server_)
      if (auto h = c->hooks_.lock()) {
        c->cids_.push_back(cid_key(*cid));
        h->add_cid(c->cids_.back(), c->shared_from_this());
      }
    return 0;
  }
  static int remove_connection_id(ngtcp2_conn*, const ngtcp2_cid* cid, void* ud) {
    auto* c = self(ud);
    if (!c->server_) return 0;
    auto key = cid_key(*cid);
    std::erase(c->cids_, key);
    if (auto h = c->hooks_.lock()) h->remove_cid(key);
    return 0;
  }
  static int handshake_completed(ngtcp2_conn*, void* ud) {
    auto* c = self(ud);
    gnutls_datum_t alpn{};
    if (gnutls_alpn_get_selected_protocol(c->tls_, &alpn) != 0 || alpn.size != 2 ||
        std::memcmp(alpn.data, "h3", 2) != 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;  // ALPN h3 is required
    c->handshake_done_ = true;
    if (c->server_)
      if (auto h = c->hooks_.lock()) h->handshake_finished();
    if (!c->h3_) c->setup_h3();
    if (!c->h3_) return NGTCP2_ERR_CALLBACK_FAILURE;
    c->handshake_cond_.cancel();
    return 0;
  }

  // nghttp3
  static RequestStream* st(void* sud) { return static_cast<RequestStream*>(sud); }
  static int h3_acked_stream_data(nghttp3_conn*, std::int64_t, std::uint64_t len, void*,
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
  static int h3_stream_close(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* ud,
                             void* sud) {
    auto* c = self(ud);
    auto it = c->streams_.find(id);
    if (it == c->streams_.end()) return 0;
    auto s = it->second;
    c->streams_.erase(it);
    s->closed_ = true;
    bool clean = code == NGHTTP3_H3_NO_ERROR && s->in_eof_ && (s->out_fin_ || !s->responded_);
    if (!clean) s->fail(asio::error::connection_reset);
    s->wake_readers();
    s->wake_writers();
    (void)sud;
    return 0;
  }
  static int h3_recv_data(nghttp3_conn*, std::int64_t, const std::uint8_t* data, std::size_t len,
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
  static int h3_deferred_consume(nghttp3_conn*, std::int64_t id, std::size_t n, void* ud, void*) {
    auto* c = self(ud);
    ngtcp2_conn_extend_max_stream_offset(c->conn_, id, n);
    ngtcp2_conn_extend_max_offset(c->conn_, n);
    return 0;
  }
  static int h3_begin_headers(nghttp3_conn* h3, std::int64_t id, void* ud, void* sud) {
    auto* c = self(ud);
    if (!c->server_ || sud) return 0;
    auto s = std::shared_ptr<RequestStream>(new RequestStream(c->shared_from_this(), id));
    c->streams_[id] = s;
    nghttp3_conn_set_stream_user_data(h3, id, s.get());
    return 0;
  }
  static int h3_recv_header(nghttp3_conn*, std::int64_t id, std::int32_t, nghttp3_rcbuf* name,
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
  static int h3_end_headers(nghttp3_conn*, std::int64_t, int fin, void* ud, void* sud) {
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
  static int h3_end_stream(nghttp3_conn*, std::int64_t, void*, void* sud) {
    if (auto* s = st(sud)) {
      s->in_eof_ = true;
      s->wake_readers();
    }
    return 0;
  }
  static int h3_stop_sending(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* ud, void*) {
    auto* c = self(ud);
    if (ngtcp2_conn_shutdown_stream_read(c->conn_, id, code) != 0)
      return NGHTTP3_ERR_CALLBACK_FAILURE;
    return 0;
  }
  static int h3_reset_stream(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* ud, void*) {
    auto* c = self(ud);
    if (ngtcp2_conn_shutdown_stream_write(c->conn_, id, code) != 0)
      return NGHTTP3_ERR_CALLBACK_FAILURE;
    return 0;
  }
  static int h3_shutdown(nghttp3_conn*, std::int64_t, void* ud) {
    self(ud)->goaway_ = true;
    return 0;
  }
  static nghttp3_ssize read_data(nghttp3_conn*, std::int64_t, nghttp3_vec* vec, std::size_t veccnt,
                                 std::uint32_t* pflags, void*, void* sud) {
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
};

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

// A ClientHello without the quic_transport_parameters extension is a connection error (RFC 9001
// §8.2), but ngtcp2 0.12 with GnuTLS goes on with the handshake and then aborts on an assertion
// (conn_write_pkt: negotiated_version) when the server writes its first 1-RTT packet: one
// datagram would end the process. Found by tests/fuzz/fuzz_quic_server.
int recv_crypto_data(ngtcp2_conn* conn, ngtcp2_crypto_level level, std::uint64_t offset,
                     const std::uint8_t* data, std::size_t len, void* user_data) {
  int rv = ngtcp2_crypto_recv_crypto_data_cb(conn, level, offset, data, len, user_data);
  if (rv == 0 && ngtcp2_conn_is_server(conn) && ngtcp2_conn_get_negotiated_version(conn) == 0) {
    auto* tls = static_cast<gnutls_session_t>(ngtcp2_conn_get_tls_native_handle(conn));
    if (gnutls_handshake_get_last_in(tls) == GNUTLS_HANDSHAKE_CLIENT_HELLO)
      return NGTCP2_ERR_REQUIRED_TRANSPORT_PARAM;
  }
  return rv;
}

ngtcp2_callbacks quic_callbacks(bool server) {
  ngtcp2_callbacks cb{};
  if (server) {
    cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    cb.extend_max_remote_streams_bidi = Callbacks::extend_max_remote_streams_bidi;
  } else {
    cb.client_initial = ngtcp2_crypto_client_initial_cb;
    cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
  }
  cb.recv_crypto_data = recv_crypto_data;
  cb.handshake_completed = Callbacks::handshake_completed;
  cb.encrypt = ngtcp2_crypto_encrypt_cb;
  cb.decrypt = ngtcp2_crypto_decrypt_cb;
  cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb.recv_stream_data = Callbacks::recv_stream_data;
  cb.acked_stream_data_offset = Callbacks::acked_stream_data_offset;
  cb.stream_close = Callbacks::stream_close;
  cb.rand = Callbacks::rand;
  cb.get_new_connection_id = Callbacks::get_new_connection_id;
  cb.remove_connection_id = Callbacks::remove_connection_id;
  cb.update_key = ngtcp2_crypto_update_key_cb;
  cb.stream_reset = Callbacks::stream_reset;
  cb.extend_max_stream_data = Callbacks::extend_max_stream_data;
  cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb.stream_stop_sending = Callbacks::stream_stop_sending;
  cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  return cb;
}

void base_settings(ngtcp2_settings& s, ngtcp2_transport_params& p, const Config& cfg, bool server) {
  ngtcp2_settings_default(&s);
  s.initial_ts = now_ts();
  s.handshake_timeout = static_cast<ngtcp2_duration>(cfg.handshake_timeout.count());
  s.max_window = cfg.connection_window;
  s.max_stream_window = cfg.stream_window;
  s.cc_algo = NGTCP2_CC_ALGO_CUBIC;
  ngtcp2_transport_params_default(&p);
  p.initial_max_stream_data_bidi_local = cfg.stream_window;
  p.initial_max_stream_data_bidi_remote = cfg.stream_window;
  p.initial_max_stream_data_uni = 256 * 1024;
  p.initial_max_data = cfg.connection_window;
  p.initial_max_streams_bidi = server ? cfg.max_streams : 0;
  p.initial_max_streams_uni = 16;  // the peer's control and QPACK streams (+ some slack)
  p.max_idle_timeout = static_cast<ngtcp2_duration>(cfg.idle_timeout.count());
  p.disable_active_migration = 1;
}

gnutls_session_t make_tls(bool server, gnutls_certificate_credentials_t cred,
                          ngtcp2_crypto_conn_ref* ref) {
  gnutls_session_t s = nullptr;
  unsigned flags = server ? (GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET)
                          : (GNUTLS_CLIENT | GNUTLS_ENABLE_EARLY_DATA);
  if (gnutls_init(&s, flags | GNUTLS_NO_END_OF_EARLY_DATA) != 0)
    throw std::runtime_error("quic: gnutls_init failed");
  bool ok = gnutls_priority_set_direct(s, kPriority, nullptr) == 0 &&
            (server ? ngtcp2_crypto_gnutls_configure_server_session(s)
                    : ngtcp2_crypto_gnutls_configure_client_session(s)) == 0 &&
            gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) == 0;
  gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>("h3")), 2};
  ok = ok && gnutls_alpn_set_protocols(s, &alpn, 1, server ? GNUTLS_ALPN_MANDATORY : 0) == 0;
  if (!ok) {
    gnutls_deinit(s);
    throw std::runtime_error("quic: TLS session setup failed");
  }
  gnutls_session_set_ptr(s, ref);
  return s;
}
}  // namespace

bool Connection::init_server(const ngtcp2_pkt_hd& hd, const sockaddr_storage& remote,
                             const ngtcp2_cid* odcid, gnutls_certificate_credentials_t cred,
                             const std::array<std::uint8_t, 32>& secret,
                             std::weak_ptr<ServerHooks> hooks, bool require_client_cert) {
  remote_ = remote;
  secret_ = secret;
  hooks_ = std::move(hooks);
  ngtcp2_cid scid;
  scid.datalen = kCidLen;
  random_bytes(scid.data, kCidLen);
  ngtcp2_settings s;
  ngtcp2_transport_params p;
  base_settings(s, p, cfg_, true);
  p.original_dcid = odcid ? *odcid : hd.dcid;
  if (odcid) {
    p.retry_scid = hd.dcid;
    p.retry_scid_present = 1;
  }
  p.stateless_reset_token_present = 1;
  ngtcp2_crypto_generate_stateless_reset_token(p.stateless_reset_token, secret_.data(),
                                               secret_.size(), &scid);
  ngtcp2_path path{{reinterpret_cast<sockaddr*>(&port_->local), sockaddr_len(port_->local)},
                   {reinterpret_cast<sockaddr*>(&remote_), sockaddr_len(remote_)},
                   nullptr};
  auto cb = quic_callbacks(true);
  if (ngtcp2_conn_server_new(&conn_, &hd.scid, &scid, &path, hd.version, &cb, &s, &p, nullptr,
                             this) != 0)
    return false;
  tls_ = make_tls(true, cred, &ref_);
  if (require_client_cert) {  // caFile: client certificates required (spec/tls.md)
    gnutls_certificate_server_set_request(tls_, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_cert(tls_, nullptr, 0);
  }
  ngtcp2_conn_set_tls_native_handle(conn_, tls_);
  if (auto h = hooks_.lock()) {
    cids_.push_back(cid_key(scid));
    h->add_cid(cids_.back(), shared_from_this());
    // The client keeps sending its Initials to the DCID it chose until it hears from us.
    cids_.push_back(cid_key(hd.dcid));
    h->add_cid(cids_.back(), shared_from_this());
  }
  return true;
}

void Connection::init_client(const sockaddr_storage& remote, const ClientTls& tls,
                             const std::shared_ptr<Credentials>& cred) {
  remote_ = remote;
  random_bytes(secret_.data(), secret_.size());
  ngtcp2_cid dcid, scid;
  dcid.datalen = kCidLen;
  scid.datalen = kCidLen;
  random_bytes(dcid.data, kCidLen);
  random_bytes(scid.data, kCidLen);
  ngtcp2_settings s;
  ngtcp2_transport_params p;
  base_settings(s, p, cfg_, false);
  ngtcp2_path path{{reinterpret_cast<sockaddr*>(&port_->local), sockaddr_len(port_->local)},
                   {reinterpret_cast<sockaddr*>(&remote_), sockaddr_len(remote_)},
                   nullptr};
  auto cb = quic_callbacks(false);
  if (ngtcp2_conn_client_new(&conn_, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &s, &p, nullptr,
                             this) != 0)
    throw system_error(asio::error::no_memory, "quic: cannot create a connection");
  tls_ = make_tls(false, cred->cred, &ref_);
  if (!tls.server_name.empty())
    gnutls_server_name_set(tls_, GNUTLS_NAME_DNS, tls.server_name.data(), tls.server_name.size());
  if (tls.verify)
    gnutls_session_set_verify_cert(tls_,
                                   tls.verify_name.empty() ? nullptr : tls.verify_name.c_str(), 0);
  ngtcp2_conn_set_tls_native_handle(conn_, tls_);
  if (cfg_.keepalive)
    ngtcp2_conn_set_keep_alive_timeout(conn_,
                                       static_cast<ngtcp2_duration>(cfg_.keepalive_period.count()));
}

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
  }
}

void Connection::on_datagram(const Datagram& d) {
  if (closed_) return;
  ngtcp2_path path{
      {reinterpret_cast<sockaddr*>(&port_->local), sockaddr_len(port_->local)},
      {reinterpret_cast<sockaddr*>(const_cast<sockaddr_storage*>(d.from)), sockaddr_len(*d.from)},
      nullptr};
  ngtcp2_pkt_info pi{};
  pi.ecn = static_cast<std::uint8_t>(d.ecn);
  int rv = ngtcp2_conn_read_pkt(conn_, &path, &pi, d.data, d.len, now_ts());
  if (rv == 0) {
    read_any_ = true;
    return;
  }
  if (!read_any_) {
    // The very first packet did not make sense (an Initial that does not decrypt, ...): junk,
    // dropped with the connection it was about to create, without an answer.
    close(asio::error::connection_aborted, true);
    return;
  }
  switch (rv) {
    case NGTCP2_ERR_DRAINING:
      close(asio::error::connection_reset, true);
      return;
    case NGTCP2_ERR_DROP_CONN:
    case NGTCP2_ERR_RETRY:
      close(asio::error::connection_aborted, true);
      return;
    default:
      fatal(rv);
  }
}

void Connection::fatal(int liberr) {
  if (closed_) return;
  ngtcp2_connection_close_error ccerr;
  if (liberr == NGTCP2_ERR_CALLBACK_FAILURE && h3_error_ != 0)
    ngtcp2_connection_close_error_set_application_error(&ccerr, h3_error_, nullptr, 0);
  else if (liberr == NGTCP2_ERR_CRYPTO)
    ngtcp2_connection_close_error_set_transport_error_tls_alert(
        &ccerr, ngtcp2_conn_get_tls_alert(conn_), nullptr, 0);
  else
    ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, liberr, nullptr, 0);
  log_.debug(fmt::format("quic {}: {}", remote_text(), ngtcp2_strerror(liberr)));
  send_connection_close(ccerr);
  finish_close(asio::error::connection_aborted);
}

void Connection::send_connection_close(const ngtcp2_connection_close_error& ccerr) {
  thread_local std::array<std::uint8_t, 1500> buf;
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  auto n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, buf.data(), buf.size(), &ccerr,
                                              now_ts());
  if (n > 0) send_batch(buf.data(), static_cast<std::size_t>(n), static_cast<std::size_t>(n), 0);
}

void Connection::close(error_code ec, bool silent) {
  if (closed_) return;
  if (!silent && conn_ && !ngtcp2_conn_is_in_closing_period(conn_) &&
      !ngtcp2_conn_is_in_draining_period(conn_)) {
    ngtcp2_connection_close_error ccerr;
    ngtcp2_connection_close_error_set_application_error(&ccerr, NGHTTP3_H3_NO_ERROR, nullptr, 0);
    send_connection_close(ccerr);
  }
  finish_close(ec);
}

void Connection::finish_close(error_code ec) {
  if (closed_) return;
  closed_ = true;
  close_ec_ = ec;
  timer_.cancel();
  handshake_cond_.cancel();
  fail_streams(ec);
  if (server_)
    if (auto h = hooks_.lock()) {
      for (auto& k : cids_) h->remove_cid(k);
      h->removed(handshake_done_);
    }
  cids_.clear();
  log_.debug(fmt::format("quic {}: closed ({})", remote_text(), ec.message()));
}

void Connection::fail_streams(error_code ec) {
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) {
    s->closed_ = true;
    s->fail(ec);
  }
}

void Connection::schedule_flush() {
  if (flush_posted_ || closed_) return;
  flush_posted_ = true;
  asio::post(ex_, [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush();
  });
}

void Connection::flush() {
  if (closed_ || blocked_ || !conn_) return;
  thread_local std::vector<std::uint8_t> buf(kMaxBatch + 2048);
  ngtcp2_tstamp ts = now_ts();
  std::size_t max_udp = ngtcp2_conn_get_max_tx_udp_payload_size(conn_);
  std::size_t max_pkts = std::clamp<std::size_t>(ngtcp2_conn_get_send_quantum(conn_) / max_udp, 1,
                                                 std::min(kMaxSegments, kMaxBatch / max_udp));
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  std::size_t off = 0, npkts = 0, seg = 0;
  unsigned ecn = 0;
  for (;;) {
    std::int64_t sid = -1;
    int fin = 0;
    nghttp3_vec vec[16];
    nghttp3_ssize sv = 0;
    if (h3_ && ngtcp2_conn_get_max_data_left(conn_)) {
      sv = nghttp3_conn_writev_stream(h3_, &sid, &fin, vec, 16);
      if (sv < 0) {
        h3_error_ = nghttp3_err_infer_quic_app_error_code(static_cast<int>(sv));
        fatal(NGTCP2_ERR_CALLBACK_FAILURE);
        return;
      }
    }
    ngtcp2_ssize ndatalen = -1;
    std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
    auto nwrite = ngtcp2_conn_writev_stream(
        conn_, &ps.path, &pi, buf.data() + off, max_udp, &ndatalen, flags, sid,
        reinterpret_cast<const ngtcp2_vec*>(vec), static_cast<std::size_t>(sv), ts);
    if (nwrite < 0) {
      switch (nwrite) {
        case NGTCP2_ERR_STREAM_DATA_BLOCKED:
          nghttp3_conn_block_stream(h3_, sid);
          continue;
        case NGTCP2_ERR_STREAM_SHUT_WR:
          nghttp3_conn_shutdown_stream_write(h3_, sid);
          continue;
        case NGTCP2_ERR_WRITE_MORE:
          if (nghttp3_conn_add_write_offset(h3_, sid, static_cast<std::size_t>(ndatalen)) != 0) {
            fatal(NGTCP2_ERR_CALLBACK_FAILURE);
            return;
          }
          continue;
        default:
          fatal(static_cast<int>(nwrite));
          return;
      }
    }
    if (ndatalen >= 0 && sid >= 0 &&
        nghttp3_conn_add_write_offset(h3_, sid, static_cast<std::size_t>(ndatalen)) != 0) {
      fatal(NGTCP2_ERR_CALLBACK_FAILURE);
      return;
    }
    if (nwrite == 0) {
      if (off > 0) send_batch(buf.data(), off, seg, ecn);
      break;
    }
    if (off == 0) {
      seg = static_cast<std::size_t>(nwrite);
      ecn = pi.ecn;
    } else if (pi.ecn != ecn) {
      // A batch carries one ECN mark: send what came before this packet on its own.
      send_batch(buf.data(), off, seg, ecn);
      if (blocked_ || closed_) return;
      std::memmove(buf.data(), buf.data() + off, static_cast<std::size_t>(nwrite));
      off = 0;
      seg = static_cast<std::size_t>(nwrite);
      ecn = pi.ecn;
    }
    off += static_cast<std::size_t>(nwrite);
    ++npkts;
    // A GSO batch: equal segments, the last may be shorter and ends it.
    if (npkts >= max_pkts || static_cast<std::size_t>(nwrite) < seg || off + max_udp > kMaxBatch) {
      send_batch(buf.data(), off, seg, ecn);
      off = 0;
      if (blocked_ || closed_) return;
      if (npkts >= max_pkts) break;  // one send quantum per flush; the pacing timer resumes
    }
  }
  ngtcp2_conn_update_pkt_tx_time(conn_, ts);
  arm_timer();
}

void Connection::send_batch(const std::uint8_t* data, std::size_t len, std::size_t seg,
                            unsigned ecn) {
  bool refused = false;
  port_->carry_off = 0;
  if (!port_->send(reinterpret_cast<const sockaddr*>(&remote_), sockaddr_len(remote_), data, len,
                   seg, ecn, refused)) {
    std::size_t done = port_->carry_off;
    pending_.assign(reinterpret_cast<const char*>(data) + done, len - done);
    pending_seg_ = seg;
    pending_ecn_ = ecn;
    blocked_ = true;
    port_->sock.async_wait(udp::socket::wait_write, [self = shared_from_this()](error_code ec) {
      if (!ec) self->on_send_ready();
    });
    return;
  }
  if (refused && !server_) {
    // The server's port is closed (ICMP port unreachable): the connection is gone.
    asio::post(ex_,
               [self = shared_from_this()] { self->close(asio::error::connection_refused, true); });
  }
}

void Connection::on_send_ready() {
  blocked_ = false;
  if (closed_) return;
  std::string p = std::move(pending_);
  pending_.clear();
  send_batch(reinterpret_cast<const std::uint8_t*>(p.data()), p.size(), pending_seg_, pending_ecn_);
  if (!blocked_) flush();
}

void Connection::arm_timer() {
  if (closed_) return;
  ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(conn_);
  if (expiry == armed_) return;
  armed_ = expiry;
  if (expiry == UINT64_MAX) {
    timer_.cancel();
    return;
  }
  ngtcp2_tstamp now = now_ts();
  auto wait = std::chrono::nanoseconds(expiry > now ? expiry - now : 0);
  timer_.expires_after(wait);
  timer_.async_wait([w = weak_from_this()](error_code ec) {
    if (ec) return;
    if (auto self = w.lock()) self->on_timer();
  });
}

void Connection::on_timer() {
  armed_ = UINT64_MAX;
  if (closed_) return;
  int rv = ngtcp2_conn_handle_expiry(conn_, now_ts());
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    close(asio::error::timed_out, true);
    return;
  }
  if (rv != 0) {
    if (!handshake_done_ && rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
      close(asio::error::timed_out, true);
      return;
    }
    fatal(rv);
    return;
  }
  flush();
}

awaitable<void> Connection::wait_handshake(error_code& ec) {
  while (!handshake_done_ && !closed_)
    co_await wait_until(handshake_cond_, Clock::time_point::max());
  if (!handshake_done_) ec = close_ec_ ? close_ec_ : asio::error::connection_aborted;
}

std::shared_ptr<RequestStream> Connection::open_request(const Headers& head, bool body,
                                                        error_code& ec) {
  if (closed_ || goaway_ || !h3_) {
    ec = asio::error::connection_aborted;
    return nullptr;
  }
  std::int64_t id = -1;
  int rv = ngtcp2_conn_open_bidi_stream(conn_, &id, nullptr);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) {
    ec = asio::error::connection_refused;
    return nullptr;
  }
  if (rv != 0) {
    ec = asio::error::connection_aborted;
    return nullptr;
  }
  auto s = std::shared_ptr<RequestStream>(new RequestStream(shared_from_this(), id));
  auto nva = to_nv(head);
  if (!body) s->out_fin_ = true;
  rv = nghttp3_conn_submit_request(h3_, id, nva.data(), nva.size(), body ? &kBodyReader : nullptr,
                                   s.get());
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

void Connection::reset_stream(std::int64_t id) {
  if (closed_) return;
  ngtcp2_conn_shutdown_stream(conn_, id, NGHTTP3_H3_REQUEST_CANCELLED);
  schedule_flush();
}

// ---- client -----------------------------------------------------------------------------------

namespace {

class ClientSessionImpl final : public ClientSession {
 public:
  // The credentials must outlive the TLS session: the session keeps them.
  ClientSessionImpl(std::shared_ptr<Connection> c, std::shared_ptr<UdpPort> port,
                    std::shared_ptr<Credentials> cred)
      : conn_(std::move(c)), port_(std::move(port)), cred_(std::move(cred)) {}
  ~ClientSessionImpl() override { close(); }

  std::shared_ptr<RequestStream> open(const Headers& head, bool body, error_code& ec) override {
    return conn_->open_request(head, body, ec);
  }
  bool usable() const override { return conn_->can_open(); }
  bool closing() const override { return conn_->closed() || conn_->goaway(); }
  void close() override {
    conn_->close(asio::error::operation_aborted);
    error_code ignored;
    port_->sock.cancel(ignored);
  }

  static awaitable<void> receive(std::shared_ptr<Connection> c, std::shared_ptr<UdpPort> port) {
    while (!c->closed()) {
      auto [ec] = co_await port->sock.async_wait(udp::socket::wait_read, use_nothrow);
      if (ec || c->closed()) break;
      int err = receive_batch(*port, [&](const Datagram& d) { c->on_datagram(d); });
      if (err == ECONNREFUSED) {
        c->close(asio::error::connection_refused, true);
        break;
      }
      c->flush();
    }
    error_code ignored;
    port->sock.close(ignored);
  }

 private:
  std::shared_ptr<Connection> conn_;
  std::shared_ptr<UdpPort> port_;
  std::shared_ptr<Credentials> cred_;
};

std::shared_ptr<Credentials> client_credentials(const ClientTls& tls) {
  auto cred = std::make_shared<Credentials>();
  if (tls.verify) {
    int rv = tls.ca_file.empty() ? gnutls_certificate_set_x509_system_trust(cred->cred)
                                 : gnutls_certificate_set_x509_trust_file(
                                       cred->cred, tls.ca_file.c_str(), GNUTLS_X509_FMT_PEM);
    if (rv < 0) throw ConfigError(fmt::format("tls: cannot load caFile \"{}\"", tls.ca_file));
  }
  if (!tls.cert_file.empty() && !tls.key_file.empty() &&
      gnutls_certificate_set_x509_key_file(cred->cred, tls.cert_file.c_str(), tls.key_file.c_str(),
                                           GNUTLS_X509_FMT_PEM) != 0)
    throw ConfigError(fmt::format("tls: cannot load client certFile \"{}\" / keyFile \"{}\"",
                                  tls.cert_file, tls.key_file));
  return cred;
}

}  // namespace

awaitable<std::shared_ptr<ClientSession>> connect(std::string addr, const ClientTls& tls,
                                                  const Config& cfg, log::Logger log) {
  auto ex = co_await asio::this_coro::executor;
  auto hp = split_host_port(addr);
  if (!hp || hp->port.empty())
    throw system_error(asio::error::invalid_argument, fmt::format("dial udp {}", addr));
  std::string host = hp->host.empty() ? std::string("localhost") : hp->host;
  udp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(host, hp->port, use_nothrow);
  if (rec || results.empty()) throw system_error(rec, fmt::format("dial udp {}", addr));
  udp::endpoint remote = results.begin()->endpoint();
  for (const auto& r : results)
    if (r.endpoint().address().is_v4()) {  // GOST's rule: IPv4 first
      remote = r.endpoint();
      break;
    }
  udp::socket sock(ex);
  error_code ec;
  sock.open(remote.protocol(), ec);
  if (!ec) sock.connect(remote, ec);
  if (ec) throw system_error(ec, fmt::format("dial udp {}", addr));
  auto port = std::make_shared<UdpPort>(std::move(sock));
  auto cred = client_credentials(tls);
  auto conn = std::make_shared<Connection>(ex, false, port, cfg, log);
  sockaddr_storage rs{};
  std::memcpy(&rs, remote.data(), remote.size());
  conn->init_client(rs, tls, cred);
  asio::co_spawn(ex, ClientSessionImpl::receive(conn, port), asio::detached);
  conn->flush();
  // ngtcp2's handshake timeout closes the connection when it expires.
  error_code hec;
  co_await conn->wait_handshake(hec);
  if (hec) {
    conn->close(hec, true);
    if (hec == asio::error::timed_out)
      throw system_error(hec, fmt::format("quic: handshake with {}", addr));
    throw system_error(hec, fmt::format("quic: handshake with {} failed", addr));
  }
  co_return std::make_shared<ClientSessionImpl>(conn, port, cred);
}

// ---- server -----------------------------------------------------------------------------------

struct Server::Impl : ServerHooks, std::enable_shared_from_this<Server::Impl> {
  Impl(asio::io_context& ctx, Config cfg, OnRequest on_request, log::Logger log)
      : ctx(ctx), cfg(cfg), on_request_fn(std::move(on_request)), log(std::move(log)) {}

  void add_cid(const std::string& cid, std::shared_ptr<Connection> c) override {
    conns[cid] = std::move(c);
  }
  void remove_cid(const std::string& cid) override { conns.erase(cid); }
  void handshake_finished() override {
    if (handshakes > 0) --handshakes;
  }
  void removed(bool handshake_done) override {
    if (!handshake_done && handshakes > 0) --handshakes;
    if (nconns > 0) --nconns;
  }
  void on_request(std::shared_ptr<RequestStream> st) override {
    asio::post(ctx, [f = on_request_fn, st = std::move(st)] { f(st); });
  }

  awaitable<void> receive() {
    auto self = shared_from_this();
    std::vector<std::shared_ptr<Connection>> touched;
    while (!closed) {
      auto [ec] = co_await port->sock.async_wait(udp::socket::wait_read, use_nothrow);
      if (ec || closed) break;
      receive_batch(*port, [&](const Datagram& d) { dispatch(d, touched); });
      flush_touched(touched);
    }
  }

  // The connections a batch of datagrams reached write what they have (ACKs of the whole batch
  // in one go).
  static void flush_touched(std::vector<std::shared_ptr<Connection>>& touched) {
    for (auto& c : touched) {
      c->dirty = false;
      c->flush();
    }
    touched.clear();
  }

  void dispatch(const Datagram& d, std::vector<std::shared_ptr<Connection>>& touched) {
    ngtcp2_version_cid vc;
    int rv = ngtcp2_pkt_decode_version_cid(&vc, d.data, d.len, kCidLen);
    if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
      if (d.len >= kMinInitial) send_version_negotiation(vc, d);
      return;
    }
    if (rv != 0) return;
    auto it = conns.find(cid_key(vc.dcid, vc.dcidlen));
    if (it != conns.end()) {
      auto c = it->second;
      c->on_datagram(d);
      if (!c->dirty && !c->closed()) {
        c->dirty = true;
        touched.push_back(c);
      }
      return;
    }
    if (!(d.data[0] & 0x80)) {
      stateless_reset(vc, d);
      return;
    }
    if (d.len < kMinInitial) return;
    ngtcp2_pkt_hd hd;
    if (ngtcp2_accept(&hd, d.data, d.len) != 0) return;
    if (nconns >= cfg.max_connections) return;
    ngtcp2_cid odcid;
    const ngtcp2_cid* podcid = nullptr;
    if (hd.token.len > 0 && hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
      if (ngtcp2_crypto_verify_retry_token(
              &odcid, hd.token.base, hd.token.len, secret.data(), secret.size(), hd.version,
              reinterpret_cast<const sockaddr*>(d.from), sockaddr_len(*d.from), &hd.dcid,
              10 * NGTCP2_SECONDS, now_ts()) != 0)
        return;  // a stale or forged token
      podcid = &odcid;
    }
    if (!podcid && handshakes >= cfg.max_handshakes) {
      send_retry(hd, d);
      return;
    }
    auto c = std::make_shared<Connection>(ctx.get_executor(), true, port, cfg, log);
    try {
      if (!c->init_server(hd, *d.from, podcid, cred->cred, secret, weak_from_this(),
                          require_client_cert))
        return;
    } catch (const std::exception& e) {
      log.debug(fmt::format("quic: new connection: {}", e.what()));
      return;
    }
    ++nconns;
    ++handshakes;
    c->on_datagram(d);
    if (!c->closed()) {
      c->dirty = true;
      touched.push_back(c);
    }
  }

  void send_version_negotiation(const ngtcp2_version_cid& vc, const Datagram& d) {
    std::array<std::uint8_t, 256> buf;
    std::uint32_t versions[] = {NGTCP2_PROTO_VER_V1, 0x1a2a3a4au};  // + a greased version
    std::uint8_t unused = 0;
    random_bytes(&unused, 1);
    auto n = ngtcp2_pkt_write_version_negotiation(buf.data(), buf.size(), unused, vc.scid,
                                                  vc.scidlen, vc.dcid, vc.dcidlen, versions, 1);
    if (n > 0) send_raw(buf.data(), static_cast<std::size_t>(n), d);
  }

  void send_retry(const ngtcp2_pkt_hd& hd, const Datagram& d) {
    std::array<std::uint8_t, NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN> token;
    ngtcp2_cid scid;
    scid.datalen = kCidLen;
    random_bytes(scid.data, kCidLen);
    auto tn =
        ngtcp2_crypto_generate_retry_token(token.data(), secret.data(), secret.size(), hd.version,
                                           reinterpret_cast<const sockaddr*>(d.from),
                                           sockaddr_len(*d.from), &scid, &hd.dcid, now_ts());
    if (tn < 0) return;
    std::array<std::uint8_t, 1500> buf;
    auto n = ngtcp2_crypto_write_retry(buf.data(), buf.size(), hd.version, &hd.scid, &scid,
                                       &hd.dcid, token.data(), static_cast<std::size_t>(tn));
    if (n > 0) send_raw(buf.data(), static_cast<std::size_t>(n), d);
  }

  // A short-header packet for a connection we do not know (we restarted, or it is long gone):
  // a Stateless Reset (RFC 9000 §10.3), smaller than what triggered it, at most 100 a second.
  void stateless_reset(const ngtcp2_version_cid& vc, const Datagram& d) {
    if (vc.dcidlen != kCidLen || d.len < 43) return;
    auto now = Clock::now();
    if (now - reset_window > std::chrono::seconds(1)) {
      reset_window = now;
      resets = 0;
    }
    if (++resets > 100) return;
    ngtcp2_cid cid;
    ngtcp2_cid_init(&cid, vc.dcid, vc.dcidlen);
    std::uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
    if (ngtcp2_crypto_generate_stateless_reset_token(token, secret.data(), secret.size(), &cid) !=
        0)
      return;
    std::size_t len = std::min<std::size_t>(d.len - 1, 42);
    std::array<std::uint8_t, 64> rnd, buf;
    random_bytes(rnd.data(), rnd.size());
    auto n = ngtcp2_pkt_write_stateless_reset(buf.data(), len, token, rnd.data(),
                                              len - NGTCP2_STATELESS_RESET_TOKENLEN - 1);
    if (n > 0) send_raw(buf.data(), static_cast<std::size_t>(n), d);
  }

  void send_raw(const std::uint8_t* data, std::size_t len, const Datagram& d) {
    bool refused = false;
    port->send(reinterpret_cast<const sockaddr*>(d.from), sockaddr_len(*d.from), data, len, len, 0,
               refused);
  }

  asio::io_context& ctx;
  Config cfg;
  OnRequest on_request_fn;
  log::Logger log;
  std::shared_ptr<UdpPort> port;
  std::shared_ptr<Credentials> cred;
  std::array<std::uint8_t, 32> secret{};
  std::unordered_map<std::string, std::shared_ptr<Connection>> conns;  // by connection ID
  std::size_t nconns = 0, handshakes = 0;
  Clock::time_point reset_window{};
  int resets = 0;
  bool require_client_cert = false;
  bool closed = false;
};

namespace {
udp::socket bind_reuseport(asio::io_context& ctx, const std::string& addr) {
  auto hp = split_host_port(addr);
  if (!hp || hp->port.empty())
    throw ConfigError(fmt::format("listen address \"{}\": missing port", addr));
  unsigned long port_num = 0;
  try {
    port_num = std::stoul(hp->port);
  } catch (...) {
    port_num = 70000;
  }
  if (port_num > 65535) throw ConfigError(fmt::format("listen address \"{}\": bad port", addr));
  std::optional<asio::ip::address> ip;
  if (!hp->host.empty()) {
    ip = parse_ip(hp->host);
    if (!ip) {
      asio::io_context tmp;
      udp::resolver r(tmp);
      error_code ec;
      auto res = r.resolve(hp->host, hp->port, ec);
      if (ec || res.empty())
        throw ConfigError(fmt::format("listen address \"{}\": cannot resolve host", addr));
      ip = res.begin()->endpoint().address();
    }
  }
  udp::socket s(ctx);
  error_code ec;
  udp::endpoint ep =
      ip ? udp::endpoint(*ip, static_cast<unsigned short>(port_num))
         : udp::endpoint(asio::ip::address_v6::any(), static_cast<unsigned short>(port_num));
  s.open(ep.protocol(), ec);
  if (!ec && !ip) s.set_option(asio::ip::v6_only(false), ec);
  if (ec && !ip) {  // no IPv6: 0.0.0.0
    ep = udp::endpoint(asio::ip::address_v4::any(), static_cast<unsigned short>(port_num));
    s = udp::socket(ctx);
    s.open(ep.protocol(), ec);
  }
  if (!ec) {
    int one = 1;
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    s.bind(ep, ec);
  }
  if (ec) throw system_error(ec, fmt::format("listen udp {}", addr));
  return s;
}
}  // namespace

Server::Server(asio::io_context& ctx, const std::string& addr,
               const std::optional<config::TLS>& tls, const Config& cfg, OnRequest on_request,
               log::Logger log)
    : impl_(std::make_shared<Impl>(ctx, cfg, std::move(on_request), std::move(log))) {
  auto pem = server_pem(tls);
  impl_->cred = std::make_shared<Credentials>();
  gnutls_datum_t c{reinterpret_cast<unsigned char*>(pem.cert_chain.data()),
                   static_cast<unsigned>(pem.cert_chain.size())};
  gnutls_datum_t k{reinterpret_cast<unsigned char*>(pem.key.data()),
                   static_cast<unsigned>(pem.key.size())};
  if (gnutls_certificate_set_x509_key_mem(impl_->cred->cred, &c, &k, GNUTLS_X509_FMT_PEM) != 0)
    throw ConfigError("quic: the certificate or key cannot be used");
  if (!pem.client_ca_file.empty()) {
    if (gnutls_certificate_set_x509_trust_file(impl_->cred->cred, pem.client_ca_file.c_str(),
                                               GNUTLS_X509_FMT_PEM) < 0)
      throw ConfigError(fmt::format("tls: cannot load caFile \"{}\"", pem.client_ca_file));
    // Client certificates are required (spec/tls.md, as for TLS over TCP).
  }
  // Stateless reset tokens and Retry tokens from a secret that survives a restart with the same
  // key, so that clients of the previous process learn at once that their connection is gone.
  std::string material = "gost quic v1 " + pem.key;
  gnutls_hash_fast(GNUTLS_DIG_SHA256, material.data(), material.size(), impl_->secret.data());
  impl_->port = std::make_shared<UdpPort>(bind_reuseport(ctx, addr));
  impl_->require_client_cert = !pem.client_ca_file.empty();
}

Server::~Server() { close(); }

void Server::start() { asio::co_spawn(impl_->ctx, impl_->receive(), asio::detached); }

void Server::close() {
  if (impl_->closed) return;
  impl_->closed = true;
  auto conns = impl_->conns;
  for (auto& [k, c] : conns) c->close(asio::error::operation_aborted);
  impl_->conns.clear();
  error_code ignored;
  impl_->port->sock.close(ignored);
}

void Server::inject(const std::uint8_t* data, std::size_t len, const std::string& from) {
  if (len == 0) return;  // the receive loop never sees an empty datagram either
  auto hp = split_host_port(from);
  auto ip = hp ? parse_ip(hp->host) : std::nullopt;
  if (!ip) return;
  udp::endpoint ep(*ip, static_cast<unsigned short>(std::atoi(hp->port.c_str())));
  sockaddr_storage ss{};
  std::memcpy(&ss, ep.data(), ep.size());
  std::vector<std::shared_ptr<Connection>> touched;
  impl_->dispatch(Datagram{data, len, &ss, 0}, touched);
  impl_->flush_touched(touched);
}

std::string Server::bound_address() const { return sockaddr_text(impl_->port->local); }

}  // namespace gost::net::quic
