#include "proto/socks5.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "core/address.hpp"

namespace gost::proto::socks5 {
namespace {

std::uint8_t byte_at(std::string_view d, std::size_t i) { return static_cast<std::uint8_t>(d[i]); }

std::uint16_t be16(std::string_view d, std::size_t i) {
  return static_cast<std::uint16_t>(byte_at(d, i) << 8 | byte_at(d, i + 1));
}

void put16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}

Parsed need(std::size_t n) { return {Status::incomplete, n}; }
Parsed done(std::size_t n) { return {Status::complete, n}; }
constexpr Parsed kBad{Status::bad, 0};

// Go's net.IP.String(): an IPv4-mapped IPv6 address prints as IPv4.
std::string ipv6_text(const unsigned char* b) {
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  char text[INET6_ADDRSTRLEN] = {};
  if (std::memcmp(b, mapped, 12) == 0) {
    inet_ntop(AF_INET, b + 12, text, sizeof text);
  } else {
    inet_ntop(AF_INET6, b, text, sizeof text);
  }
  return text;
}

}  // namespace

std::string Address::to_string() const { return join_host_port(host, std::to_string(port)); }

std::optional<Address> address_from_text(std::string_view host_port) {
  Address a;
  auto hp = split_host_port(host_port);
  if (!hp) {
    a.host = "0.0.0.0";
    return a;
  }
  if (!hp->port.empty()) {
    unsigned p = 0;
    auto [end, ec] = std::from_chars(hp->port.data(), hp->port.data() + hp->port.size(), p);
    if (ec != std::errc() || end != hp->port.data() + hp->port.size() || p > 65535)
      return std::nullopt;
    a.port = static_cast<std::uint16_t>(p);
  }
  unsigned char buf[16];
  if (hp->host.empty()) {
    a.host = "0.0.0.0";
  } else if (inet_pton(AF_INET, hp->host.c_str(), buf) == 1) {
    a.type = atyp::ipv4;
    a.host = hp->host;
  } else if (inet_pton(AF_INET6, hp->host.c_str(), buf) == 1) {
    a.host = ipv6_text(buf);
    a.type = a.host.find(':') == std::string::npos ? atyp::ipv4 : atyp::ipv6;
  } else {
    if (hp->host.size() > 255) return std::nullopt;
    a.type = atyp::domain;
    a.host = hp->host;
  }
  return a;
}

bool append_address(std::string& out, const Address& a) {
  unsigned char buf[16];
  switch (a.type) {
    case atyp::ipv4:
      if (inet_pton(AF_INET, a.host.c_str(), buf) != 1) {
        // An IPv4-mapped IPv6 text is still an IPv4 address.
        unsigned char b6[16];
        if (inet_pton(AF_INET6, a.host.c_str(), b6) != 1 ||
            ipv6_text(b6).find(':') != std::string::npos)
          return false;
        std::memcpy(buf, b6 + 12, 4);
      }
      out.push_back(static_cast<char>(atyp::ipv4));
      out.append(reinterpret_cast<const char*>(buf), 4);
      break;
    case atyp::ipv6:
      if (inet_pton(AF_INET6, a.host.c_str(), buf) != 1) return false;
      out.push_back(static_cast<char>(atyp::ipv6));
      out.append(reinterpret_cast<const char*>(buf), 16);
      break;
    case atyp::domain:
      if (a.host.size() > 255) return false;
      out.push_back(static_cast<char>(atyp::domain));
      out.push_back(static_cast<char>(a.host.size()));
      out.append(a.host);
      break;
    default:
      return false;
  }
  put16(out, a.port);
  return true;
}

Parsed parse_address(std::string_view d, Address& out) {
  if (d.empty()) return need(1);
  std::size_t size = 0;
  switch (byte_at(d, 0)) {
    case atyp::ipv4:
      size = 1 + 4 + 2;
      break;
    case atyp::ipv6:
      size = 1 + 16 + 2;
      break;
    case atyp::domain:
      if (d.size() < 2) return need(2);
      size = 1 + 1 + byte_at(d, 1) + 2;
      break;
    default:
      return kBad;
  }
  if (d.size() < size) return need(size);
  out.type = byte_at(d, 0);
  const auto* p = reinterpret_cast<const unsigned char*>(d.data()) + 1;
  if (out.type == atyp::ipv4) {
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, p, text, sizeof text);
    out.host = text;
  } else if (out.type == atyp::ipv6) {
    out.host = ipv6_text(p);
  } else {
    out.host.assign(d.substr(2, byte_at(d, 1)));
  }
  out.port = be16(d, size - 2);
  return done(size);
}

// ---- method negotiation -----------------------------------------------------------------------

Parsed parse_greeting(std::string_view d, std::vector<std::uint8_t>& methods) {
  if (d.empty()) return need(2);
  if (byte_at(d, 0) != kVersion) return kBad;
  if (d.size() < 2) return need(2);
  std::size_t n = byte_at(d, 1);
  if (n == 0) return kBad;
  if (d.size() < 2 + n) return need(2 + n);
  methods.assign(d.begin() + 2, d.begin() + 2 + static_cast<std::ptrdiff_t>(n));
  return done(2 + n);
}

