#include "proto/proxy_protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "core/address.hpp"

namespace gost::proto::proxy_protocol {
namespace {

constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_v4_mapped(const Endpoint& e) {
  return e.v6 && std::memcmp(e.ip.data(), kMapped, sizeof kMapped) == 0;
}

// The IPv4 form of an IPv4 or IPv4-mapped endpoint.
Endpoint as_v4(const Endpoint& e) {
  if (!e.v6) return e;
  Endpoint v4;
  std::copy_n(e.ip.begin() + 12, 4, v4.ip.begin());
  v4.port = e.port;
  return v4;
}

// The IPv6 form (IPv4 addresses mapped).
Endpoint as_v6(const Endpoint& e) {
  if (e.v6) return e;
  Endpoint v6;
  v6.v6 = true;
  std::copy_n(kMapped, 12, v6.ip.begin());
  std::copy_n(e.ip.begin(), 4, v6.ip.begin() + 12);
  v6.port = e.port;
  return v6;
}

std::string ip_text(const Endpoint& e) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (e.v6 && !is_v4_mapped(e)) {
    ::inet_ntop(AF_INET6, e.ip.data(), buf, sizeof buf);
  } else {
    Endpoint v4 = as_v4(e);
    ::inet_ntop(AF_INET, v4.ip.data(), buf, sizeof buf);
  }
  return buf;
}

// The literal as it stands in the header: an IPv6 literal, whatever it holds, for TCP6.
std::string literal(const Endpoint& e, bool v6) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (v6)
    ::inet_ntop(AF_INET6, as_v6(e).ip.data(), buf, sizeof buf);
  else
    ::inet_ntop(AF_INET, as_v4(e).ip.data(), buf, sizeof buf);
  return buf;
}

bool parse_ip(std::string_view text, bool v6, Endpoint& out) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  out.v6 = v6;
  out.ip = {};
  return ::inet_pton(v6 ? AF_INET6 : AF_INET, buf, out.ip.data()) == 1;
}

// Decimal 0..65535, digits only (spec 2.1: "a decimal integer in the range 0..65535").
bool parse_port(std::string_view text, std::uint16_t& out) {
  if (text.empty() || text.size() > 5) return false;
  unsigned v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

Parsed bad(std::string_view why) {
  Parsed p;
  p.status = Status::bad;
  p.error = why;
  return p;
}

Parsed no_header() {
  Parsed p;
  p.status = Status::not_proxy;
  return p;
}

Parsed incomplete(std::size_t need) {
  Parsed p;
  p.status = Status::incomplete;
  p.size = need;
  return p;
}

// "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" (spec 2.1).
Parsed parse_v1(std::string_view data) {
  std::string_view window = data.substr(0, kV1MaxSize);
  auto lf = window.find('\n');
  if (lf == std::string_view::npos) {
    if (data.size() >= kV1MaxSize) return bad("v1 header longer than 107 bytes");
    return incomplete(data.size() + 1);
  }
  if (lf == 0 || data[lf - 1] != '\r') return bad("v1 header not terminated by CRLF");
  std::string_view line = data.substr(0, lf - 1);
  // Tokens separated by exactly one space.
  std::string_view tokens[7];
  std::size_t n = 0;
  std::size_t start = 0;
  for (;;) {
    auto sp = line.find(' ', start);
    std::string_view tok =
        line.substr(start, sp == std::string_view::npos ? line.npos : sp - start);
    if (n == std::size(tokens)) return bad("v1 header has too many fields");
    tokens[n++] = tok;
    if (sp == std::string_view::npos) break;
    start = sp + 1;
  }
  if (tokens[0] != kV1Signature) return bad("v1 header does not start with \"PROXY \"");
  Parsed p;
  p.status = Status::complete;
  p.size = lf + 1;
  p.header.version = 1;
  if (n >= 2 && tokens[1] == "UNKNOWN") return p;  // the rest of the line is ignored (spec 2.1)
  if (n < 2 || (tokens[1] != "TCP4" && tokens[1] != "TCP6"))
    return bad("v1 header: protocol is not TCP4, TCP6 or UNKNOWN");
  if (n != 6) return bad("v1 header: wrong number of fields");
  bool v6 = tokens[1] == "TCP6";
  Header& h = p.header;
  if (!parse_ip(tokens[2], v6, h.source) || !parse_ip(tokens[3], v6, h.destination))
    return bad("v1 header: invalid address");
  if (!parse_port(tokens[4], h.source.port) || !parse_port(tokens[5], h.destination.port))
    return bad("v1 header: invalid port");
  h.has_addresses = true;
  h.family = v6 ? Family::inet6 : Family::inet;
  h.transport = 1;
  return p;
}

Parsed parse_v2(std::string_view data) {
  if (data.size() < kV2FixedSize) return incomplete(kV2FixedSize);
  auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(data[i]); };
  std::uint8_t ver_cmd = byte(12);
  if (ver_cmd >> 4 != 2) return bad("v2 header: version is not 2");
  std::uint8_t command = ver_cmd & 0x0F;
  if (command > 1) return bad("v2 header: command is neither LOCAL nor PROXY");
  std::uint8_t fam = byte(13);
  // The only valid family/protocol bytes (spec 2.2: others "must be rejected as invalid").
  static constexpr std::uint8_t kValid[] = {0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32};
  if (std::find(std::begin(kValid), std::end(kValid), fam) == std::end(kValid))
    return bad("v2 header: invalid address family or protocol");
  std::size_t len = (static_cast<std::size_t>(byte(14)) << 8) | byte(15);
  if (len > kV2MaxBlock) return bad("v2 header: address block longer than 4096 bytes");
  std::size_t total = kV2FixedSize + len;
  if (data.size() < total) return incomplete(total);

  Parsed p;
  p.status = Status::complete;
  p.size = total;
  Header& h = p.header;
  h.version = 2;
  h.local_command = command == 0;
  h.family = static_cast<Family>(fam >> 4);
  h.transport = fam & 0x0F;
  // LOCAL: the block, family included, is discarded (spec 2.2).
  if (h.local_command) return p;
  std::size_t addr_len = 0;
  switch (h.family) {
    case Family::unspec:
      return p;  // no address: the block is ignored
    case Family::inet:
      addr_len = 12;
      break;
    case Family::inet6:
      addr_len = 36;
      break;
    case Family::unix_:
      addr_len = 216;
      break;
  }
  if (len < addr_len) return bad("v2 header: address block too short for its family");
  std::string_view block = data.substr(kV2FixedSize, len);
  if (h.family != Family::unix_) {
    std::size_t ip_len = h.family == Family::inet ? 4 : 16;
    h.source.v6 = h.destination.v6 = ip_len == 16;
    std::memcpy(h.source.ip.data(), block.data(), ip_len);
    std::memcpy(h.destination.ip.data(), block.data() + ip_len, ip_len);
    auto port_at = [&](std::size_t i) {
      return static_cast<std::uint16_t>((static_cast<std::uint8_t>(block[i]) << 8) |
                                        static_cast<std::uint8_t>(block[i + 1]));
    };
    h.source.port = port_at(2 * ip_len);
    h.destination.port = port_at(2 * ip_len + 2);
    h.has_addresses = true;
  }
  // TLVs: type, 16-bit length, value; each must fit in the block (spec 2.2.7).
  std::size_t at = addr_len;
  while (at < block.size()) {
    if (block.size() - at < 3) return bad("v2 header: truncated TLV");
    std::size_t vlen = (static_cast<std::size_t>(static_cast<std::uint8_t>(block[at + 1])) << 8) |
                       static_cast<std::uint8_t>(block[at + 2]);
    if (block.size() - at - 3 < vlen) return bad("v2 header: TLV longer than the block");
    at += 3 + vlen;
    ++h.tlv_count;
  }
  return p;
}

