#include "proto/relay.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace gost::proto::relay {
namespace {

std::uint16_t be16(std::string_view d, std::size_t at) {
  return static_cast<std::uint16_t>((static_cast<unsigned char>(d[at]) << 8) |
                                    static_cast<unsigned char>(d[at + 1]));
}

void put16(std::string& out, std::size_t v) {
  out += static_cast<char>((v >> 8) & 0xFF);
  out += static_cast<char>(v & 0xFF);
}

std::string ipv4_text(const char* p) {
  char buf[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, p, buf, sizeof buf);
  return buf;
}

std::string ipv6_text(const char* p) {
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  if (std::memcmp(p, kMapped, sizeof kMapped) == 0) return ipv4_text(p + 12);  // as Go prints it
  char buf[INET6_ADDRSTRLEN];
  ::inet_ntop(AF_INET6, p, buf, sizeof buf);
  return buf;
}

// ATYP ADDR PORT; nullopt when the payload is too short for its type (docs/PROTOCOLS.md
// "relay: features").
std::optional<Address> decode_address(std::string_view p) {
  if (p.size() < 4) return std::nullopt;
  Address a;
  a.atyp = static_cast<std::uint8_t>(p[0]);
  switch (a.atyp) {
    case kAtypIPv4:
      if (p.size() < 7) return std::nullopt;
      a.host = ipv4_text(p.data() + 1);
      a.port = be16(p, 5);
      return a;
    case kAtypIPv6:
      if (p.size() < 19) return std::nullopt;
      a.host = ipv6_text(p.data() + 1);
      a.port = be16(p, 17);
      return a;
    case kAtypDomain: {
      std::size_t len = static_cast<unsigned char>(p[1]);
      if (p.size() < 4 + len) return std::nullopt;
      a.host.assign(p.data() + 2, len);
      a.port = be16(p, 2 + len);
      return a;
    }
    default:
      return std::nullopt;
  }
}

std::optional<UserAuth> decode_user_auth(std::string_view p) {
  if (p.size() < 2) return std::nullopt;
  std::size_t ulen = static_cast<unsigned char>(p[0]);
  if (1 + ulen + 1 > p.size()) return std::nullopt;
  std::size_t plen = static_cast<unsigned char>(p[1 + ulen]);
  if (2 + ulen + plen > p.size()) return std::nullopt;
  return UserAuth{std::string(p.substr(1, ulen)), std::string(p.substr(2 + ulen, plen))};
}

bool encode_address(std::string& out, const Address& a) {
  std::string payload;
  payload += static_cast<char>(a.atyp);
  if (a.atyp == kAtypIPv4) {
    char b[4];
    if (::inet_pton(AF_INET, a.host.c_str(), b) != 1) return false;
    payload.append(b, 4);
  } else if (a.atyp == kAtypIPv6) {
    char b[16];
    if (::inet_pton(AF_INET6, a.host.c_str(), b) != 1) return false;
    payload.append(b, 16);
  } else if (a.atyp == kAtypDomain) {
    if (a.host.size() > 255) return false;
    payload += static_cast<char>(a.host.size());
    payload += a.host;
  } else {
    return false;
  }
  put16(payload, a.port);
  out += static_cast<char>(FeatureType::address);
  put16(out, payload.size());
  out += payload;
  return true;
}

void encode_network(std::string& out, const Features& f) {
  if (!f.network) return;
  out += static_cast<char>(FeatureType::network);
  put16(out, 2);
  put16(out, *f.network);
}

bool encode_features(std::string& out, const Features& f, bool auth_first) {
  if (!auth_first) encode_network(out, f);
  if (f.auth) {
    if (f.auth->user.size() > 255 || f.auth->password.size() > 255) return false;
    out += static_cast<char>(FeatureType::user_auth);
    put16(out, 2 + f.auth->user.size() + f.auth->password.size());
    out += static_cast<char>(f.auth->user.size());
    out += f.auth->user;
    out += static_cast<char>(f.auth->password.size());
    out += f.auth->password;
  }
  if (auth_first) encode_network(out, f);
  if (f.address && !encode_address(out, *f.address)) return false;
  return true;
}

std::optional<std::string> encode_message(std::uint8_t code, const Features& f, bool auth_first) {
  std::string feats;
  if (!encode_features(feats, f, auth_first) || feats.size() > kMaxFeaturesLength)
    return std::nullopt;
  std::string out;
  out.reserve(kHeaderSize + feats.size());
  out += static_cast<char>(kVersion);
  out += static_cast<char>(code);
  put16(out, feats.size());
  out += feats;
  return out;
}

}  // namespace

