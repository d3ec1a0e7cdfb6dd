// GOST relay protocol codec (docs/PROTOCOLS.md "relay"): request/response headers, feature TLVs and
// the 2-byte length framing of UDP CONNECT datagrams. Pure functions over bytes, no I/O; every
// length is bounded by its 8/16-bit wire field and checked against the input before use.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gost::proto::relay {

inline constexpr std::uint8_t kVersion = 0x01;
inline constexpr std::size_t kHeaderSize = 4;  // VER, CMD/STATUS, FEALEN(2)
inline constexpr std::size_t kMaxFeaturesLength = 0xFFFF;
inline constexpr std::size_t kMaxDatagram = 0xFFFF;

// CMD low nibble (the high nibble carries flags).
inline constexpr std::uint8_t kCmdMask = 0x0F;
inline constexpr std::uint8_t kCmdConnect = 0x01;  // 0x00 is served as CONNECT too
inline constexpr std::uint8_t kCmdBind = 0x02;
inline constexpr std::uint8_t kCmdAssociate = 0x03;  // defined, never served
inline constexpr std::uint8_t kFlagUdp = 0x80;       // FUDP

enum class Status : std::uint8_t {
  ok = 0x00,
  bad_request = 0x01,
  unauthorized = 0x02,
  forbidden = 0x03,
  timeout = 0x04,
  service_unavailable = 0x05,
  host_unreachable = 0x06,
  network_unreachable = 0x07,
  internal_server_error = 0x08,
};
// "OK", "Bad Request", ... ("Unknown" for other values).
std::string_view status_text(std::uint8_t status);

enum class FeatureType : std::uint8_t {
  user_auth = 0x01,
  address = 0x02,
  tunnel = 0x03,
  network = 0x04
};

enum class Network : std::uint16_t {
  tcp = 0x0000,
  udp = 0x0001,
  ip = 0x0002,
  unix_socket = 0x0010,
  serial = 0x0011
};
// "tcp", "udp", "ip", "unix", "serial"; unknown values are tcp (as GOST).
std::string_view network_name(std::uint16_t network);

inline constexpr std::uint8_t kAtypIPv4 = 0x01;
inline constexpr std::uint8_t kAtypDomain = 0x03;
inline constexpr std::uint8_t kAtypIPv6 = 0x04;

struct Address {
  std::uint8_t atyp = kAtypDomain;
  std::string host;  // dotted IPv4, IPv6 text (v4-mapped shown as IPv4) or domain; may be empty
  std::uint16_t port = 0;
  // "host:port", IPv6 bracketed (Go's net.JoinHostPort); ":port" for an empty host.
  std::string to_string() const;
  bool operator==(const Address&) const = default;
};
// From "host:port" text: IPv4 literal → 0x01, IPv6 literal → 0x04 (v4-mapped → 0x01), otherwise a
// domain; a missing or non-numeric port is 0. nullopt when the domain is longer than 255 bytes.
std::optional<Address> parse_address(std::string_view host_port);

struct UserAuth {
  std::string user;
  std::string password;
  bool operator==(const UserAuth&) const = default;
};

// The tunnel-id feature (type 0x03, docs/PROTOCOLS.md "tunnel"): ID(16) FLAG(1) RSV(2) WEIGHT(1).
// In a request it names the tunnel (FLAG 0x80: private), in a BIND response the connector (FLAG
// 0x01: a UDP connector). go-gost/relay TunnelID / ConnectorID.
struct TunnelId {
  static constexpr std::size_t kSize = 20;
  static constexpr std::uint8_t kFlagPrivate = 0x80;
  static constexpr std::uint8_t kFlagUdp = 0x01;
  std::array<std::uint8_t, kSize> bytes{};

