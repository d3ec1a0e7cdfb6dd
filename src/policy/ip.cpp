#include "policy/ip.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace gost::policy {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr unsigned __int128 kMappedPrefix = static_cast<unsigned __int128>(0xffff) << 32;

}  // namespace

std::string IpAddr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (!v6) {
    const auto v = static_cast<std::uint32_t>(value);
    const std::uint32_t be = htonl(v);
    inet_ntop(AF_INET, &be, buf, sizeof buf);
    return buf;
  }
  unsigned char bytes[16];
  for (int i = 0; i < 16; ++i) bytes[i] = static_cast<unsigned char>(value >> (8 * (15 - i)));
  inet_ntop(AF_INET6, bytes, buf, sizeof buf);
  return buf;
}

std::optional<IpAddr> parse_ip(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (text.find(':') == std::string_view::npos) {
    in_addr a4{};
    if (inet_pton(AF_INET, buf, &a4) != 1) return std::nullopt;
    return IpAddr{false, ntohl(a4.s_addr)};
  }
  unsigned char bytes[16];
  if (inet_pton(AF_INET6, buf, bytes) != 1) return std::nullopt;
  unsigned __int128 v = 0;
  for (unsigned char b : bytes) v = (v << 8) | b;
  if ((v >> 32) == (kMappedPrefix >> 32)) return IpAddr{false, v & 0xffffffffu};
  return IpAddr{true, v};
}

std::optional<std::pair<IpAddr, IpAddr>> parse_cidr(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view addr = text.substr(0, slash), len = text.substr(slash + 1);
  if (addr.empty() || addr.front() == '[') return std::nullopt;
  auto ip = parse_ip(addr);
  int bits = 0;
  auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), bits);
  if (!ip || ec != std::errc() || end != len.data() + len.size() || len.empty())
    return std::nullopt;
  const bool written_v6 = addr.find(':') != std::string_view::npos;
  if (bits < 0 || bits > (written_v6 ? 128 : 32)) return std::nullopt;
  int host_bits = 128 - bits;
  if (!ip->v6) {
    // An IPv4-mapped address written as IPv6 (::ffff:a.b.c.d/n) counts its prefix over 128 bits.
    if (written_v6 && bits < 96) return std::nullopt;
    host_bits = (written_v6 ? 128 : 32) - bits;
  }
  const unsigned __int128 mask = host_bits >= 128
                                     ? ~static_cast<unsigned __int128>(0)
                                     : (static_cast<unsigned __int128>(1) << host_bits) - 1;
  return std::make_pair(IpAddr{ip->v6, ip->value & ~mask}, IpAddr{ip->v6, ip->value | mask});
}

std::optional<std::pair<IpAddr, IpAddr>> parse_ip_range(std::string_view text) {
  const auto dash = text.find('-');
  if (dash == std::string_view::npos) {
    auto ip = parse_ip(trim(text));
    if (!ip || trim(text).front() == '[') return std::nullopt;
    return std::make_pair(*ip, *ip);
  }
  if (text.find('-', dash + 1) != std::string_view::npos) return std::nullopt;
  auto lo = parse_ip(trim(text.substr(0, dash)));
  auto hi = parse_ip(trim(text.substr(dash + 1)));
  if (!lo || !hi || lo->v6 != hi->v6) return std::nullopt;
  return std::make_pair(*lo, *hi);
}

HostPortView split_host_port_view(std::string_view addr) {
  HostPortView out{addr, {}, false};
  if (!addr.empty() && addr.front() == '[') {
    const auto close = addr.find(']');
    if (close == std::string_view::npos || close + 1 >= addr.size() || addr[close + 1] != ':')
      return out;
    if (addr.find_first_of("[]", close + 1) != std::string_view::npos) return out;
    return {addr.substr(1, close - 1), addr.substr(close + 2), true};
  }
  const auto colon = addr.rfind(':');
  if (colon == std::string_view::npos) return out;
  if (addr.substr(0, colon).find(':') != std::string_view::npos) return out;
  if (addr.find_first_of("[]") != std::string_view::npos) return out;
  return {addr.substr(0, colon), addr.substr(colon + 1), true};
}

void IpSet::add(IpAddr lo, IpAddr hi) {
  if (lo.v6 != hi.v6 || lo.value > hi.value) return;
  (lo.v6 ? v6_ : v4_).push_back({lo.value, hi.value, hi.value});
}

void IpSet::finish() {
  for (auto* list : {&v4_, &v6_}) {
    std::sort(list->begin(), list->end(),
              [](const Range& a, const Range& b) { return a.lo < b.lo; });
    unsigned __int128 running = 0;
    for (auto& r : *list) r.max_hi = running = std::max(running, r.hi);
  }
}

bool IpSet::find(const std::vector<Range>& ranges, unsigned __int128 v) {
  // The last range starting at or before v; some range covers v iff the largest end among it and
  // those before it reaches v.
  auto it = std::upper_bound(ranges.begin(), ranges.end(), v,
                             [](unsigned __int128 x, const Range& r) { return x < r.lo; });
  if (it == ranges.begin()) return false;
  return std::prev(it)->max_hi >= v;
}

bool IpSet::contains(const IpAddr& ip) const { return find(ip.v6 ? v6_ : v4_, ip.value); }

}  // namespace gost::policy
