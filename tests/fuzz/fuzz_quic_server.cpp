// libFuzzer target: datagrams from hostile clients fed to our QUIC + HTTP/3 server (net/quic:
// ngtcp2 + nghttp3 + GnuTLS) through Server::inject, as its receive loop would hand them over.
// scripts/fuzz.sh links net/quic, net/tls, net/udp, net/http2 (h2_header), a little of core/ and
// config/, and the QUIC, TLS and HTTP/3 libraries for this target.
//
// Input: byte 0 = number of datagrams - 1 (mod 8); then per datagram a control byte, a 2-byte
// big-endian length and that many bytes (cut at the end of the input). Control byte:
//   bits 0-1  the source: one of four UDP sockets of ours on 127.0.0.1 (the server's replies go
//             there and are thrown away, so nothing is sent to ports we do not own);
//   bit 2     0: the bytes are the datagram as is (junk, version negotiation, short headers ...);
//             1: the bytes are [dcid len][dcid][scid len][scid][token len][token][frames] and the
//             harness builds a QUIC v1 client Initial packet of them, protected with the Initial
//             keys of that DCID (RFC 9001 §5.2), so that the fuzzer reaches the frame decoder,
//             ngtcp2's transport parameters and GnuTLS's ClientHello parser instead of failing
//             the AEAD tag; packet number = datagram index;
//   bit 3     (Initial) no PADDING up to 1200 bytes.
// Nothing past the server's Initial can be protected here (the handshake keys need the server's
// key share), so request streams are never reached; on_request answers all the same.
//
// Every input gets a server of its own (a socket and the credentials; the certificate is
// generated once), so that connections and the handshake budget (Retry after
// Config::max_handshakes) do not carry over from one input to the next: a crash replays from its
// input alone. The io_context is shared; timers are real-time and never waited for.
//
// Seeds (tests/fuzz/corpus/quic_server): built from a client Initial of Debian's gtlsclient
// (ngtcp2-client), as captured and as its decrypted frames in the Initial form above.
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "net/quic.hpp"
#include "net/tls.hpp"

namespace {

using namespace gost;

constexpr int kSources = 4;

struct Env {
  asio::io_context ctx;
  std::vector<asio::ip::udp::socket> sources;
  std::vector<std::string> from;
  net::quic::Config cfg;
  unsigned requests = 0;  // on_request answers every other one and resets the rest
};
Env* g_env = nullptr;

bool g_verbose = false;

// Throws away what the server sent to source `i` (with GOST_FUZZ_LOG set: says what it was).
void drain(asio::ip::udp::socket& s, int i) {
  std::array<std::uint8_t, 65536> buf;
  ssize_t n;
  while ((n = ::recv(s.native_handle(), buf.data(), buf.size(), MSG_DONTWAIT)) >= 0) {
    if (g_verbose)
      std::fprintf(stderr, "source %d got %zd bytes, first byte %02x\n", i, n, n ? buf[0] : 0);
  }
}

// ---- QUIC v1 Initial protection (RFC 9001 §5) -------------------------------------------------

std::array<std::uint8_t, 32> hkdf_extract(const std::uint8_t* salt, std::size_t salt_len,
                                          const std::uint8_t* ikm, std::size_t ikm_len) {
  std::array<std::uint8_t, 32> out{};
  std::uint8_t empty = 0;
  gnutls_datum_t key{const_cast<std::uint8_t*>(ikm_len ? ikm : &empty),
                     static_cast<unsigned>(ikm_len)};
  gnutls_datum_t s{const_cast<std::uint8_t*>(salt), static_cast<unsigned>(salt_len)};
  gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &key, &s, out.data());
  return out;
}

template <std::size_t N>
std::array<std::uint8_t, N> expand_label(const std::array<std::uint8_t, 32>& secret,
                                         std::string_view label) {
  std::string full = "tls13 " + std::string(label);
  std::string info;
  info += static_cast<char>(N >> 8);
  info += static_cast<char>(N & 0xff);
  info += static_cast<char>(full.size());
  info += full;
  info += '\0';  // empty context
  std::array<std::uint8_t, N> out{};
  gnutls_datum_t key{const_cast<std::uint8_t*>(secret.data()), 32};
  gnutls_datum_t in{reinterpret_cast<unsigned char*>(info.data()),
                    static_cast<unsigned>(info.size())};
  gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &key, &in, out.data(), N);
  return out;
}

