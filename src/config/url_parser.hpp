// Builds the configuration of the command line: -L service URLs and -F node URLs
// (docs/PROTOCOLS.md "cli: URLs", "cli: schemes", "cli: query keys", "cli: naming",
// "cli: forwarding"), reproducing GOST's naming, scheme tables and query-key rules.
#pragma once

#include <string>
#include <vector>

#include "config/model.hpp"

namespace gost::config {

// A scheme part that GOST knows under no name (e.g. `nosuchscheme://`, a typo like `sock5://`):
// GOST silently falls back to auto/tcp (http/tcp for nodes); we stop with one line naming it.
struct UnknownSchemeError : ConfigError {
  UnknownSchemeError(std::string msg, std::string part_, bool service_)
      : ConfigError(std::move(msg)), part(std::move(part_)), service(service_) {}
  std::string part;
  bool service;  // -L (handler/listener) rather than -F (connector/dialer)
};

// `services` are the -L values, `nodes` the -F values, both in command-line order.
// Throws ConfigError for an empty -F ("invalid cmd"), an unparsable URL, bad base64 in `auth`,
// and for `resolver` (no resolvers). `admission`, `bypass`, `hosts`, `limiter.*`, `climiter`,
// `rlimiter` become named top-level objects as in GOST (docs/PROTOCOLS.md "cli: query keys").
Config parse_command_line(const std::vector<std::string>& services,
                          const std::vector<std::string>& nodes);

// The -metrics value `[user:pass@][host]:port[?path=/p]` (docs/PROTOCOLS.md "cli: flags", step 6):
// normalised like a node URL; only the host, the userinfo and `path` are used. Throws ConfigError.
Metrics parse_metrics_flag(const std::string& value);
// A URL query as Go's url.ParseQuery + Get read it: keys and values %-decoded ('+' is a space),
// the first value of a key wins, pairs with ';' or a bad escape are skipped.
std::vector<std::pair<std::string, Value>> parse_query(std::string_view query);
// -api [user:pass@][host]:port[?pathPrefix=/p&accesslog=true] (docs/PROTOCOLS.md "cli: flags").
Api parse_api_flag(const std::string& value);

}  // namespace gost::config
