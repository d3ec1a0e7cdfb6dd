// Loads configuration files (docs/PROTOCOLS.md "config: reading rules", "cli: sources"): YAML and
// JSON with case-insensitive keys, weak typing and GOST's duration rules. Keys GOST knows but this
// implementation does not support are rejected with a ConfigError naming the key path
// (e.g. "services[0].bypass: not supported"); unknown keys are ignored as in GOST.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/model.hpp"

namespace gost::config {

// Configuration file text. Metadata keys are stored lowercased, as GOST's file loader does.
Config load_yaml(std::string_view text);
Config load_json(std::string_view text);
// Inline JSON given as `-C '{...}'`: like load_json but metadata keys keep their case.
Config load_inline_json(std::string_view text);

// One object of a web API request body (docs/PROTOCOLS.md "observability: web API"): a JSON object,
// checked like the same object in a file (ConfigError naming the key). A body that is not a JSON
// object counts as an empty one, as in GOST.
Service load_service_object(std::string_view json);
Chain load_chain_object(std::string_view json);
Hop load_hop_object(std::string_view json);
Auther load_auther_object(std::string_view json);
Admission load_admission_object(std::string_view json);
Bypass load_bypass_object(std::string_view json);
Hosts load_hosts_object(std::string_view json);
Limiter load_limiter_object(std::string_view json);  // limiters, climiters, rlimiters

// One -C value: "-" (stdin; JSON if it starts with '{', else YAML), inline "{...}" JSON, or a
// file path whose extension (.yaml, .yml, .json) selects the format. http(s) URLs and other
// extensions are rejected. Errors name the source.
Config load_source(const std::string& source);

// The default configuration file (gost.json, gost.yaml, gost.yml in /etc/gost, $HOME/.gost and
// the current directory, in that order), if one exists.
std::optional<std::string> find_default_config();

}  // namespace gost::config
