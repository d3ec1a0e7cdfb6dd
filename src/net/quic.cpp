// The QUIC engine's options from GOST's configuration: Config (the h3/http3 metadata) and
// ClientTls (a dialer's tls block). The engine itself: quic_connection (a QUIC connection and its
// send path), quic_request_stream (HTTP/3 request streams), quic_client and quic_server (the two
// endpoints), quic_udp_port (the UDP socket); quic_internal.hpp is what they share.
#include "net/quic.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/address.hpp"
#include "net/udp.hpp"

namespace gost::net::quic {

using config::ConfigError;

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

}  // namespace gost::net::quic
