#include "net/tls.hpp"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <boost/asio/ssl/error.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>

#include "core/address.hpp"
#include "core/log.hpp"
#include "core/tcp_stream.hpp"
#include "core/timeout.hpp"

namespace gost::net {
namespace {

using config::ConfigError;

std::string ssl_error_text() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// ---- the default certificate (docs/PROTOCOLS.md "tls: default certificate") ---------------------

struct CertKey {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  STACK_OF(X509) * chain = nullptr;
  X509_STORE* client_ca = nullptr;  // set when the global section has caFile
  ~CertKey() {
    X509_free(cert);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    X509_STORE_free(client_ca);
  }
};

std::mutex g_default_mu;
std::optional<config::TLS> g_global;
std::shared_ptr<CertKey> g_default;

std::shared_ptr<CertKey> load_pair(const std::string& cert_file, const std::string& key_file) {
  auto ck = std::make_shared<CertKey>();
  FILE* f = std::fopen(cert_file.c_str(), "r");
  if (!f) return nullptr;
  ck->cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  if (ck->cert) {
    ck->chain = sk_X509_new_null();
    while (X509* extra = PEM_read_X509(f, nullptr, nullptr, nullptr))
      sk_X509_push(ck->chain, extra);
  }
  std::fclose(f);
  ERR_clear_error();
  f = std::fopen(key_file.c_str(), "r");
  if (!f) return nullptr;
  ck->key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!ck->cert || !ck->key || X509_check_private_key(ck->cert, ck->key) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  return ck;
}

X509_STORE* load_ca_store(const std::string& ca_file) {
  X509_STORE* store = X509_STORE_new();
  if (X509_STORE_load_file(store, ca_file.c_str()) != 1) {
    X509_STORE_free(store);
    throw ConfigError(
        fmt::format("tls: cannot load CA file \"{}\": {}", ca_file, ssl_error_text()));
  }
  return store;
}

bool add_ext(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return false;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return true;
}

std::shared_ptr<CertKey> generate(const std::optional<config::TLS>& g) {
  std::string cn = g && !g->commonName.empty() ? g->commonName : "gost.run";
  std::string org = g && !g->organization.empty() ? g->organization : "GOST";
  auto validity = g && g->validity.count() > 0
                      ? std::chrono::duration_cast<std::chrono::seconds>(g->validity)
                      : std::chrono::seconds(8760 * 3600);
  auto ck = std::make_shared<CertKey>();
  ck->key = EVP_EC_gen("P-256");
  ck->cert = X509_new();
  if (!ck->key || !ck->cert) throw std::runtime_error("tls: cannot generate a certificate");
  X509_set_version(ck->cert, 2);
  BIGNUM* serial = BN_new();
  BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(ck->cert));
  BN_free(serial);
  X509_gmtime_adj(X509_getm_notBefore(ck->cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(ck->cert), static_cast<long>(validity.count()));
  X509_set_pubkey(ck->cert, ck->key);
  X509_NAME* name = X509_get_subject_name(ck->cert);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(ck->cert, name);
  add_ext(ck->cert, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(ck->cert, NID_key_usage, "critical,digitalSignature,keyCertSign");
  add_ext(ck->cert, NID_ext_key_usage, "serverAuth,clientAuth");
  add_ext(ck->cert, NID_subject_alt_name, ("DNS:" + cn).c_str());
  if (X509_sign(ck->cert, ck->key, EVP_sha256()) == 0)
    throw std::runtime_error("tls: cannot sign the generated certificate: " + ssl_error_text());
  return ck;
}

void persist(const CertKey& ck, const std::string& dir) {
  std::error_code fec;
  std::filesystem::create_directories(dir, fec);
  ::chmod(dir.c_str(), 0700);
  if (FILE* f = std::fopen((dir + "/auto-ca-cert.pem").c_str(), "w")) {
    PEM_write_X509(f, ck.cert);
    std::fclose(f);
    ::chmod((dir + "/auto-ca-cert.pem").c_str(), 0644);
  }
  mode_t old = ::umask(077);
  if (FILE* f = std::fopen((dir + "/auto-ca-key.pem").c_str(), "w")) {
    PEM_write_PrivateKey(f, ck.key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
  }
  ::umask(old);
}

// Built on first use, so that a plain HTTP proxy never touches certificates.
std::shared_ptr<CertKey> default_cert() {
  std::lock_guard lk(g_default_mu);
  if (g_default) return g_default;
  const auto& g = g_global;
  if (g && (!g->certFile.empty() || !g->keyFile.empty() || !g->caFile.empty())) {
    g_default = load_pair(g->certFile, g->keyFile);
    if (!g_default)
      throw ConfigError(fmt::format("tls: cannot load certFile \"{}\" / keyFile \"{}\"",
                                    g->certFile, g->keyFile));
    if (!g->caFile.empty()) g_default->client_ca = load_ca_store(g->caFile);
    return g_default;
  }
  if ((g_default = load_pair("cert.pem", "key.pem"))) return g_default;
  const char* home = std::getenv("HOME");
  std::string dir = std::string(home ? home : ".") + "/.gost";
  if ((g_default = load_pair(dir + "/auto-ca-cert.pem", dir + "/auto-ca-key.pem")))
    return g_default;
  g_default = generate(g);
  persist(*g_default, dir);
  log::root().info("tls: generated a self-signed certificate (CN=" +
                   std::string(g && !g->commonName.empty() ? g->commonName : "gost.run") + ")");
  return g_default;
}

int parse_tls_version(const std::string& v, int fallback) {
  std::string l;
  for (char c : v) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l.empty()) return fallback;
  if (l == "versiontls10") return TLS1_VERSION;
  if (l == "versiontls11") return TLS1_1_VERSION;
  if (l == "versiontls12") return TLS1_2_VERSION;
  if (l == "versiontls13") return TLS1_3_VERSION;
  throw ConfigError(fmt::format("tls: unknown TLS version \"{}\"", v));
}

void apply_options(SSL_CTX* ctx, const std::optional<config::TLS>& tls) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE);
  // Go's TLS 1.3 preference on AES hardware: AES-128-GCM first (faster than OpenSSL's default
  // AES-256-GCM, same security level for this purpose).
  SSL_CTX_set_ciphersuites(ctx,
                           "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                           "TLS_CHACHA20_POLY1305_SHA256");
  if (!tls) return;
  const auto& o = tls->options;
  SSL_CTX_set_min_proto_version(ctx, parse_tls_version(o.minVersion, TLS1_2_VERSION));
  SSL_CTX_set_max_proto_version(ctx, parse_tls_version(o.maxVersion, 0));
  if (!o.cipherSuites.empty())
    throw ConfigError("tls: options.cipherSuites is not supported by this implementation");
}

std::string alpn_wire(const std::vector<std::string>& protos) {
  std::string w;
  for (const auto& p : protos) {
    if (p.empty() || p.size() > 255) continue;
    w += static_cast<char>(p.size());
    w += p;
  }
  return w;
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  // Go picks the first of the server's list that the client offers.
  const auto& w = *static_cast<const std::string*>(arg);
  for (std::size_t i = 0; i < w.size(); i += 1 + static_cast<unsigned char>(w[i])) {
    unsigned char len = static_cast<unsigned char>(w[i]);
    for (unsigned int j = 0; j < inlen; j += 1 + in[j]) {
      if (in[j] == len && j + 1 + len <= inlen &&
          std::memcmp(in + j + 1, w.data() + i + 1, len) == 0) {
        *out = in + j + 1;
        *outlen = len;
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// ---- TLS over a Stream --------------------------------------------------------------------------

BIO_METHOD* stream_bio_method();

// Whether SSL_free_buffers() is safe to call: it could free a buffer still in use before
// OpenSSL 3.0.14 / 3.1.6 / 3.2.2 / 3.3.1 (CVE-2024-4741). Without it a waiting session keeps
// OpenSSL's buffers, as before.
bool can_free_buffers() {
  static const bool ok = [] {
    const unsigned long v = OpenSSL_version_num();  // 0xMNN00PP0
    const unsigned long minor = v & 0xfff00000UL;
    if (minor == 0x30000000UL) return v >= 0x300000e0UL;
    if (minor == 0x30100000UL) return v >= 0x30100060UL;
    if (minor == 0x30200000UL) return v >= 0x30200020UL;
    if (minor == 0x30300000UL) return v >= 0x30300010UL;
    return v >= 0x30400000UL;
  }();
  return ok;
}

// The size of the TLS record whose first `n` bytes are `h` once it is complete (header
// included), as long as it can be a ClientHello's; 0 when it cannot be one (another record type,
// a bogus length): then OpenSSL should look at it at once and reject it.
std::size_t client_hello_record_size(const unsigned char* h, std::size_t n) {
  constexpr std::size_t kHeader = 5, kMaxBody = 16384 + 2048;
  if (n >= 1 && h[0] != 22) return 0;  // handshake
  if (n >= 2 && h[1] != 3) return 0;   // TLS 1.x record version (3, x)
  if (n < kHeader) return kHeader;
  std::size_t len = (std::size_t{h[3]} << 8) | h[4];
  return len == 0 || len > kMaxBody ? 0 : kHeader + len;
}

// TLS over a Stream. Ciphertext out always collects in out_ (a custom BIO), so the records of one
// SSL_write leave in one write. Ciphertext in: over a plain TCP socket OpenSSL reads the
// (non-blocking) socket itself, with read-ahead, and we only wait for readiness — no copy, no
// buffer of ours; over any other stream (a tunnel, a WebSocket ...) it comes through in_.
//
// Memory while waiting for the peer (docs/ARCHITECTURE.md "Memory"): a server creates no OpenSSL
// state before the first record of the ClientHello is complete (a silent or slow client costs
// the socket and a few coroutine frames), and a session about to wait for its peer — in the
// handshake or idle — gives OpenSSL's 16 KiB read and write buffers back (SSL_free_buffers;
// SSL_MODE_RELEASE_BUFFERS alone frees them only after application data), and in_ holds nothing
// while the inner stream is waited for.
class TlsStream final : public Stream {
 public:
  TlsStream(StreamPtr inner, TlsContextPtr ctx) : inner_(std::move(inner)), ctx_(std::move(ctx)) {
    socket_ = inner_->raw_tcp();
    error_code ec;
    if (socket_) socket_->native_non_blocking(true, ec);
    if (ec) socket_ = nullptr;
  }
  ~TlsStream() override { SSL_free(ssl_); }

  awaitable<void> handshake() {
    error_code ec;
    if (ctx_->is_server) {
      if (socket_)
        co_await await_client_hello_in_socket(ec);
      else
        co_await await_client_hello_in_stream(ec);
      if (ec) throw system_error(ec, "tls handshake");
    }
    create_ssl();
    handshaking_ = true;
    int r = co_await drive([this] { return SSL_do_handshake(ssl_); }, ec);
    handshaking_ = false;
    if (ec) throw system_error(ec, "tls handshake");
    if (r != 1)
      throw system_error(asio::error::connection_aborted, "tls handshake: " + last_failure_);
  }

  asio::any_io_executor executor() override { return inner_->executor(); }

  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    std::size_t n = 0;
    int r = co_await drive([&] { return SSL_read_ex(ssl_, buf.data(), buf.size(), &n); }, ec);
    if (ec) co_return 0;
    if (r != 1) {
      ec = last_error_ == SSL_ERROR_ZERO_RETURN ? error_code(asio::error::eof)
                                                : error_code(asio::ssl::error::stream_truncated);
      ERR_clear_error();
      co_return 0;
    }
    // Fill the caller's buffer from records already received, without waiting: fewer, larger
    // writes downstream.
    std::size_t more = 0;
    while (n < buf.size() && (SSL_pending(ssl_) > 0 || in_off_ < in_.size()) &&
           SSL_read_ex(ssl_, static_cast<char*>(buf.data()) + n, buf.size() - n, &more) == 1)
      n += more;
    ERR_clear_error();
    co_return n;
  }

  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    constexpr std::size_t kMaxWrite = 64 * 1024;  // bounds the ciphertext held at once
    std::size_t len = std::min(buf.size(), kMaxWrite), n = 0;
    int r = co_await drive([&] { return SSL_write_ex(ssl_, buf.data(), len, &n); }, ec);
    if (!ec && r != 1) ec = asio::error::broken_pipe;
    co_return ec ? 0 : n;
  }

  // Ready only when application data (or the end) is there: records that carry none (TLS 1.3
  // session tickets, key updates) are processed here, so that a relay never holds a buffer in a
  // read that then blocks.
  awaitable<void> wait_readable(error_code& ec) override {
    ec = {};
    for (;;) {
      if (SSL_pending(ssl_) > 0) co_return;
      if (socket_ || in_off_ < in_.size()) {
        const bool ready = peek_ready();
        if (!out_.empty()) {
          co_await flush(ec);
          if (ec) co_return;
        }
        if (ready) co_return;
      }
      release_buffers();
      co_await inner_->wait_readable(ec);
      if (ec) co_return;
      if (!socket_) {
        co_await fill(ec, true);
        if (ec) co_return;
      }
    }
  }

  // Over a TCP socket only: what comes through in_ is the inner stream's to wait for.
  Poll poll_readable() override {
    if (!socket_ || !ssl_ || !out_.empty()) return {};
    if (SSL_pending(ssl_) > 0 || peek_ready()) return {Poll::ready};
    if (!out_.empty()) return {};  // an answer to send first (a key update): wait_readable()
    release_buffers();
    return {Poll::idle, socket_};
  }

  awaitable<void> shutdown_write(error_code& ec) override {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // close_notify (best effort)
    co_await flush(ec);
    if (!ec) co_await inner_->shutdown_write(ec);
  }

  void close() override { inner_->close(); }
  std::string remote_address() const override { return inner_->remote_address(); }
  std::string local_address() const override { return inner_->local_address(); }

  std::string alpn() const {
    const unsigned char* p = nullptr;
    unsigned int len = 0;
    if (ssl_) SSL_get0_alpn_selected(ssl_, &p, &len);
    return p ? std::string(reinterpret_cast<const char*>(p), len) : std::string();
  }

  // BIO callbacks: ciphertext in from the socket or in_, out to out_. 1: *done bytes; 0 with
  // `retry`: none yet; 0 without: the end (bio_eof()) or a socket error (errno).
  int bio_read(char* data, std::size_t len, std::size_t* done, bool& retry) {
    retry = false;
    if (socket_) {
      ssize_t n;
      do n = ::recv(static_cast<int>(socket_->native_handle()), data, len, 0);
      while (n < 0 && errno == EINTR);
      if (n > 0) {
        if (counted_) counted_->count_read(static_cast<std::size_t>(n));
        *done = static_cast<std::size_t>(n);
        return 1;
      }
      if (n == 0)
        eof_ = true;
      else
        retry = errno == EAGAIN || errno == EWOULDBLOCK;
      return 0;
    }
    retry = true;
    if (in_off_ >= in_.size()) return 0;
    std::size_t n = std::min(len, in_.size() - in_off_);
    std::memcpy(data, in_.data() + in_off_, n);
    in_off_ += n;
    if (in_off_ == in_.size()) {
      std::string().swap(in_);  // nothing held while idle
      in_off_ = 0;
    }
    *done = n;
    return 1;
  }
  void bio_write(const char* data, std::size_t len) { out_.append(data, len); }
  bool bio_eof() const { return eof_; }

 private:
  void create_ssl() {
    ssl_ = SSL_new(ctx_->native());
    if (!ssl_) throw std::runtime_error("tls: " + ssl_error_text());
    // One BIO both ways (SSL_set_bio takes a single reference for both).
    BIO* bio = BIO_new(stream_bio_method());
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_, bio, bio);
    if (socket_) {
      // The service's metrics count the raw bytes of the accepted socket (docs/PROTOCOLS.md
      // "observability: metrics"); OpenSSL reads it through bio_read(), which counts them.
      if (auto* tcp = dynamic_cast<TcpStream*>(inner_.get()); tcp && tcp->counts_traffic())
        counted_ = tcp;
      SSL_set_read_ahead(ssl_, 1);
    }
    if (ctx_->is_server) {
      SSL_set_accept_state(ssl_);
    } else {
      SSL_set_connect_state(ssl_);
      if (!ctx_->server_name.empty()) SSL_set_tlsext_host_name(ssl_, ctx_->server_name.c_str());
      const std::string& v = ctx_->verify_name;
      if (!v.empty()) {
        if (is_ip_literal(v))
          X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), v.c_str());
        else
          SSL_set1_host(ssl_, v.c_str());
      }
    }
  }

