// Prints a configuration the way `gost -O yaml|json` does (docs/PROTOCOLS.md "cli: output",
// "config: output order"): GOST's key order and omission rules, gopkg.in/yaml.v3 block style with
// 2-space indentation, encoding/json MarshalIndent style with 2 spaces. Pure functions, no I/O.
#pragma once

#include <string>
#include <string_view>

#include "config/model.hpp"

namespace gost::config {

std::string to_yaml(const Config& config);  // ends with a newline
std::string to_json(const Config& config);  // ends with a newline

// One object as the web API returns it (Go's json.Marshal: compact, no newline).
std::string to_compact_json(const Service& service);
std::string to_compact_json(const Chain& chain);
std::string to_compact_json(const Hop& hop);
std::string to_compact_json(const Auther& auther);
std::string to_compact_json(const Admission& admission);
std::string to_compact_json(const Bypass& bypass);
std::string to_compact_json(const Hosts& hosts);
std::string to_compact_json(const Limiter& limiter);
// A JSON string literal, escaped as encoding/json does.
std::string json_quote(std::string_view s);

}  // namespace gost::config