std::string_view status_text(std::uint8_t status) {
  switch (static_cast<Status>(status)) {
    case Status::ok:
      return "OK";
    case Status::bad_request:
      return "Bad Request";
    case Status::unauthorized:
      return "Unauthorized";
    case Status::forbidden:
      return "Forbidden";
    case Status::timeout:
      return "Timeout";
    case Status::service_unavailable:
      return "Service Unavailable";
    case Status::host_unreachable:
      return "Host Unreachable";
    case Status::network_unreachable:
      return "Network Unreachable";
    case Status::internal_server_error:
      return "Internal Server Error";
  }
  return "Unknown";
}

std::string_view network_name(std::uint16_t network) {
  switch (static_cast<Network>(network)) {
    case Network::udp:
      return "udp";
    case Network::ip:
      return "ip";
    case Network::unix_socket:
      return "unix";
    case Network::serial:
      return "serial";
    default:
      return "tcp";
  }
}

std::string Address::to_string() const {
  std::string out;
  if (host.find(':') != std::string::npos) {
    out = "[" + host + "]";
  } else {
    out = host;
  }
  out += ':';
  out += std::to_string(port);
  return out;
}

std::optional<Address> parse_address(std::string_view host_port) {
  std::string_view host = host_port;
  std::string_view port;
  if (!host_port.empty() && host_port.front() == '[') {
    auto close = host_port.find(']');
    if (close != std::string_view::npos) {
      host = host_port.substr(1, close - 1);
      auto rest = host_port.substr(close + 1);
      if (!rest.empty() && rest.front() == ':') port = rest.substr(1);
    }
  } else if (auto colon = host_port.rfind(':');
             colon != std::string_view::npos &&
             host_port.substr(0, colon).find(':') == std::string_view::npos) {
    host = host_port.substr(0, colon);
    port = host_port.substr(colon + 1);
  }
  Address a;
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec == std::errc() && end == port.data() + port.size() && p <= 0xFFFF)
    a.port = static_cast<std::uint16_t>(p);
  std::string h(host);
  char b[16];
  if (::inet_pton(AF_INET, h.c_str(), b) == 1) {
    a.atyp = kAtypIPv4;
    a.host = ipv4_text(b);
  } else if (::inet_pton(AF_INET6, h.c_str(), b) == 1) {
    a.host = ipv6_text(b);
    a.atyp = a.host.find(':') == std::string::npos ? kAtypIPv4 : kAtypIPv6;
  } else {
    if (h.size() > 255) return std::nullopt;
    a.atyp = kAtypDomain;
    a.host = std::move(h);
  }
  return a;
}

std::optional<Header> parse_header(std::string_view data) {
  if (data.size() < kHeaderSize) return std::nullopt;
  return Header{static_cast<std::uint8_t>(data[0]), static_cast<std::uint8_t>(data[1]),
                be16(data, 2)};
}

std::optional<Features> parse_features(std::string_view data) {
  Features f;
  while (!data.empty()) {
    if (data.size() < 3) return std::nullopt;
    auto type = static_cast<std::uint8_t>(data[0]);
    std::size_t len = be16(data, 1);
    if (3 + len > data.size()) return std::nullopt;
    std::string_view payload = data.substr(3, len);
    data.remove_prefix(3 + len);
    switch (static_cast<FeatureType>(type)) {
      case FeatureType::user_auth: {
        auto a = decode_user_auth(payload);
        if (!a) return std::nullopt;
        f.auth = std::move(*a);
        break;
      }
      case FeatureType::address: {
        auto a = decode_address(payload);
        if (!a) return std::nullopt;
        f.addresses.push_back(*a);
        f.address = std::move(*a);
        break;
      }
      case FeatureType::tunnel: {
        if (payload.size() < 16) return std::nullopt;
        TunnelId id;
        std::memcpy(id.bytes.data(), payload.data(), std::min(payload.size(), TunnelId::kSize));
        f.tunnel = id;
        break;
      }
      case FeatureType::network:
        if (payload.size() < 2) return std::nullopt;
        f.network = be16(payload, 0);
        break;
      default:
        break;  // unknown: skipped
    }
  }
  return f;
}