  // Server over a TCP socket: waits until the first record of the ClientHello is complete in the
  // socket, without consuming it. Anything else is left to OpenSSL at once (another record type,
  // the end or an error, also behind a partial record), so that errors and their timing stay
  // OpenSSL's. While a partial record waits, SO_RCVLOWAT makes the socket readable only once the
  // rest is there (or the peer's FIN or RST): readiness alone would be reported again and again.
  awaitable<void> await_client_hello_in_socket(error_code& ec) {
    const int fd = static_cast<int>(socket_->native_handle());
    int lowat = 1;
    for (;;) {
      unsigned char h[5];
      ssize_t n = ::recv(fd, h, sizeof h, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;
      if (n > 0) {
        int avail = 0;
        std::size_t need = client_hello_record_size(h, static_cast<std::size_t>(n));
        if (need == 0 || ::ioctl(fd, FIONREAD, &avail) < 0 ||
            static_cast<std::size_t>(avail) >= need)
          break;
        pollfd p{fd, POLLRDHUP, 0};
        if (::poll(&p, 1, 0) != 0) break;  // the end (or an error) behind the partial record
        int want = static_cast<int>(need);
        if (want != lowat && ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof want) < 0)
          break;
        lowat = want;
      }
      auto [e] = co_await socket_->async_wait(tcp::socket::wait_read, use_nothrow);
      if (e) {
        ec = e;
        break;
      }
    }
    if (lowat != 1 && !ec) {
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    }
  }