std::string greeting(const std::vector<std::uint8_t>& methods) {
  std::string out{static_cast<char>(kVersion), static_cast<char>(methods.size())};
  out.append(methods.begin(), methods.end());
  return out;
}

std::vector<std::uint8_t> client_methods(bool has_credentials, bool notls) {
  std::vector<std::uint8_t> m{method::no_auth};
  if (has_credentials) m.push_back(method::user_pass);
  if (!notls) {
    m.push_back(method::tls);
    if (has_credentials) m.push_back(method::tls_auth);
  }
  return m;
}

std::uint8_t select_method(const std::vector<std::uint8_t>& offered, bool auth_required,
                           bool tls_allowed) {
  auto has = [&](std::uint8_t m) {
    return std::find(offered.begin(), offered.end(), m) != offered.end();
  };
  if (auth_required) {
    if (tls_allowed && has(method::tls_auth)) return method::tls_auth;
    if (has(method::user_pass)) return method::user_pass;
    return method::none_acceptable;
  }
  if (tls_allowed && has(method::tls)) return method::tls;
  if (has(method::no_auth)) return method::no_auth;
  return method::none_acceptable;
}

std::string method_reply(std::uint8_t m) {
  return {static_cast<char>(kVersion), static_cast<char>(m)};
}

Parsed parse_method_reply(std::string_view d, std::uint8_t& m) {
  if (d.size() < 2) return need(2);
  if (byte_at(d, 0) != kVersion) return kBad;
  m = byte_at(d, 1);
  return done(2);
}

// ---- RFC 1929 ---------------------------------------------------------------------------------

Parsed parse_user_pass_request(std::string_view d, std::string& user, std::string& pass) {
  if (d.empty()) return need(2);
  if (byte_at(d, 0) != kUserPassVersion) return kBad;
  if (d.size() < 2) return need(2);
  std::size_t ulen = byte_at(d, 1);
  if (d.size() < 2 + ulen + 1) return need(2 + ulen + 1);
  std::size_t plen = byte_at(d, 2 + ulen);
  std::size_t size = 2 + ulen + 1 + plen;
  if (d.size() < size) return need(size);
  user.assign(d.substr(2, ulen));
  pass.assign(d.substr(3 + ulen, plen));
  return done(size);
}

std::optional<std::string> user_pass_request(std::string_view user, std::string_view pass) {
  if (user.size() > 255 || pass.size() > 255) return std::nullopt;
  std::string out{static_cast<char>(kUserPassVersion), static_cast<char>(user.size())};
  out.append(user);
  out.push_back(static_cast<char>(pass.size()));
  out.append(pass);
  return out;
}

std::string user_pass_reply(bool ok) {
  return {static_cast<char>(kUserPassVersion), static_cast<char>(ok ? 0x00 : 0x01)};
}

Parsed parse_user_pass_reply(std::string_view d, std::uint8_t& status) {
  if (d.size() < 2) return need(2);
  if (byte_at(d, 0) != kUserPassVersion) return kBad;
  status = byte_at(d, 1);
  return done(2);
}

// ---- request / reply ----------------------------------------------------------------------------

Parsed parse_request(std::string_view d, Request& out) {
  if (d.empty()) return need(4);
  if (byte_at(d, 0) != kVersion) return kBad;
  if (d.size() < 4) return need(4);
  auto a = parse_address(d.substr(3), out.addr);
  if (a.status == Status::bad) return kBad;
  if (a.status == Status::incomplete) return need(3 + a.size);
  out.cmd = byte_at(d, 1);
  return done(3 + a.size);
}

std::string request(std::uint8_t command, const Address& a) {
  std::string out{static_cast<char>(kVersion), static_cast<char>(command), 0};
  if (!append_address(out, a)) return {};
  return out;
}

std::string reply(std::uint8_t code, const Address& a) { return request(code, a); }

std::string reply(std::uint8_t code) { return reply(code, Address{atyp::ipv4, "0.0.0.0", 0}); }

// ---- UDP --------------------------------------------------------------------------------------

Parsed parse_udp_header(std::string_view d, UdpHeader& out) {
  if (d.size() < 4) return need(4);
  auto a = parse_address(d.substr(3), out.addr);
  if (a.status == Status::bad) return kBad;
  if (a.status == Status::incomplete) return need(3 + a.size);
  out.rsv = be16(d, 0);
  out.frag = byte_at(d, 2);
  return done(3 + a.size);
}

std::string udp_header(const Address& a) {
  std::string out(3, '\0');
  if (!append_address(out, a)) return {};
  return out;
}

std::string udp_tun_header(std::uint16_t payload_len, const Address& a) {
  std::string out;
  put16(out, payload_len);
  out.push_back(static_cast<char>(0xFF));
  if (!append_address(out, a)) return {};
  return out;
}

}  // namespace gost::proto::socks5