void put16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}

}  // namespace

std::string Endpoint::to_string() const {
  return join_host_port(ip_text(*this), std::to_string(port));
}

std::optional<Endpoint> endpoint_from_text(std::string_view host_port) {
  auto hp = split_host_port(host_port);
  if (!hp) return std::nullopt;
  Endpoint e;
  if (!parse_port(hp->port, e.port)) return std::nullopt;
  if (parse_ip(hp->host, false, e) || parse_ip(hp->host, true, e)) return e;
  return std::nullopt;
}

Parsed parse(std::string_view data) {
  if (data.empty()) return incomplete(1);
  // As pires' Read(): the first byte decides whether a header may follow; a prefix that stops
  // matching either signature is no header at all.
  if (data[0] == kV1Signature[0]) {
    std::size_t n = std::min(data.size(), kV1Signature.size());
    if (data.substr(0, n) != kV1Signature.substr(0, n)) return no_header();
    if (n < kV1Signature.size()) return incomplete(kV1Signature.size());
    return parse_v1(data);
  }
  if (data[0] == kV2Signature[0]) {
    std::size_t n = std::min(data.size(), kV2Signature.size());
    if (data.substr(0, n) != kV2Signature.substr(0, n)) return no_header();
    if (n < kV2Signature.size()) return incomplete(kV2Signature.size());
    return parse_v2(data);
  }
  return no_header();
}

std::string build_v1(const Endpoint& source, const Endpoint& destination) {
  bool v4 = (!source.v6 || is_v4_mapped(source)) && (!destination.v6 || is_v4_mapped(destination));
  std::string out = "PROXY ";
  out += v4 ? "TCP4 " : "TCP6 ";
  out += literal(source, !v4);
  out += ' ';
  out += literal(destination, !v4);
  out += ' ';
  out += std::to_string(source.port);
  out += ' ';
  out += std::to_string(destination.port);
  out += "\r\n";
  return out;
}

std::string build_v2(const Endpoint& source, const Endpoint& destination) {
  bool v4 = (!source.v6 || is_v4_mapped(source)) && (!destination.v6 || is_v4_mapped(destination));
  std::string out(kV2Signature);
  out.push_back(0x21);                                 // version 2, PROXY
  out.push_back(static_cast<char>(v4 ? 0x11 : 0x21));  // TCP over IPv4 / IPv6
  put16(out, v4 ? 12 : 36);
  Endpoint s = v4 ? as_v4(source) : as_v6(source);
  Endpoint d = v4 ? as_v4(destination) : as_v6(destination);
  std::size_t ip_len = v4 ? 4 : 16;
  out.append(reinterpret_cast<const char*>(s.ip.data()), ip_len);
  out.append(reinterpret_cast<const char*>(d.ip.data()), ip_len);
  put16(out, source.port);
  put16(out, destination.port);
  return out;
}

std::string build_for_node(int version, std::string_view source, std::string_view destination) {
  Endpoint src = endpoint_from_text(source).value_or(Endpoint{});
  Endpoint dst = endpoint_from_text(destination).value_or(Endpoint{});
  return version == 1 ? build_v1(src, dst) : build_v2(src, dst);
}

std::string build_v1_unknown() { return "PROXY UNKNOWN\r\n"; }

std::string build_v2_local() {
  std::string out(kV2Signature);
  out.push_back(0x20);  // version 2, LOCAL
  out.push_back(0x00);  // AF_UNSPEC
  put16(out, 0);
  return out;
}

}  // namespace gost::proto::proxy_protocol