  // Server over any other stream: reads the first record of the ClientHello into in_, exactly,
  // waiting for each part without a buffer.
  awaitable<void> await_client_hello_in_stream(error_code& ec) {
    for (;;) {
      std::size_t have = in_.size();
      std::size_t need =
          client_hello_record_size(reinterpret_cast<const unsigned char*>(in_.data()), have);
      if (need == 0 || have >= need) co_return;
      co_await inner_->wait_readable(ec);
      if (ec) co_return;
      in_.resize(need);
      std::size_t n = co_await inner_->read_some(asio::buffer(in_.data() + have, need - have), ec);
      in_.resize(have + n);
      if (ec) co_return;
    }
  }

  void free_ssl() {
    SSL_free(ssl_);
    ssl_ = nullptr;
    counted_ = nullptr;
  }

  // Whether application data, the end or an error is there, after processing the records that
  // carry none (it may read the socket, and leave an answer in out_).
  bool peek_ready() {
    char c;
    std::size_t n = 0;
    ERR_clear_error();
    int r = SSL_peek_ex(ssl_, &c, 1, &n);
    return r == 1 || SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ;
  }

  // Frees OpenSSL's read and write buffers unless they hold data (see can_free_buffers()).
  void release_buffers() {
    if (ssl_ && can_free_buffers()) SSL_free_buffers(ssl_);
  }

