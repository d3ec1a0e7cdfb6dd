#include "core/address.hpp"

namespace gost {

std::optional<HostPort> split_host_port(std::string_view addr) {
  if (!addr.empty() && addr.front() == '[') {
    auto close = addr.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    auto rest = addr.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return std::nullopt;
    return HostPort{std::string(addr.substr(1, close - 1)), std::string(rest.substr(1))};
  }
  auto colon = addr.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  if (addr.substr(0, colon).find(':') != std::string_view::npos) return std::nullopt;
  return HostPort{std::string(addr.substr(0, colon)), std::string(addr.substr(colon + 1))};
}

std::string join_host_port(std::string_view host, std::string_view port) {
  std::string out;
  if (host.find(':') != std::string_view::npos) {
    out.reserve(host.size() + port.size() + 3);
    out += '[';
    out += host;
    out += ']';
  } else {
    out = host;
  }
  out += ':';
  out += port;
  return out;
}

std::string ensure_port(std::string_view addr, std::string_view default_port) {
  if (split_host_port(addr)) return std::string(addr);
  std::string_view host = addr;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return join_host_port(host, default_port);
}

}  // namespace gost