  // From a UUID in its text forms ("893787fd-fcd2-46a0-8dc4-f9f8a1f1b0c9", braces, "urn:uuid:" or
  // 32 hex digits, as Go's uuid.Parse); nullopt otherwise.
  static std::optional<TunnelId> parse(std::string_view text);
  // The 16 ID bytes as a lower-case UUID; the flags and the weight are not part of it.
  std::string to_string() const;
  bool is_zero() const;                   // all 16 ID bytes zero
  bool same_id(const TunnelId& o) const;  // the 16 ID bytes are equal
  std::uint8_t flag() const { return bytes[16]; }
  bool is_private() const { return (bytes[16] & kFlagPrivate) != 0; }
  bool is_udp() const { return (bytes[16] & kFlagUdp) != 0; }
  std::uint8_t weight() const { return bytes[19]; }
  void set_flag(std::uint8_t f) { bytes[16] |= f; }
  void set_weight(std::uint8_t w) { bytes[19] = w; }
  bool operator==(const TunnelId&) const = default;
};

// The features GOST's handler and connector use; a repeated type keeps the last one, unknown types
// are skipped (relay v0.7.0 tolerance).
struct Features {
  std::optional<UserAuth> auth;
  std::optional<Address> address;
  std::optional<std::uint16_t> network;
  // Type 0x03: ignored by the relay handler; the tunnel protocol's tunnel or connector ID. A
  // payload of 16..19 bytes is padded with zeros, bytes beyond 20 are ignored.
  std::optional<TunnelId> tunnel;
  // Every address feature in order (the tunnel protocol sends two: source, then destination).
  std::vector<Address> addresses;
  bool has_tunnel() const { return tunnel.has_value(); }
  bool operator==(const Features&) const = default;
};

struct Header {
  std::uint8_t version = kVersion;
  std::uint8_t code = 0;  // CMD/FLAGS in a request, STATUS in a response
  std::uint16_t features_length = 0;
};
// Decodes the fixed 4-byte header; nullopt when fewer than 4 bytes are given.
std::optional<Header> parse_header(std::string_view data);

// Decodes exactly `data` (the FEALEN bytes). nullopt when a TLV overruns the data or a known
// feature's payload is shorter than its layout needs.
std::optional<Features> parse_features(std::string_view data);

struct Request {
  std::uint8_t cmd = kCmdConnect;  // full byte, flags included
  Features features;
};
struct Response {
  std::uint8_t status = 0;
  Features features;
};

// Encoders. Feature order is GOST's connector order: network, user auth, address for CONNECT;
// user auth, network, address for BIND (and the UDP association, examples I/J, M). nullopt when a
// name, password or domain exceeds 255 bytes or the features exceed 65535 bytes.
std::optional<std::string> encode_request(const Request& r);
std::optional<std::string> encode_response(const Response& r);
// "01 <status> 00 00": the common responses without features.
std::string encode_status(Status s);

// ---- the tunnel protocol's messages (go-gost/x handler/tunnel, connector/tunnel) -------------
// Features in the tunnel protocol's order, each appended as a TLV. false when a field is too
// long (user, password or domain over 255 bytes).
struct FeatureWriter {
  std::string out;
  bool ok = true;
  FeatureWriter& auth(const UserAuth& a);
  FeatureWriter& address(const Address& a);
  FeatureWriter& address(std::string_view host_port);  // as GOST's AddrFeature.ParseFrom
  FeatureWriter& network(Network n);
  FeatureWriter& tunnel(const TunnelId& id);
};
// VER CODE FEALEN FEATURES; nullopt when the writer failed or the features exceed 65535 bytes.
std::optional<std::string> encode_with(std::uint8_t code, const FeatureWriter& features);

// ---- UDP CONNECT framing: LEN(2) + DATA -------------------------------------------------------
// nullopt when data is longer than 65535 bytes.
std::optional<std::string> encode_datagram(std::string_view data);
// Length of the frame at the start of `data` (2 + LEN), or nullopt while fewer than 2 bytes.
std::optional<std::size_t> datagram_frame_size(std::string_view data);

}  // namespace gost::proto::relay