  // Runs an OpenSSL call until it completes or fails, moving ciphertext / waiting for the socket
  // as it asks (the write side never blocks inside OpenSSL: it fills out_). Returns the call's
  // result; `last_error_` holds SSL_get_error on failure; `ec` is set only for transport errors.
  template <class Op>
  awaitable<int> drive(Op op, error_code& ec) {
    ec = {};
    for (;;) {
      ERR_clear_error();
      int r = op();
      // Read the outcome now: OpenSSL's error queue is per thread, and other connections of this
      // worker run while we wait below.
      if (r <= 0) last_error_ = SSL_get_error(ssl_, r);
      std::string failure;
      if (r <= 0 && last_error_ != SSL_ERROR_WANT_READ) {
        failure = ssl_error_text();
        // A failed handshake is over but for its alert in out_: free the session before sending
        // it. The send completes through the scheduler, i.e. after every other connection woken
        // with this one, and when a crowd of clients leaves mid-handshake each would hold its
        // session (and OpenSSL's buffers) until then.
        if (handshaking_) free_ssl();
      }
      if (!out_.empty()) {
        co_await flush(ec);
        if (ec) co_return r;
      }
      if (r > 0) co_return r;
      if (last_error_ == SSL_ERROR_WANT_READ) {
        release_buffers();
        if (socket_) {
          auto [e] = co_await socket_->async_wait(tcp::socket::wait_read, use_nothrow);
          ec = e;
        } else {
          co_await fill(ec, false);
        }
      } else {
        if (last_error_ == SSL_ERROR_SYSCALL && r == 0 && failure == "unknown TLS error")
          last_error_ = SSL_ERROR_ZERO_RETURN;  // EOF without close_notify: treat as end
        last_failure_ = std::move(failure);
        co_return r;
      }
      if (ec) co_return r;
    }
  }

