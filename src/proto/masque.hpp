// MASQUE wire pieces without I/O (docs/PROTOCOLS.md "masque: wire"): the CONNECT-UDP path
// (RFC 9298 §2 with GOST's template /.well-known/masque/udp/{host}/{port}/), the payload of an
// HTTP datagram (RFC 9297 §2.1: a context ID, 0 for UDP payloads; on QUIC DATAGRAM frames the
// quarter stream ID comes first) and capsules (RFC 9297 §3.2: type, length, value), of which
// DATAGRAM (type 0) carries HTTP datagrams on the request stream itself.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gost::proto::masque {

constexpr std::string_view kUdpPathPrefix = "/.well-known/masque/udp/";
constexpr std::uint64_t kCapsuleDatagram = 0x00;
// The largest DATAGRAM capsule taken (a UDP payload is at most 65,535 bytes, plus its context
// ID); a longer one is an error that ends the stream. Capsules of other types are skipped
// whatever their length, without being held.
constexpr std::size_t kMaxDatagramCapsule = 65535 + 8;

// GOST's BuildMasquePath: the host escaped as Go's url.PathEscape does (unreserved characters and
// `$&+:=@` stay), the port in decimal.
std::string udp_path(std::string_view host, std::uint16_t port);

struct UdpTarget {
  std::string host;  // unescaped; an IPv6 literal without brackets
  std::uint16_t port = 0;
};
// GOST's ParseMasquePath on a `:path` (a query is ignored): the prefix, then exactly a host and a
// port segment (one trailing slash optional), the host percent-decoded and not empty, the port
// 1..65535 in decimal. nullopt for anything else.
std::optional<UdpTarget> parse_udp_path(std::string_view path);

// An HTTP datagram's payload for a UDP payload: context ID 0, then the bytes.
std::string udp_datagram(std::string_view payload);
// The UDP payload of an HTTP datagram (its context ID taken off); nullopt for another context ID
// (dropped, RFC 9298 §4) or a payload without one.
std::optional<std::string_view> udp_payload(std::string_view http_datagram);

// A DATAGRAM capsule carrying `http_datagram` (context ID and payload).
std::string datagram_capsule(std::string_view http_datagram);

// Reads capsules from a request stream's bytes, fed in pieces as they arrive.
class CapsuleReader {
 public:
  // Appends bytes read from the stream.
  void feed(std::string_view bytes);
  // The value of the next complete DATAGRAM capsule (capsules of other types are skipped); nullopt
  // when more bytes are needed, or when the stream broke the capsule protocol (bad()).
  std::optional<std::string> next();
  bool bad() const { return bad_; }
  // Bytes held for a capsule not yet complete.
  std::size_t held() const { return buf_.size() - off_; }

 private:
  std::string buf_;
  std::size_t off_ = 0;
  std::uint64_t skip_ = 0;  // bytes of an unknown capsule still to drop
  bool bad_ = false;
};

}  // namespace gost::proto::masque
