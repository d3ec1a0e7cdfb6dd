// Hosts: static host name -> IP mappings (go-gost/x hosts/hosts.go; docs/PROTOCOLS.md
// "config: controls"). A service maps its targets' host names, a hop or node the address of its
// node. Lookup: the name itself, then ".name", then each parent domain as ".parent" — a mapping
// for ".example.com" covers every name below example.com. Names are matched as written (GOST
// does not fold case). With several IPs for one name the first one is used.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/model.hpp"
#include "policy/holder.hpp"
#include "policy/ip.hpp"

namespace gost {
class HostsPlugin;  // core/plugin.hpp: held here, asked by the callers that may suspend
}  // namespace gost

namespace gost::policy {

struct HostsRules {
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::vector<IpAddr>, KeyHash, std::equal_to<>> names;

  // The IPs mapped to `host` ("ip4"/"ip6" keep one family; anything else keeps both); empty = none.
  std::vector<IpAddr> lookup(std::string_view host, std::string_view network = "ip") const;
  // "host:port" with its host mapped to the first IP ("[v6]:port"); nullopt when not mapped.
  std::optional<std::string> map_address(std::string_view addr) const;
};

// One line of a hosts file, "IP name [aliases...]" ('#' starts a comment, tabs are blanks): a
// mapping per name; none for a blank, comment or invalid line.
std::vector<config::HostMapping> parse_hosts_line(std::string_view line);

std::shared_ptr<const HostsRules> compile_hosts(const std::vector<config::HostMapping>& mappings,
                                                std::vector<config::HostMapping>* rejected);

class Hosts : public Holder<HostsRules> {
 public:
  explicit Hosts(const config::Hosts& cfg);  // throws config::ConfigError for an invalid IP
  const std::string& name() const { return name_; }
  // New mappings from a source, in addition to the inline ones; returns those skipped.
  std::vector<config::HostMapping> update(const std::vector<config::HostMapping>& mappings);
  // GOST's `plugin`, which replaces the mappings (go-gost/x config/parsing/hosts): asked by the
  // router and the route instead of the rules (chain/chain.cpp).
  void set_plugin(std::shared_ptr<const HostsPlugin> p) { plugin_ = std::move(p); }
  const HostsPlugin* plugin() const { return plugin_.get(); }

 private:
  std::string name_;
  std::shared_ptr<const HostsPlugin> plugin_;
  std::vector<config::HostMapping> inline_;
};

}  // namespace gost::policy