  // Reads more ciphertext from the inner stream (BIO mode). The read buffer is taken only once
  // the inner stream is readable (`readable`: the caller has just waited for that): a session
  // waiting between records holds none (bio_read() frees in_ once it is consumed).
  awaitable<void> fill(error_code& ec, bool readable) {
    constexpr std::size_t kChunk = 64 * 1024;  // several TLS records per read when available
    if (in_off_ > 0) {
      in_.erase(0, in_off_);
      in_off_ = 0;
    }
    if (!readable) {
      co_await inner_->wait_readable(ec);
      if (ec) co_return;
    }
    std::size_t old = in_.size();
    in_.resize(old + kChunk);
    std::size_t n = co_await inner_->read_some(asio::buffer(in_.data() + old, kChunk), ec);
    in_.resize(old + n);
  }

  // Writes pending ciphertext; one writer at a time (the relay reads and writes
  // concurrently).
  awaitable<void> flush(error_code& ec) {
    ec = {};
    while (writing_) {
      if (!write_done_) write_done_ = std::make_unique<asio::steady_timer>(inner_->executor());
      write_done_->expires_at(asio::steady_timer::time_point::max());
      co_await write_done_->async_wait(use_nothrow);
    }
    if (out_.empty()) co_return;
    writing_ = true;
    while (!out_.empty() && !ec) {
      std::string chunk;
      chunk.swap(out_);
      co_await write_all(*inner_, asio::buffer(chunk), ec);
    }
    writing_ = false;
    if (write_done_) write_done_->cancel();
  }

