// PROXY protocol v1 and v2 codec (haproxy's proxy-protocol.txt, as GOST reads it with
// pires/go-proxyproto; docs/PROTOCOLS.md "PROXY protocol"). No I/O.
//
// parse() looks at the bytes received so far and answers `not_proxy` (no header: the bytes belong
// to the next protocol and must be left where they are), `incomplete` (with the total size known
// to be needed), `complete` (with the header's exact size, so a reader consumes the header and
// nothing after it) or `bad` (a header that is malformed: the connection is closed).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gost::proto::proxy_protocol {

// "PROXY" and the 12-byte v2 signature (spec 2.1 and 2.2).
inline constexpr std::string_view kV1Signature = "PROXY";
inline constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
// A v1 line is at most 107 bytes, CRLF included (spec 2.1).
inline constexpr std::size_t kV1MaxSize = 107;
// The v2 fixed part: signature, version/command, family/protocol, length.
inline constexpr std::size_t kV2FixedSize = 16;
// Our bound on the v2 address + TLV block. pires/go-proxyproto reads the block with Peek() on a
// 4096-byte bufio.Reader, so GOST refuses anything longer too.
inline constexpr std::size_t kV2MaxBlock = 4096;

enum class Status { not_proxy, incomplete, complete, bad };

// v2 address families (high nibble of byte 14, spec 2.2).
enum class Family : std::uint8_t { unspec = 0, inet = 1, inet6 = 2, unix_ = 3 };

struct Endpoint {
  bool v6 = false;
  std::array<std::uint8_t, 16> ip{};  // network order; the first 4 bytes when !v6
  std::uint16_t port = 0;
  // "1.2.3.4:80", "[2001:db8::1]:80"; an IPv4-mapped IPv6 address is shown as IPv4 (as Go's
  // net.TCPAddr.String() and our endpoint_text() do).
  std::string to_string() const;
  bool operator==(const Endpoint&) const = default;
};

// "ip:port" (IPv6 bracketed) → Endpoint; nullopt for anything else (names, missing port, ...).
std::optional<Endpoint> endpoint_from_text(std::string_view host_port);

struct Header {
  int version = 0;  // 1 or 2
  // True when the header carries the addresses of the real client: v1 TCP4/TCP6, v2 PROXY over
  // AF_INET/AF_INET6. False for v1 UNKNOWN, v2 LOCAL, v2 AF_UNSPEC and AF_UNIX: the receiver keeps
  // the connection's own addresses (spec 2.1, 2.2; pires reports the raw ones then, too).
  bool has_addresses = false;
  bool local_command = false;  // v2 LOCAL (health checks from the proxy itself)
  Family family = Family::unspec;
  std::uint8_t transport = 0;  // v2: 0 unspec, 1 stream, 2 datagram; v1: 1 for TCP4/TCP6
  Endpoint source;
  Endpoint destination;
  std::size_t tlv_count = 0;  // v2 TLVs skipped
};

struct Parsed {
  Status status = Status::bad;
  // complete: the header's size in bytes; incomplete: the total number of bytes known to be
  // needed (more than were given; for v1, one more byte, as the line's end is not known yet).
  std::size_t size = 0;
  Header header;           // complete only
  std::string_view error;  // bad only: what was wrong (static text)
};

Parsed parse(std::string_view data);

// The headers GOST's nodes send (pires' HeaderProxyFromAddrs, Format): v1 "PROXY TCP4|TCP6 src dst
// sport dport\r\n", v2 PROXY command over AF_INET/AF_INET6 + STREAM. When the two addresses are of
// different families both are written as IPv6 (IPv4-mapped).
std::string build_v1(const Endpoint& source, const Endpoint& destination);
std::string build_v2(const Endpoint& source, const Endpoint& destination);
// The header a node with `proxyProtocol: version` is sent right after it is dialed (GOST's
// proxyproto.WrapClientConn): `source` the client's address, `destination` the address the client
// connected to, both "ip:port"; what is not an IP endpoint is sent as 0.0.0.0 (GOST's
// convertAddr). Version 1 builds v1, any other v2 (pires' HeaderProxyFromAddrs).
std::string build_for_node(int version, std::string_view source, std::string_view destination);
// v1 "PROXY UNKNOWN\r\n" / v2 LOCAL with AF_UNSPEC and no address block.
std::string build_v1_unknown();
std::string build_v2_local();

}  // namespace gost::proto::proxy_protocol
