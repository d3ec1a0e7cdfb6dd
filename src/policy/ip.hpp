// IP addresses and sets of IP ranges for the policy matchers (docs/ARCHITECTURE.md "Layers and
// rooms": policy/ holds pure matchers, no I/O).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gost::policy {

// An IPv4 or IPv6 address as a number. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a
// dual-stack socket reports for an IPv4 peer) is its IPv4 address, as Go's net.IP treats it.
struct IpAddr {
  bool v6 = false;
  unsigned __int128 value = 0;  // IPv4: the low 32 bits
  bool operator==(const IpAddr&) const = default;
  std::string to_string() const;
};

// An IP literal ("1.2.3.4", "::1", "[::1]"); nullopt for anything else.
std::optional<IpAddr> parse_ip(std::string_view text);
// "10.0.0.0/8", "fd00::/8": the network's first and last address (host bits ignored, as Go's
// net.ParseCIDR).
std::optional<std::pair<IpAddr, IpAddr>> parse_cidr(std::string_view text);
// "a-b" (both of one family, whitespace around each trimmed); a single IP is the range [ip, ip].
std::optional<std::pair<IpAddr, IpAddr>> parse_ip_range(std::string_view text);

// Go's net.SplitHostPort without allocation: host without brackets and port, or, when `addr` is
// not host:port, the whole of it as host and an empty port.
struct HostPortView {
  std::string_view host;
  std::string_view port;
  bool has_port = false;
};
HostPortView split_host_port_view(std::string_view addr);

// A set of IP ranges, looked up in O(log n).
class IpSet {
 public:
  void add(IpAddr lo, IpAddr hi);  // ignored when lo > hi or the families differ
  void finish();                   // call once after the last add()
  bool contains(const IpAddr& ip) const;
  bool empty() const { return v4_.empty() && v6_.empty(); }
  std::size_t size() const { return v4_.size() + v6_.size(); }

 private:
  struct Range {
    unsigned __int128 lo, hi, max_hi;  // max_hi: the largest hi of this and all earlier ranges
  };
  static bool find(const std::vector<Range>& ranges, unsigned __int128 v);
  std::vector<Range> v4_, v6_;
};

}  // namespace gost::policy
