// GOST's ingress (go-gost/x ingress/ingress.go; docs/PROTOCOLS.md "tunnel: ingress"): hostname →
// endpoint rules the tunnel server routes by. Lookup strips a port, then tries the exact name,
// ".name", and each parent-domain suffix (".example.com", ".com"); a rule "*.example.com" is
// stored as ".example.com". The tunnel handler adds rules as connectors register (GOST's
// SetRule), so the rule set is behind a lock; rules are few and lookups short.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/model.hpp"

namespace gost::policy {

// hostname, endpoint (a tunnel ID; "$<uuid>": private).
using IngressRule = config::IngressRule;

class Ingress {
 public:
  // Rules with an empty hostname or endpoint are skipped; a later rule for a name wins.
  explicit Ingress(const std::vector<IngressRule>& rules = {});
  // The endpoint for `host` ("" when none).
  std::string endpoint(std::string_view host) const;
  void set_rule(const IngressRule& rule);
  std::size_t size() const;

  // Bound of ours on the rules connectors may add (GOST has none).
  static constexpr std::size_t kMaxRules = 65536;

 private:
  std::string lookup(const std::string& key) const;  // mu_ held
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::string> rules_;
};

// The handler's `tunnel` option: "host:endpoint,host:endpoint" (entries without ':' skipped).
std::vector<IngressRule> parse_tunnel_rules(std::string_view text);

}  // namespace gost::policy
