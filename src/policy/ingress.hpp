// GOST's ingress (go-gost/x ingress/ingress.go; docs/PROTOCOLS.md "tunnel: ingress"): hostname →
// endpoint rules the tunnel server routes by. Lookup strips a port, then tries the exact name,
// ".name", and each parent-domain suffix (".example.com", ".com"); a rule "*.example.com" is
// stored as ".example.com". The tunnel handler adds rules as connectors register (GOST's
// SetRule), so the rule set is behind a lock; rules are few and lookups short.
#pragma once

#include <mutex>
#include <optional>
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
  // A rule a connector registers (GOST's SetRule).
  void set_rule(const IngressRule& rule);
  // The rules the ingress's sources read now (file/redis/http, docs/PROTOCOLS.md "tunnel:
  // ingress"): they replace what the sources gave before; the configuration's rules stay under
  // them and the rules connectors registered stay above them.
  void update(const std::vector<IngressRule>& loaded);
  std::size_t size() const;

  // Bound of ours on the rules connectors may add (GOST has none).
  static constexpr std::size_t kMaxRules = 65536;

 private:
  std::string lookup(const std::string& key) const;  // mu_ held
  void rebuild();                                    // mu_ held: rules_ from the three layers
  static void put(std::unordered_map<std::string, std::string>& m, const IngressRule& r);
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::string> rules_;
  // The layers rules_ is made of, later winning: configured, loaded, registered.
  std::unordered_map<std::string, std::string> configured_, loaded_, registered_;
};

// The handler's `tunnel` option: "host:endpoint,host:endpoint" (entries without ':' skipped).
std::vector<IngressRule> parse_tunnel_rules(std::string_view text);
// A source's line "hostname endpoint" (go-gost/x ingress.go parseLine: tabs count as spaces,
// fields after the second ignored); nullopt for a line with fewer than two fields. Comments and
// empty lines are gone already (source::parse_lines).
std::optional<IngressRule> parse_ingress_line(std::string_view line);

}  // namespace gost::policy