std::optional<std::string> encode_request(const Request& r) {
  return encode_message(r.cmd, r.features, (r.cmd & kCmdMask) == kCmdBind);
}

std::optional<std::string> encode_response(const Response& r) {
  return encode_message(r.status, r.features, false);
}

std::string encode_status(Status s) {
  return std::string{static_cast<char>(kVersion), static_cast<char>(s), 0, 0};
}

std::optional<TunnelId> TunnelId::parse(std::string_view t) {
  if (t.size() == 36 + 9 && t.substr(0, 9) == "urn:uuid:") t.remove_prefix(9);
  if (t.size() == 38 && t.front() == '{' && t.back() == '}') t = t.substr(1, 36);
  std::string hex;
  if (t.size() == 36) {
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        if (t[i] != '-') return std::nullopt;
      } else {
        hex += t[i];
      }
    }
  } else if (t.size() == 32) {
    hex = std::string(t);
  } else {
    return std::nullopt;
  }
  TunnelId id;
  for (std::size_t i = 0; i < 16; ++i) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, v, 16);
    if (ec != std::errc() || end != hex.data() + 2 * i + 2) return std::nullopt;
    id.bytes[i] = static_cast<std::uint8_t>(v);
  }
  return id;
}

std::string TunnelId::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 0x0F];
  }
  return out;
}

bool TunnelId::is_zero() const {
  for (std::size_t i = 0; i < 16; ++i)
    if (bytes[i] != 0) return false;
  return true;
}

bool TunnelId::same_id(const TunnelId& o) const {
  return std::memcmp(bytes.data(), o.bytes.data(), 16) == 0;
}

FeatureWriter& FeatureWriter::auth(const UserAuth& a) {
  Features f;
  f.auth = a;
  ok = ok && encode_features(out, f, true);
  return *this;
}

FeatureWriter& FeatureWriter::address(const Address& a) {
  ok = ok && encode_address(out, a);
  return *this;
}

FeatureWriter& FeatureWriter::address(std::string_view host_port) {
  auto a = parse_address(host_port);
  if (!a) {
    ok = false;
    return *this;
  }
  return address(*a);
}

FeatureWriter& FeatureWriter::network(Network n) {
  out += static_cast<char>(FeatureType::network);
  put16(out, 2);
  put16(out, static_cast<std::uint16_t>(n));
  return *this;
}

FeatureWriter& FeatureWriter::tunnel(const TunnelId& id) {
  out += static_cast<char>(FeatureType::tunnel);
  put16(out, TunnelId::kSize);
  out.append(reinterpret_cast<const char*>(id.bytes.data()), TunnelId::kSize);
  return *this;
}

std::optional<std::string> encode_with(std::uint8_t code, const FeatureWriter& features) {
  if (!features.ok || features.out.size() > kMaxFeaturesLength) return std::nullopt;
  std::string out;
  out.reserve(kHeaderSize + features.out.size());
  out += static_cast<char>(kVersion);
  out += static_cast<char>(code);
  put16(out, features.out.size());
  out += features.out;
  return out;
}

std::optional<std::string> encode_datagram(std::string_view data) {
  if (data.size() > kMaxDatagram) return std::nullopt;
  std::string out;
  out.reserve(2 + data.size());
  put16(out, data.size());
  out += data;
  return out;
}

std::optional<std::size_t> datagram_frame_size(std::string_view data) {
  if (data.size() < 2) return std::nullopt;
  return 2 + static_cast<std::size_t>(be16(data, 0));
}

}  // namespace gost::proto::relay
