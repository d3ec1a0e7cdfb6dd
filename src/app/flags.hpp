// GOST's command line, parsed with Go `flag` package semantics (docs/PROTOCOLS.md "cli: flags").
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace gost::app {

struct Flags {
  std::vector<std::string> services;  // -L
  std::vector<std::string> nodes;     // -F
  std::vector<std::string> configs;   // -C
  std::string output;                 // -O
  bool debug = false;                 // -D
  bool trace = false;                 // -DD
  bool version = false;               // -V
  bool help = false;                  // -h / -help
  std::string metrics;                // -metrics
  std::string api, reload;            // -api, -R
};

struct FlagError {
  std::string message;
};

// Parses argv[1..]; stops at the first non-flag argument (ignored, as Go does).
// Returns FlagError for unknown flags or missing values.
std::variant<Flags, FlagError> parse_flags(const std::vector<std::string>& args);
// The --help text (src/app/help.txt): every flag with an example.
std::string usage_text();

}  // namespace gost::app
