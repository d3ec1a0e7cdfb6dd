// Admission: which clients a service accepts (go-gost/x admission/admission.go; docs/PROTOCOLS.md
// "config: controls"). Matchers are IP addresses and CIDRs; the client's port is ignored.
// Blacklist (default): a matching client is refused. Whitelist (`whitelist`, or the deprecated
// `reverse`): only matching clients are admitted.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "policy/holder.hpp"
#include "policy/ip.hpp"

namespace gost {
class AdmissionPlugin;  // core/plugin.hpp: held here, asked by the callers that may suspend
}  // namespace gost

namespace gost::policy {

struct AdmissionRules {
  bool whitelist = false;
  IpSet matchers;
  bool admits(const IpAddr& client) const { return matchers.contains(client) == whitelist; }
};

// Builds the rules; items that are neither an IP nor a CIDR go to `rejected` (GOST drops them).
std::shared_ptr<const AdmissionRules> compile_admission(bool whitelist,
                                                        const std::vector<std::string>& items,
                                                        std::vector<std::string>* rejected);

// A named admission: its inline matchers, and the current rules.
class Admission : public Holder<AdmissionRules> {
 public:
  // Throws config::ConfigError naming a matcher that is neither IP nor CIDR (GOST silently drops
  // it: a host name there would never match).
  explicit Admission(const config::Admission& cfg);
  const std::string& name() const { return name_; }
  // New items from a source, in addition to the inline matchers; returns the items skipped.
  std::vector<std::string> update(const std::vector<std::string>& items);
  // GOST's `plugin`, which replaces the matchers (go-gost/x config/parsing/admission): asked by
  // the accept path instead of the rules (app/connection.cpp).
  void set_plugin(std::shared_ptr<const AdmissionPlugin> p) { plugin_ = std::move(p); }
  const AdmissionPlugin* plugin() const { return plugin_.get(); }

 private:
  std::string name_;
  bool whitelist_;
  std::shared_ptr<const AdmissionPlugin> plugin_;
  std::vector<std::string> inline_;
};

using Admissions = std::vector<std::shared_ptr<const Admission>>;

// A service's admissions (`admission` + `admissions`): a client is admitted when every one admits
// it. `client` is the peer address as a stream reports it ("1.2.3.4:5678", "[::1]:5678").
bool admits(const Admissions& admissions, std::string_view client);
// Some admission of the list is a plugin: the caller asks asynchronously, `admits` does not
// know the plugins' answers.
bool has_plugin(const Admissions& admissions);

}  // namespace gost::policy
