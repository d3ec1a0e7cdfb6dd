// Prints a configuration the way `gost -O yaml|json` does (spec/cli.md §7, spec/config.md §13):
// GOST's key order and omission rules, gopkg.in/yaml.v3 block style with 2-space indentation,
// encoding/json MarshalIndent style with 2 spaces. Pure functions, no I/O.
#pragma once

#include <string>

#include "config/model.hpp"

namespace gost::config {

std::string to_yaml(const Config& config);  // ends with a newline
std::string to_json(const Config& config);  // ends with a newline

}  // namespace gost::config
