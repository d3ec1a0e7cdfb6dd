// host:port helpers (Go's net.SplitHostPort / JoinHostPort semantics).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gost {

struct HostPort {
  std::string host;  // without brackets
  std::string port;  // may be empty when absent
};

// "h:p", "[v6]:p", ":p" → parts; nullopt when malformed (e.g. "a:b:c" without brackets).
std::optional<HostPort> split_host_port(std::string_view addr);
// Brackets IPv6 literals: ("::1","80") → "[::1]:80".
std::string join_host_port(std::string_view host, std::string_view port);
// Appends ":<default_port>" when `addr` has no port (IPv6 literals bracketed).
std::string ensure_port(std::string_view addr, std::string_view default_port);

}  // namespace gost
