// Builds the configuration of the command line: -L service URLs and -F node URLs
// (spec/cli.md §2–§6), reproducing GOST's naming, scheme tables and query-key rules.
#pragma once

#include <string>
#include <vector>

#include "config/model.hpp"

namespace gost::config {

// `services` are the -L values, `nodes` the -F values, both in command-line order.
// Throws ConfigError for an empty -F ("invalid cmd"), an unparsable URL, bad base64 in `auth`,
// and for query keys that would need objects this implementation does not have
// (bypass, admission, resolver, hosts, limiter.*, climiter, rlimiter).
Config parse_command_line(const std::vector<std::string>& services,
                          const std::vector<std::string>& nodes);

}  // namespace gost::config