void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  if (v < 64) {
    out.push_back(static_cast<std::uint8_t>(v));
  } else if (v < 16384) {
    out.push_back(static_cast<std::uint8_t>(0x40 | (v >> 8)));
    out.push_back(static_cast<std::uint8_t>(v));
  } else {
    out.push_back(static_cast<std::uint8_t>(0x80 | (v >> 24)));
    out.push_back(static_cast<std::uint8_t>(v >> 16));
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
  }
}

// [dcid len][dcid][scid len][scid][token len][token][frames] → a protected Initial packet.
std::vector<std::uint8_t> build_initial(const std::uint8_t* p, std::size_t n, std::uint16_t pn,
                                        bool pad) {
  auto take = [&](std::size_t max) {
    std::size_t len = n ? std::min<std::size_t>(p[0] % (max + 1), n - 1) : 0;
    std::vector<std::uint8_t> v;
    if (n) {
      v.assign(p + 1, p + 1 + len);
      p += 1 + len;
      n -= 1 + len;
    }
    return v;
  };
  auto dcid = take(20), scid = take(20), token = take(255);
  std::vector<std::uint8_t> frames(p, p + std::min<std::size_t>(n, 60000));

  static const std::uint8_t salt[] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                      0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
  auto initial = hkdf_extract(salt, sizeof salt, dcid.data(), dcid.size());
  auto client = expand_label<32>(initial, "client in");
  auto key = expand_label<16>(client, "quic key");
  auto iv = expand_label<12>(client, "quic iv");
  auto hp = expand_label<16>(client, "quic hp");

  constexpr std::size_t kPnLen = 2, kTag = 16;
  std::vector<std::uint8_t> pkt;
  pkt.push_back(0xc0 | (kPnLen - 1));  // long header, fixed bit, Initial
  pkt.insert(pkt.end(), {0, 0, 0, 1});
  pkt.push_back(static_cast<std::uint8_t>(dcid.size()));
  pkt.insert(pkt.end(), dcid.begin(), dcid.end());
  pkt.push_back(static_cast<std::uint8_t>(scid.size()));
  pkt.insert(pkt.end(), scid.begin(), scid.end());
  put_varint(pkt, token.size());
  pkt.insert(pkt.end(), token.begin(), token.end());
  // PADDING: to 1200 bytes in all (when asked), and at least 4 bytes of packet number + payload
  // for the header protection sample.
  std::size_t fixed = pkt.size() + 4 + kPnLen + kTag;  // + a 4-byte length below
  if (frames.size() + kPnLen < 4) frames.resize(4 - kPnLen);
  if (pad && fixed + frames.size() < 1200) frames.resize(1200 - fixed);
  std::uint64_t length = kPnLen + frames.size() + kTag;
  pkt.push_back(static_cast<std::uint8_t>(0x80 | (length >> 24)));  // 4-byte varint, always
  pkt.push_back(static_cast<std::uint8_t>(length >> 16));
  pkt.push_back(static_cast<std::uint8_t>(length >> 8));
  pkt.push_back(static_cast<std::uint8_t>(length));
  std::size_t pn_off = pkt.size();
  pkt.push_back(static_cast<std::uint8_t>(pn >> 8));
  pkt.push_back(static_cast<std::uint8_t>(pn));

  std::array<std::uint8_t, 12> nonce = iv;
  nonce[10] ^= static_cast<std::uint8_t>(pn >> 8);
  nonce[11] ^= static_cast<std::uint8_t>(pn);
  gnutls_aead_cipher_hd_t aead;
  gnutls_datum_t k{key.data(), 16};
  if (gnutls_aead_cipher_init(&aead, GNUTLS_CIPHER_AES_128_GCM, &k) != 0) return {};
  std::vector<std::uint8_t> sealed(frames.size() + kTag);
  std::size_t sealed_len = sealed.size();
  int rv =
      gnutls_aead_cipher_encrypt(aead, nonce.data(), nonce.size(), pkt.data(), pkt.size(), kTag,
                                 frames.data(), frames.size(), sealed.data(), &sealed_len);
  gnutls_aead_cipher_deinit(aead);
  if (rv != 0) return {};
  pkt.insert(pkt.end(), sealed.begin(), sealed.begin() + static_cast<std::ptrdiff_t>(sealed_len));

  // Header protection: AES-ECB of the sample = AES-CBC of one block with a zero IV.
  std::array<std::uint8_t, 16> mask{}, zero_iv{};
  std::memcpy(mask.data(), pkt.data() + pn_off + 4, 16);
  gnutls_cipher_hd_t ecb;
  gnutls_datum_t hk{hp.data(), 16}, ivd{zero_iv.data(), 16};
  if (gnutls_cipher_init(&ecb, GNUTLS_CIPHER_AES_128_CBC, &hk, &ivd) != 0) return {};
  gnutls_cipher_encrypt(ecb, mask.data(), mask.size());
  gnutls_cipher_deinit(ecb);
  pkt[0] ^= mask[0] & 0x0f;
  for (std::size_t i = 0; i < kPnLen; ++i) pkt[pn_off + i] ^= mask[1 + i];
  return pkt;
}