  StreamPtr inner_;
  TlsContextPtr ctx_;
  SSL* ssl_ = nullptr;
  tcp::socket* socket_ = nullptr;  // set: OpenSSL reads the socket itself
  TcpStream* counted_ = nullptr;   // set: the socket's reads count for metrics (bio_read())
  int last_error_ = 0;
  std::string last_failure_;  // OpenSSL's reason for the last failed call
  std::string in_;
  std::size_t in_off_ = 0;
  std::string out_;
  bool writing_ = false;
  bool handshaking_ = false;  // in handshake(): a failure frees ssl_
  bool eof_ = false;          // the socket's end was read
  // Wakes writers waiting for the one writing: made when one first waits (an idle session holds
  // none).
  std::unique_ptr<asio::steady_timer> write_done_;
};

int bio_read_ex(BIO* b, char* data, std::size_t len, std::size_t* done) {
  BIO_clear_retry_flags(b);
  auto* s = static_cast<TlsStream*>(BIO_get_data(b));
  bool retry = false;
  if (s->bio_read(data, len, done, retry) == 1) return 1;
  if (retry) BIO_set_retry_read(b);
  *done = 0;
  return 0;
}

int bio_write_ex(BIO* b, const char* data, std::size_t len, std::size_t* done) {
  BIO_clear_retry_flags(b);
  static_cast<TlsStream*>(BIO_get_data(b))->bio_write(data, len);
  *done = len;
  return 1;
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_EOF:  // as OpenSSL's socket BIO: an end without close_notify is "unexpected"
      return static_cast<TlsStream*>(BIO_get_data(b))->bio_eof() ? 1 : 0;
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_PUSH:
    case BIO_CTRL_POP:
      return 1;
    default:
      return 0;
  }
}

