// SOCKS4 / SOCKS4a codec (openssh.com/txt/socks4.protocol and socks4a.protocol, as GOST's gosocks4
// reads and writes them). No I/O; parsers report sizes like proto/socks5.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proto/socks5.hpp"

namespace gost::proto::socks4 {

using socks5::Parsed;
using socks5::Status;

inline constexpr std::uint8_t kVersion = 0x04;
inline constexpr std::size_t kMaxField = 255;  // USERID and 4a host name, without the NUL

namespace cmd {
inline constexpr std::uint8_t connect = 0x01;
inline constexpr std::uint8_t bind = 0x02;
}  // namespace cmd

namespace code {
inline constexpr std::uint8_t granted = 90;          // 0x5A
inline constexpr std::uint8_t failed = 91;           // 0x5B: rejected or failed
inline constexpr std::uint8_t rejected = 92;         // 0x5C (GOST: bypassed target)
inline constexpr std::uint8_t rejected_userid = 93;  // 0x5D (GOST: authentication failure)
}  // namespace code

struct Request {
  std::uint8_t cmd = 0;
  std::string host;  // dotted IPv4, or the 4a host name
  std::uint16_t port = 0;
  bool socks4a = false;  // DSTIP was 0.0.0.x with x ≠ 0 and a host name followed the USERID
  std::string userid;
  std::string address() const;  // "host:port"
};

// VN CD DSTPORT DSTIP USERID NUL [HOST NUL]; bad when VN ≠ 4, CD is not CONNECT/BIND, or a field
// exceeds 255 bytes without its NUL.
Parsed parse_request(std::string_view data, Request& out);
// SOCKS4a form (DSTIP 0.0.0.1 + host) when `socks4a`; otherwise `host` must be an IPv4 literal.
// nullopt when it cannot be encoded.
std::optional<std::string> request(std::uint8_t command, std::string_view host, std::uint16_t port,
                                   std::string_view userid, bool socks4a);
// 00 CD 0000 00000000: GOST never fills in the address.
std::string reply(std::uint8_t cd);
Parsed parse_reply(std::string_view data, std::uint8_t& cd);  // bad when VN ≠ 0

}  // namespace gost::proto::socks4
