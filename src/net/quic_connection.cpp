// A QUIC connection: its setup (ngtcp2 settings and callbacks, the TLS session), the datagrams it
// receives, the ngtcp2 callbacks, and its end. The send path and the timer:
// quic_connection_send.cpp; HTTP/3 on top: quic_request_stream.cpp.
#include "net/quic_connection.hpp"

#include <fmt/format.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

namespace gost::net::quic {

// ---- ngtcp2 callbacks -------------------------------------------------------------------------

int Callbacks::recv_stream_data(ngtcp2_conn*, std::uint32_t flags, std::int64_t id,
                                std::uint64_t offset, const std::uint8_t* data, std::size_t len,
                                void* ud, void*) {
  auto* c = self(ud);
  if (!c->h3_) c->setup_h3();
  if (!c->h3_) return NGTCP2_ERR_CALLBACK_FAILURE;
  int rv = 0;
  if (c->cfg_.webtransport && c->route_raw(id, flags, offset, data, len, rv)) return rv;
  return c->feed_h3(id, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN) == 0
             ? 0
             : NGTCP2_ERR_CALLBACK_FAILURE;
}

int Connection::feed_h3(std::int64_t id, const std::uint8_t* data, std::size_t len, bool fin) {
  auto n = nghttp3_conn_read_stream(h3_, id, data, len, fin);
  if (n < 0) {
    h3_error_ = nghttp3_err_infer_quic_app_error_code(static_cast<int>(n));
    return static_cast<int>(n);
  }
  ngtcp2_conn_extend_max_stream_offset(conn_, id, static_cast<std::uint64_t>(n));
  ngtcp2_conn_extend_max_offset(conn_, static_cast<std::uint64_t>(n));
  return 0;
}

int Callbacks::acked_stream_data_offset(ngtcp2_conn*, std::int64_t id, std::uint64_t,
                                        std::uint64_t len, void* ud, void*) {
  auto* c = self(ud);
  if (id == c->ctrl_id_ && c->patch_control()) return 0;  // acknowledged to nghttp3 already
  if (auto* st = c->stream_of(id); st && st->raw_) {
    c->raw_acked(*st, len);
    return 0;
  }
  if (c->h3_ && nghttp3_conn_add_ack_offset(c->h3_, id, len) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

int Callbacks::stream_close(ngtcp2_conn* conn, std::uint32_t flags, std::int64_t id,
                            std::uint64_t code, void* ud, void*) {
  auto* c = self(ud);
  bool app_code = flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET;
  if (!app_code) code = NGHTTP3_H3_NO_ERROR;
  if (auto* st = c->stream_of(id); st && st->raw_) {
    c->raw_closed(id, code, app_code);
    if (ngtcp2_is_bidi_stream(id) && !ngtcp2_conn_is_local_stream(conn, id))
      ngtcp2_conn_extend_max_streams_bidi(conn, 1);
    return 0;
  }
  c->wt_pending_.erase(id);
  if (c->wt_rejected_.erase(id)) {
    if (c->server_ && ngtcp2_is_bidi_stream(id)) ngtcp2_conn_extend_max_streams_bidi(conn, 1);
    return 0;  // nghttp3 never saw it
  }
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

int Callbacks::stream_reset(ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t code,
                            void* ud, void*) {
  auto* c = self(ud);
  auto* st = c->stream_of(id);
  // H3_REQUEST_REJECTED: the server did not process the request (RFC 9114 §4.1.1), safe to retry.
  if (st)
    st->fail(code == NGHTTP3_H3_REQUEST_REJECTED ? asio::error::try_again
                                                 : asio::error::connection_reset);
  if ((st && st->raw_) || c->wt_pending_.erase(id) || c->wt_rejected_.count(id))
    return 0;  // nghttp3 never saw it
  if (c->h3_ && nghttp3_conn_shutdown_stream_read(c->h3_, id) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

int Callbacks::stream_stop_sending(ngtcp2_conn*, std::int64_t id, std::uint64_t, void* ud, void*) {
  auto* c = self(ud);
  auto* st = c->stream_of(id);
  if (st) st->fail(asio::error::connection_reset);
  if ((st && st->raw_) || c->wt_pending_.count(id) || c->wt_rejected_.count(id))
    return 0;  // nghttp3 never saw it
  if (c->h3_ && nghttp3_conn_shutdown_stream_read(c->h3_, id) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

int Callbacks::extend_max_remote_streams_bidi(ngtcp2_conn*, std::uint64_t max, void* ud) {
  auto* c = self(ud);
  if (c->h3_) nghttp3_conn_set_max_client_streams_bidi(c->h3_, max);
  return 0;
}

int Callbacks::extend_max_stream_data(ngtcp2_conn*, std::int64_t id, std::uint64_t, void* ud,
                                      void*) {
  auto* c = self(ud);
  if (id == c->ctrl_id_ && c->patch_control()) {
    c->ctrl_blocked_ = false;
    return 0;
  }
  if (auto* st = c->stream_of(id); st && st->raw_) {
    c->queue_raw(*st);
    return 0;
  }
  if (c->h3_ && nghttp3_conn_unblock_stream(c->h3_, id) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

void Callbacks::rand(std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*) {
  gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

int Callbacks::get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token,
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

int Callbacks::remove_connection_id(ngtcp2_conn*, const ngtcp2_cid* cid, void* ud) {
  auto* c = self(ud);
  if (!c->server_) return 0;
  auto key = cid_key(*cid);
  std::erase(c->cids_, key);
  if (auto h = c->hooks_.lock()) h->remove_cid(key);
  return 0;
}

int Callbacks::handshake_completed(ngtcp2_conn*, void* ud) {
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

// QUIC DATAGRAM frames: HTTP/3 datagrams (Config::datagrams) go to their request stream;
// WebTransport's are not used by our tunnels (dropped).
int Callbacks::recv_datagram(ngtcp2_conn*, std::uint32_t, const std::uint8_t* data, std::size_t len,
                             void* ud) {
  auto* c = self(ud);
  if (c->cfg_.datagrams) c->on_h3_datagram(data, len);
  return 0;
}

namespace {

// The gnutls priorities QUIC needs (TLS 1.3 only, no middlebox compatibility mode).
constexpr const char* kPriority =
    "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
    "+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "+GROUP-SECP384R1:+GROUP-SECP521R1";

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
  cb.recv_datagram = Callbacks::recv_datagram;
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
  // WebTransport peers require QUIC datagrams with H3_DATAGRAM (quic-go closes the connection
  // with H3_SETTINGS_ERROR otherwise).
  if (cfg.webtransport || cfg.datagrams) p.max_datagram_frame_size = 65535;
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
  if (require_client_cert) {  // caFile: client certificates required (docs/PROTOCOLS.md "tls")
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
  // A client's UDP socket is its own: wake its receive loop, which then closes it (a connection
  // that timed out or failed would otherwise keep it until the next datagram).
  if (!server_) {
    error_code ignored;
    port_->sock.cancel(ignored);
  }
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

awaitable<void> Connection::wait_handshake(error_code& ec) {
  while (!handshake_done_ && !closed_)
    co_await wait_until(handshake_cond_, Clock::time_point::max());
  if (!handshake_done_) ec = close_ec_ ? close_ec_ : asio::error::connection_aborted;
}

}  // namespace gost::net::quic
