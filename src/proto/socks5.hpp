// SOCKS5 codec (RFC 1928, RFC 1929 and GOST's extensions, docs/PROTOCOLS.md "socks5"): greeting and
// method selection, username/password, request/reply, the UDP header and UDP-TUN framing. No I/O.
//
// Every parser looks at the bytes received so far and answers `complete` (with the message size,
// so a reader never consumes more than one message), `incomplete` (with the total size known to
// be needed, so a reader can read exactly that much more) or `bad`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gost::proto::socks5 {

inline constexpr std::uint8_t kVersion = 0x05;
inline constexpr std::uint8_t kUserPassVersion = 0x01;

namespace method {
inline constexpr std::uint8_t no_auth = 0x00;
inline constexpr std::uint8_t user_pass = 0x02;
inline constexpr std::uint8_t tls = 0x80;       // GOST: TLS over the stream, no authentication
inline constexpr std::uint8_t tls_auth = 0x82;  // GOST: TLS, then RFC 1929 inside it
inline constexpr std::uint8_t none_acceptable = 0xFF;
}  // namespace method

namespace cmd {
inline constexpr std::uint8_t connect = 0x01;
inline constexpr std::uint8_t bind = 0x02;
inline constexpr std::uint8_t udp_associate = 0x03;
inline constexpr std::uint8_t tor_resolve = 0xF0;
inline constexpr std::uint8_t tor_resolve_ptr = 0xF1;
inline constexpr std::uint8_t mbind = 0xF2;
inline constexpr std::uint8_t udp_tun = 0xF3;
}  // namespace cmd

namespace atyp {
inline constexpr std::uint8_t ipv4 = 0x01;
inline constexpr std::uint8_t domain = 0x03;
inline constexpr std::uint8_t ipv6 = 0x04;
}  // namespace atyp

namespace rep {
inline constexpr std::uint8_t succeeded = 0x00;
inline constexpr std::uint8_t general_failure = 0x01;
inline constexpr std::uint8_t not_allowed = 0x02;
inline constexpr std::uint8_t network_unreachable = 0x03;
inline constexpr std::uint8_t host_unreachable = 0x04;
inline constexpr std::uint8_t command_not_supported = 0x07;
}  // namespace rep

enum class Status { complete, incomplete, bad };

struct Parsed {
  Status status = Status::bad;
  // complete: bytes the message occupies; incomplete: total bytes known to be needed (more than
  // were given; the real size may turn out larger once those have arrived).
  std::size_t size = 0;
};

struct Address {
  std::uint8_t type = atyp::ipv4;
  std::string host;  // IP text (IPv6 without brackets) or domain name
  std::uint16_t port = 0;
  // "host:port", IPv6 bracketed ("[::1]:80").
  std::string to_string() const;
  bool operator==(const Address&) const = default;
};

// GOST's encoding of an address given as text: IPv4 literal (incl. IPv4-mapped IPv6) → ATYP 1,
// IPv6 literal → ATYP 4, other names → ATYP 3; an empty or unsplittable address → 0.0.0.0.
// nullopt when a domain is longer than 255 bytes or the port is not a number in 0..65535.
std::optional<Address> address_from_text(std::string_view host_port);
// ATYP ADDR PORT; false (nothing appended) when the address cannot be encoded.
bool append_address(std::string& out, const Address& a);
Parsed parse_address(std::string_view data, Address& out);

// ---- method negotiation -----------------------------------------------------------------------
// VER NMETHODS METHODS...; bad when VER ≠ 5 or NMETHODS = 0.
Parsed parse_greeting(std::string_view data, std::vector<std::uint8_t>& methods);
std::string greeting(const std::vector<std::uint8_t>& methods);
// What a GOST client offers ("socks5: connector"): 00, 02 with credentials, then 80 (and 82) unless
// notls.
std::vector<std::uint8_t> client_methods(bool has_credentials, bool notls);
// The server's choice ("socks5: method selection", development-head table).
std::uint8_t select_method(const std::vector<std::uint8_t>& offered, bool auth_required,
                           bool tls_allowed);
std::string method_reply(std::uint8_t m);
Parsed parse_method_reply(std::string_view data, std::uint8_t& m);  // bad when VER ≠ 5

// ---- RFC 1929 ---------------------------------------------------------------------------------
// bad when the first byte is not 0x01.
Parsed parse_user_pass_request(std::string_view data, std::string& user, std::string& pass);
// nullopt when user or password is longer than 255 bytes.
std::optional<std::string> user_pass_request(std::string_view user, std::string_view pass);
std::string user_pass_reply(bool ok);
Parsed parse_user_pass_reply(std::string_view data, std::uint8_t& status);  // bad when VER ≠ 1

// ---- request / reply ----------------------------------------------------------------------------
struct Request {
  std::uint8_t cmd = 0;  // CMD of a request, REP of a reply
  Address addr;
};
// VER CMD RSV ATYP ADDR PORT; bad when VER ≠ 5 or the ATYP is unknown. RSV is ignored.
Parsed parse_request(std::string_view data, Request& out);
inline Parsed parse_reply(std::string_view data, Request& out) { return parse_request(data, out); }
// Empty string when the address cannot be encoded.
std::string request(std::uint8_t command, const Address& a);
std::string reply(std::uint8_t code, const Address& a);
// A reply with the zero address 0.0.0.0:0 (every failure reply GOST sends).
std::string reply(std::uint8_t code);

// ---- UDP --------------------------------------------------------------------------------------
// RSV(2) FRAG(1) ATYP ADDR PORT. In UDP-TUN framing ("socks5: UDP-TUN") RSV carries the payload
// length and FRAG is 0xFF.
struct UdpHeader {
  std::uint16_t rsv = 0;
  std::uint8_t frag = 0;
  Address addr;
};
Parsed parse_udp_header(std::string_view data, UdpHeader& out);
// Empty string when the address cannot be encoded.
std::string udp_header(const Address& a);                                 // standard: 00 00 00 ...
std::string udp_tun_header(std::uint16_t payload_len, const Address& a);  // LEN FF ...

}  // namespace gost::proto::socks5