// Runs what is ready, a bounded number of rounds.
void settle(asio::io_context& ctx, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    if (ctx.stopped()) ctx.restart();
    if (ctx.poll() == 0) break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The default certificate: net/tls loads ./cert.pem + ./key.pem, else $HOME/.gost/auto-ca-*.pem,
  // else generates one and writes it to $HOME/.gost. HOME is pointed at a directory of our own
  // that is removed once the server holds the certificate (in memory from then on).
  char tmpl[] = "/tmp/gost-fuzz-quic-XXXXXX";
  const char* home = ::mkdtemp(tmpl);
  if (home) ::setenv("HOME", home, 1);
  const char* lvl = std::getenv("GOST_FUZZ_LOG");  // e.g. GOST_FUZZ_LOG=debug to see the server
  g_verbose = lvl != nullptr;
  log::configure("text", lvl ? "stderr" : "none");
  log::set_level(lvl ? lvl : "fatal");
  net::init_default_certificate(std::nullopt);

  g_env = new Env;
  g_env->cfg.handshake_timeout = std::chrono::seconds(5);
  g_env->cfg.max_handshakes = 4;  // the 5th new client in one input gets a Retry
  g_env->cfg.datagrams = true;  // as a MASQUE server: HTTP/3 datagrams, extended CONNECT
  for (int i = 0; i < kSources; ++i) {
    asio::ip::udp::socket s(g_env->ctx);
    s.open(asio::ip::udp::v4());
    s.bind({asio::ip::make_address_v4("127.0.0.1"), 0});
    g_env->from.push_back("127.0.0.1:" + std::to_string(s.local_endpoint().port()));
    g_env->sources.push_back(std::move(s));
  }
  {
    // Builds the certificate now, then forgets the directory it went to.
    net::quic::Server warm(
        g_env->ctx, "127.0.0.1:0", std::nullopt, g_env->cfg,
        [](std::shared_ptr<net::quic::RequestStream>) {}, log::root());
  }
  if (home) std::filesystem::remove_all(home);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Env& env = *g_env;
  if (size == 0) return 0;
  env.ctx.restart();
  int count = 1 + data[0] % 8;
  std::size_t off = 1;
  {
    net::quic::Server server(
        env.ctx, "127.0.0.1:0", std::nullopt, env.cfg,
        [&env](std::shared_ptr<net::quic::RequestStream> st) {
          error_code ec;
          if (env.requests++ % 2) {
            st->reset();
            return;
          }
          st->respond({{":status", "200"}, {"content-length", "0"}}, ec);
          st->finish();
        },
        log::root());
    for (int i = 0; i < count && off + 3 <= size; ++i) {
      std::uint8_t ctl = data[off];
      std::size_t len = std::min<std::size_t>((data[off + 1] << 8) | data[off + 2], size - off - 3);
      const std::uint8_t* body = data + off + 3;
      off += 3 + len;
      const std::string& from = env.from[ctl % kSources];
      if (ctl & 4) {
        auto pkt = build_initial(body, len, static_cast<std::uint16_t>(i), !(ctl & 8));
        if (!pkt.empty()) server.inject(pkt.data(), pkt.size(), from);
      } else if (len > 0) {  // the receive loop never hands over an empty datagram
        // A copy of exactly `len` bytes, so that ASan sees any read past the datagram.
        std::vector<std::uint8_t> dgram(body, body + len);
        server.inject(dgram.data(), dgram.size(), from);
      }
      settle(env.ctx, 8);
    }
    server.close();
    settle(env.ctx, 16);
  }
  settle(env.ctx, 16);
  for (int i = 0; i < kSources; ++i) drain(env.sources[i], i);
  return 0;
}