BIO_METHOD* stream_bio_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gost-stream");
    BIO_meth_set_read_ex(method, bio_read_ex);
    BIO_meth_set_write_ex(method, bio_write_ex);
    BIO_meth_set_ctrl(method, bio_ctrl);
    return method;
  }();
  return m;
}

}  // namespace

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

void init_default_certificate(const std::optional<config::TLS>& global) {
  std::lock_guard lk(g_default_mu);
  g_global = global;
  g_default.reset();
}

TlsContextPtr server_context(const std::optional<config::TLS>& tls,
                             const std::vector<std::string>& alpn) {
  SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
  if (!raw) throw std::runtime_error("tls: " + ssl_error_text());
  auto ctx = std::make_shared<TlsContext>(raw);
  ctx->is_server = true;
  apply_options(raw, tls);
  // No server-side session cache: it would keep every TLS 1.2 session (up to 20,480) long after
  // its connection, i.e. memory a burst leaves behind. Go's server, like GOST, resumes with
  // tickets only, which need no cache.
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
  // One TLS 1.3 session ticket per handshake, as Go's server (OpenSSL sends two).
  SSL_CTX_set_num_tickets(raw, 1);

  std::shared_ptr<CertKey> ck;
  X509_STORE* client_ca = nullptr;
  if (tls && !tls->certFile.empty() && !tls->keyFile.empty()) {
    ck = load_pair(tls->certFile, tls->keyFile);
    if (!ck)
      throw ConfigError(fmt::format("tls: cannot load certFile \"{}\" / keyFile \"{}\"",
                                    tls->certFile, tls->keyFile));
    if (!tls->caFile.empty()) client_ca = load_ca_store(tls->caFile);
  } else {
    ck = default_cert();
    if (ck->client_ca) {
      X509_STORE_up_ref(ck->client_ca);
      client_ca = ck->client_ca;
    }
  }
  if (SSL_CTX_use_certificate(raw, ck->cert) != 1 || SSL_CTX_use_PrivateKey(raw, ck->key) != 1)
    throw ConfigError("tls: " + ssl_error_text());
  for (int i = 0; ck->chain && i < sk_X509_num(ck->chain); ++i)
    SSL_CTX_add1_chain_cert(raw, sk_X509_value(ck->chain, i));
  if (client_ca) {
    SSL_CTX_set_cert_store(raw, client_ca);
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (tls && (tls->rejectUnknownSNI || !tls->serverNames.empty()))
    throw ConfigError("tls: rejectUnknownSNI/serverNames are not supported by this implementation");

  std::vector<std::string> protos;
  if (tls) protos = tls->options.alpn;
  for (const auto& p : alpn)
    if (std::find(protos.begin(), protos.end(), p) == protos.end()) protos.push_back(p);
  if (!protos.empty()) {
    ctx->server_alpn = alpn_wire(protos);
    SSL_CTX_set_alpn_select_cb(raw, select_alpn, &ctx->server_alpn);
  }
  return ctx;
}

ServerPem server_pem(const std::optional<config::TLS>& tls) {
  std::shared_ptr<CertKey> ck;
  ServerPem out;
  if (tls && !tls->certFile.empty() && !tls->keyFile.empty()) {
    ck = load_pair(tls->certFile, tls->keyFile);
    if (!ck)
      throw ConfigError(fmt::format("tls: cannot load certFile \"{}\" / keyFile \"{}\"",
                                    tls->certFile, tls->keyFile));
    out.client_ca_file = tls->caFile;
  } else {
    ck = default_cert();
    std::lock_guard lk(g_default_mu);
    if (g_global && !g_global->caFile.empty()) out.client_ca_file = g_global->caFile;
  }
  auto to_pem = [](auto write) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string s(data, n > 0 ? static_cast<std::size_t>(n) : 0);
    BIO_free(bio);
    return s;
  };
  out.cert_chain = to_pem([&](BIO* b) {
    PEM_write_bio_X509(b, ck->cert);
    for (int i = 0; ck->chain && i < sk_X509_num(ck->chain); ++i)
      PEM_write_bio_X509(b, sk_X509_value(ck->chain, i));
  });
  out.key = to_pem(
      [&](BIO* b) { PEM_write_bio_PrivateKey(b, ck->key, nullptr, nullptr, 0, nullptr, nullptr); });
  return out;
}

