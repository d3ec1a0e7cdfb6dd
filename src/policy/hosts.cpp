#include "policy/hosts.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace gost::policy {

std::vector<IpAddr> HostsRules::lookup(std::string_view host, std::string_view network) const {
  if (names.empty() || host.empty()) return {};
  const std::vector<IpAddr>* found = nullptr;
  auto get = [&](std::string_view key) {
    auto it = names.find(key);
    found = it == names.end() ? nullptr : &it->second;
    return found != nullptr;
  };
  const std::string dotted = "." + std::string(host);
  std::string_view name = host;
  if (!get(name) && !get(dotted)) {
    for (auto dot = name.find('.'); dot != std::string_view::npos && dot > 0;
         dot = name.find('.')) {
      if (get(name.substr(dot))) break;
      name = name.substr(dot + 1);
    }
  }
  if (!found) return {};
  std::vector<IpAddr> out;
  for (const auto& ip : *found)
    if ((network != "ip4" || !ip.v6) && (network != "ip6" || ip.v6)) out.push_back(ip);
  return out;
}

std::optional<std::string> HostsRules::map_address(std::string_view addr) const {
  if (names.empty()) return std::nullopt;
  const auto hp = split_host_port_view(addr);
  if (!hp.has_port || hp.host.empty()) return std::nullopt;
  const auto ips = lookup(hp.host);
  if (ips.empty()) return std::nullopt;
  const std::string ip = ips.front().to_string();
  return (ips.front().v6 ? "[" + ip + "]" : ip) + ":" + std::string(hp.port);
}

std::vector<config::HostMapping> parse_hosts_line(std::string_view line) {
  if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
  std::vector<std::string> fields;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
    if (i > start) fields.emplace_back(line.substr(start, i - start));
  }
  std::vector<config::HostMapping> out;
  if (fields.size() < 2 || !parse_ip(fields[0]) || fields[0].front() == '[') return out;
  for (std::size_t k = 1; k < fields.size(); ++k)
    out.push_back(config::HostMapping{.ip = fields[0], .hostname = fields[k]});
  return out;
}

std::shared_ptr<const HostsRules> compile_hosts(const std::vector<config::HostMapping>& mappings,
                                                std::vector<config::HostMapping>* rejected) {
  auto rules = std::make_shared<HostsRules>();
  for (const auto& m : mappings) {
    auto ip = parse_ip(m.ip);
    if (!ip || m.ip.front() == '[' || m.hostname.empty()) {
      if (rejected) rejected->push_back(m);
      continue;
    }
    auto add = [&](const std::string& name) {
      auto& ips = rules->names[name];
      if (std::find(ips.begin(), ips.end(), *ip) == ips.end()) ips.push_back(*ip);
    };
    add(m.hostname);
    for (const auto& alias : m.aliases)
      if (!alias.empty()) add(alias);
  }
  return rules;
}

Hosts::Hosts(const config::Hosts& cfg) : name_(cfg.name), inline_(cfg.mappings) {
  std::vector<config::HostMapping> rejected;
  set(compile_hosts(inline_, &rejected));
  if (!rejected.empty())
    throw config::ConfigError(
        fmt::format("hosts {}: mapping \"{}\" -> \"{}\": invalid IP address "
                    "or empty host name",
                    name_, rejected.front().hostname, rejected.front().ip));
}

std::vector<config::HostMapping> Hosts::update(const std::vector<config::HostMapping>& mappings) {
  std::vector<config::HostMapping> all = inline_;
  all.insert(all.end(), mappings.begin(), mappings.end());
  std::vector<config::HostMapping> rejected;
  set(compile_hosts(all, &rejected));
  return rejected;
}

}  // namespace gost::policy
