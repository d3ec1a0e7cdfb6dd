// External checks of GOST's `plugin` blocks (docs/ARCHITECTURE.md "Sources"): the interfaces the
// admission, bypass and hosts holders (src/policy/) carry and the connection, router and hops ask,
// asynchronously on the connection's own worker. Implemented over HTTP by src/source/plugin.hpp;
// the auther's is AuthPlugin (core/auth.hpp).
#pragma once

#include <string>
#include <vector>

#include "core/asio.hpp"

namespace gost {

// go-gost/x admission/plugin: true admits the client; an unanswered question refuses it.
class AdmissionPlugin {
 public:
  virtual ~AdmissionPlugin() = default;
  virtual awaitable<bool> admit(std::string service, std::string network,
                                std::string addr) const = 0;
};

// go-gost/x bypass/plugin: true = the target is bypassed (refused, or a node skipped); an
// unanswered question is false. A plugin counts as a blacklist in a group (its IsWhitelist is
// false).
class BypassPlugin {
 public:
  virtual ~BypassPlugin() = default;
  virtual awaitable<bool> contains(std::string network, std::string addr, std::string client,
                                   std::string host, std::string path) const = 0;
};

// go-gost/x hosts/plugin: the IPs for `host` (empty = no mapping). GOST's resolver uses any IPs
// answered and does not look at the answer's "ok" (go-gost/x internal/net Resolve).
class HostsPlugin {
 public:
  virtual ~HostsPlugin() = default;
  virtual awaitable<std::vector<std::string>> lookup(std::string network, std::string host,
                                                     std::string client) const = 0;
};

}  // namespace gost