TlsContextPtr client_context(const std::optional<config::TLS>& tls, const std::string& node_addr,
                             const std::vector<std::string>& alpn) {
  SSL_CTX* raw = SSL_CTX_new(TLS_client_method());
  if (!raw) throw std::runtime_error("tls: " + ssl_error_text());
  auto ctx = std::make_shared<TlsContext>(raw);
  apply_options(raw, tls);
  bool secure = tls && tls->secure;
  std::string ca = tls ? tls->caFile : "";
  if (!ca.empty()) {
    SSL_CTX_set_cert_store(raw, load_ca_store(ca));
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER, nullptr);
  } else if (secure) {
    SSL_CTX_set_default_verify_paths(raw);
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER, nullptr);
  } else {
    // Go's InsecureSkipVerify: the server's chain is not looked at at all. OpenSSL would still
    // run its verification with SSL_VERIFY_NONE (only ignoring the result), which costs a
    // handshake time and leaves decoded extensions cached in each connection's peer certificate.
    SSL_CTX_set_verify(raw, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_cert_verify_callback(
        raw, [](X509_STORE_CTX*, void*) { return 1; }, nullptr);
  }
  if (tls && !tls->certFile.empty() && !tls->keyFile.empty()) {
    auto ck = load_pair(tls->certFile, tls->keyFile);
    if (!ck)
      throw ConfigError(fmt::format("tls: cannot load client certFile \"{}\" / keyFile \"{}\"",
                                    tls->certFile, tls->keyFile));
    SSL_CTX_use_certificate(raw, ck->cert);
    SSL_CTX_use_PrivateKey(raw, ck->key);
  }
  std::vector<std::string> protos = alpn;
  if (tls && !tls->options.alpn.empty()) protos = tls->options.alpn;
  if (!protos.empty()) {
    auto w = alpn_wire(protos);
    SSL_CTX_set_alpn_protos(raw, reinterpret_cast<const unsigned char*>(w.data()),
                            static_cast<unsigned>(w.size()));
  }
  std::string name = tls ? tls->serverName : "";
  if (name.empty())
    if (auto hp = split_host_port(node_addr)) name = hp->host;
  if (!is_ip_literal(name)) ctx->server_name = name;
  // Name verification only with secure=true (IP literals against IP SANs, as Go); caFile alone
  // pins the chain, not the name.
  if (secure) ctx->verify_name = name;
  return ctx;
}

awaitable<StreamPtr> tls_accept(StreamPtr inner, TlsContextPtr ctx) {
  auto s = std::make_unique<TlsStream>(std::move(inner), std::move(ctx));
  co_await s->handshake();
  co_return s;
}

awaitable<StreamPtr> tls_connect(StreamPtr inner, TlsContextPtr ctx) {
  auto s = std::make_unique<TlsStream>(std::move(inner), std::move(ctx));
  co_await s->handshake();
  co_return s;
}

namespace {
awaitable<StreamPtr> handshake_within(StreamPtr inner, TlsContextPtr ctx,
                                      std::chrono::nanoseconds timeout) {
  Stream& raw = *inner;
  Deadline deadline(raw.executor(), timeout, [&raw] { raw.close(); });
  auto s = std::make_unique<TlsStream>(std::move(inner), std::move(ctx));
  co_await s->handshake();
  co_return s;
}
}  // namespace

awaitable<StreamPtr> tls_accept(StreamPtr inner, TlsContextPtr ctx,
                                std::chrono::nanoseconds timeout) {
  return handshake_within(std::move(inner), std::move(ctx), timeout);
}

awaitable<StreamPtr> tls_connect(StreamPtr inner, TlsContextPtr ctx,
                                 std::chrono::nanoseconds timeout) {
  return handshake_within(std::move(inner), std::move(ctx), timeout);
}

std::string negotiated_alpn(Stream& s) {
  if (auto* t = dynamic_cast<TlsStream*>(&s)) return t->alpn();
  return {};
}

}  // namespace gost::net
