// The text formats of GOST's sources (docs/ARCHITECTURE.md "Sources"): what a file, an HTTP body or
// a Redis reply turns into.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gost::source {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// What one source yields: lines for admissions, bypasses, hosts and limiters; user → password pairs
// for authers.
struct Data {
  std::vector<std::string> lines;
  Pairs pairs;
  bool operator==(const Data&) const = default;
};

enum class Format { lines, pairs };

// One pattern a line: everything from the first '#' is a comment, the rest is trimmed, empty lines
// are skipped (go-gost/x admission.go, bypass.go, hosts.go parseLine).
std::vector<std::string> parse_lines(std::string_view text);

// `user password` a line (go-gost/x auth/auth.go parseAuths): tabs count as spaces, a line starting
// with '#' is a comment, the first space splits user from password (both trimmed; the password may
// hold spaces), a line with only a user accepts any password. A '#' after the start is data.
Pairs parse_pairs(std::string_view text);

Data parse(std::string_view text, Format f);

}  // namespace gost::source
