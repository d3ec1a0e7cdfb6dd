#include "proto/socks4.hpp"

#include <arpa/inet.h>

#include <cstring>

#include "core/address.hpp"

namespace gost::proto::socks4 {
namespace {

constexpr Parsed kBad{Status::bad, 0};

// Position of the NUL ending a field that starts at `from`; npos when not there yet. `too_long`
// is set when more than kMaxField bytes arrived without a NUL.
std::size_t field_end(std::string_view d, std::size_t from, bool& too_long) {
  auto pos = d.find('\0', from);
  too_long = pos == std::string_view::npos ? d.size() - from > kMaxField : pos - from > kMaxField;
  return pos;
}

}  // namespace

std::string Request::address() const { return join_host_port(host, std::to_string(port)); }

Parsed parse_request(std::string_view d, Request& out) {
  if (d.empty()) return {Status::incomplete, 8};
  if (static_cast<std::uint8_t>(d[0]) != kVersion) return kBad;
  if (d.size() < 2) return {Status::incomplete, 8};
  auto c = static_cast<std::uint8_t>(d[1]);
  if (c != cmd::connect && c != cmd::bind) return kBad;
  if (d.size() < 8) return {Status::incomplete, 8};
  const auto* ip = reinterpret_cast<const unsigned char*>(d.data()) + 4;
  bool is4a = (ip[0] | ip[1] | ip[2]) == 0 && ip[3] != 0;
  bool too_long = false;
  auto uend = field_end(d, 8, too_long);
  if (too_long) return kBad;
  if (uend == std::string_view::npos) return {Status::incomplete, d.size() + 1};
  std::size_t size = uend + 1;
  std::string host;
  if (is4a) {
    auto hend = field_end(d, size, too_long);
    if (too_long) return kBad;
    if (hend == std::string_view::npos) return {Status::incomplete, d.size() + 1};
    host.assign(d.substr(size, hend - size));
    size = hend + 1;
  } else {
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, ip, text, sizeof text);
    host = text;
  }
  out.cmd = c;
  out.port = static_cast<std::uint16_t>(static_cast<std::uint8_t>(d[2]) << 8 |
                                        static_cast<std::uint8_t>(d[3]));
  out.socks4a = is4a;
  out.host = std::move(host);
  out.userid.assign(d.substr(8, uend - 8));
  return {Status::complete, size};
}

std::optional<std::string> request(std::uint8_t command, std::string_view host, std::uint16_t port,
                                   std::string_view userid, bool socks4a) {
  if (userid.size() > kMaxField || userid.find('\0') != std::string_view::npos) return std::nullopt;
  unsigned char ip[4] = {0, 0, 0, 1};
  if (socks4a) {
    if (host.size() > kMaxField || host.find('\0') != std::string_view::npos) return std::nullopt;
  } else if (inet_pton(AF_INET, std::string(host).c_str(), ip) != 1) {
    return std::nullopt;
  }
  std::string out{static_cast<char>(kVersion), static_cast<char>(command),
                  static_cast<char>(port >> 8), static_cast<char>(port & 0xFF)};
  out.append(reinterpret_cast<const char*>(ip), 4);
  out.append(userid);
  out.push_back('\0');
  if (socks4a) {
    out.append(host);
    out.push_back('\0');
  }
  return out;
}

std::string reply(std::uint8_t cd) {
  std::string out(8, '\0');
  out[1] = static_cast<char>(cd);
  return out;
}

Parsed parse_reply(std::string_view d, std::uint8_t& cd) {
  if (d.size() < 8) return {Status::incomplete, 8};
  if (d[0] != 0) return kBad;
  cd = static_cast<std::uint8_t>(d[1]);
  return {Status::complete, 8};
}

}  // namespace gost::proto::socks4
