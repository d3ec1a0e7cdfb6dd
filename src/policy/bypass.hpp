// Bypass: which targets a service refuses, a node is not selected for, or a hop cuts the chain
// before (go-gost/x bypass/bypass.go, internal/matcher; docs/PROTOCOLS.md "config: controls").
// Matchers, each tried on the target "host:port" (or bare host):
//   - an IP, an IP range "a-b" or a CIDR: the target host is an IP inside it (any port);
//   - a host "example.com" (exactly that name) or ".example.com" (that name and every subdomain),
//     with an optional ":port" or ":p1-p2" (without one, any port), case-insensitive;
//   - a glob with '*' (any run of characters, dots included) and '?' (one character), optionally
//     with a port or port range: "*.example.com", "*.example.com:80-90".
// Blacklist (default): a match is bypassed. Whitelist (`whitelist` / `reverse`): a target that
// does not match is bypassed.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/model.hpp"
#include "policy/holder.hpp"
#include "policy/ip.hpp"

namespace gost {
class BypassPlugin;  // core/plugin.hpp: held here, asked by the callers that may suspend
}  // namespace gost

namespace gost::policy {

struct PortRange {
  int min = 0, max = 65535;  // the default: any port (and a target without one, port 0)
  bool contains(int port) const { return port >= min && port <= max; }
};

struct BypassRules {
  bool whitelist = false;
  std::string network;  // "" = every network; else only targets of this network ("tcp", "udp")
  IpSet ips;            // IPs, IP ranges, CIDRs
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // Lower-case names (".x" = x and every name below it) and canonical IPs with a port.
  std::unordered_map<std::string, std::vector<PortRange>, KeyHash, std::equal_to<>> hosts;
  struct Glob {
    std::string pattern;  // lower-case
    PortRange ports;
  };
  std::vector<Glob> globs;

  // The target matches one of the matchers.
  bool matches(std::string_view addr) const;
  // GOST's Contains: true = bypass this target (blacklist match, or whitelist miss). `host`, when
  // not empty, is the target as the client named it before a hosts mapping: either may match.
  bool bypasses(std::string_view network, std::string_view addr, std::string_view host = {}) const;
};

// Builds the rules; matchers this implementation cannot honour (a glob with '[', '{' or '\')
// go to `rejected`.
std::shared_ptr<const BypassRules> compile_bypass(bool whitelist, std::string network,
                                                  const std::vector<std::string>& items,
                                                  std::vector<std::string>* rejected);

// gobwas/glob without separators, '*' and '?' only: `text` and `pattern` lower-case.
bool glob_match(std::string_view pattern, std::string_view text);

class Bypass : public Holder<BypassRules> {
 public:
  explicit Bypass(const config::Bypass& cfg);  // throws config::ConfigError for a bad matcher
  const std::string& name() const { return name_; }
  // New items from a source, in addition to the inline matchers; returns the items skipped.
  std::vector<std::string> update(const std::vector<std::string>& items);
  // GOST's `plugin`, which replaces the matchers (go-gost/x config/parsing/bypass); a plugin is
  // never a whitelist. Asked by chain/'s bypasses_async instead of the rules.
  void set_plugin(std::shared_ptr<const BypassPlugin> p) { plugin_ = std::move(p); }
  const BypassPlugin* plugin() const { return plugin_.get(); }

 private:
  std::string name_;
  bool whitelist_;
  std::shared_ptr<const BypassPlugin> plugin_;
  std::string network_;
  std::vector<std::string> inline_;
};

using Bypasses = std::vector<std::shared_ptr<const Bypass>>;

// Several bypasses on one service, hop or node (go-gost/x BypassGroup): bypassed when every
// whitelist among them bypasses the target, or else when any blacklist does.
class BypassVotes {
 public:
  void add(bool whitelist, bool bypassed) {
    if (whitelist) {
      any_whitelist_ = true;
      all_whitelists_ = all_whitelists_ && bypassed;
    } else {
      any_blacklist_ = any_blacklist_ || bypassed;
    }
  }
  bool bypassed() const { return (any_whitelist_ && all_whitelists_) || any_blacklist_; }

 private:
  bool any_whitelist_ = false, all_whitelists_ = true, any_blacklist_ = false;
};
bool bypasses(const Bypasses& list, std::string_view network, std::string_view addr,
              std::string_view host = {});
// Some bypass of the list is a plugin: `bypasses` would not know its answer, the caller asks
// asynchronously (chain/hop.hpp bypasses_async).
bool has_plugin(const Bypasses& list);

}  // namespace gost::policy
