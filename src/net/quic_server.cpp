// The server endpoint (one per worker): its UDP socket (SO_REUSEPORT), the receive loop, the
// connection table by connection ID, Version Negotiation, Retry and Stateless Reset for packets
// of no known connection.
#include <fmt/format.h>

#include <cstdlib>
#include <optional>

#include "core/address.hpp"
#include "net/quic_connection.hpp"
#include "net/tls.hpp"

namespace gost::net::quic {

using config::ConfigError;

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
    // QUIC v1 and a random reserved version 0x?a?a?a?a (RFC 9000 §15), never the one the client
    // offered (a version listed is one the server supports).
    std::uint32_t grease = 0;
    do {
      random_bytes(reinterpret_cast<std::uint8_t*>(&grease), sizeof grease);
      grease = (grease & 0xf0f0f0f0u) | 0x0a0a0a0au;
    } while (grease == vc.version);
    std::uint32_t versions[] = {NGTCP2_PROTO_VER_V1, grease};
    std::uint8_t unused = 0;
    random_bytes(&unused, 1);
    auto n = ngtcp2_pkt_write_version_negotiation(buf.data(), buf.size(), unused, vc.scid,
                                                  vc.scidlen, vc.dcid, vc.dcidlen, versions,
                                                  std::size(versions));
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
    // Client certificates are required (docs/PROTOCOLS.md "tls: server and client", as for TLS over
    // TCP).
  }
  // Stateless reset tokens and Retry tokens from a secret that survives a restart with the same
  // key, so that clients of the previous process learn at once that their connection is gone.
  std::string material = "gost quic v1 " + pem.key;
  gnutls_hash_fast(GNUTLS_DIG_SHA256, material.data(), material.size(), impl_->secret.data());
  impl_->port = std::make_shared<UdpPort>(bind_udp_listen(ctx, addr));
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
