// Text helpers that reproduce Go standard-library behaviour (strconv number syntax and
// formatting, string quoting, gopkg.in/yaml.v3 plain-scalar resolution), so that loading, -O
// printing, the web API and the logs agree with GOST byte for byte.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gost::config::detail {

std::string ascii_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);

// strconv.Atoi: optional sign, decimal digits only.
std::optional<std::int64_t> go_atoi(std::string_view s);
// strconv.ParseInt(s, 0, 64): sign, 0x/0o/0b prefixes, leading-0 octal, '_' between digits.
std::optional<std::int64_t> go_parse_int_base0(std::string_view s);
// strconv.ParseFloat(s, 64) for decimal syntax (plus inf/infinity/nan).
std::optional<double> go_parse_float(std::string_view s);
// strconv.ParseBool: 1 t T TRUE true True 0 f F FALSE false False.
std::optional<bool> go_parse_bool(std::string_view s);

// strconv.FormatFloat(v, fmt, -1, 64) for fmt 'f', 'g' or 'e'.
std::string go_format_float(double v, char fmt);
// encoding/json float encoding ('f' unless tiny/huge, then cleaned-up 'e').
std::string go_json_float(double v);

// strings.TrimSpace (ASCII white space).
std::string trim_space(std::string_view s);

// encoding/json's string encoding, appended to `out`: invalid UTF-8 becomes \ufffd, U+2028/2029
// are escaped, and with `escape_html` (json.Marshal's default) so are < > &.
void append_go_json_string(std::string& out, std::string_view s, bool escape_html);
// strconv.Quote (what %q prints for a string), appended to `out`.
void append_go_quoted(std::string& out, std::string_view s);

// What a YAML plain (unquoted) scalar means to gopkg.in/yaml.v3.
enum class PlainKind { Null, Bool, Int, Float, Timestamp, String };
struct PlainScalar {
  PlainKind kind = PlainKind::String;
  bool b = false;
  std::int64_t i = 0;
  double f = 0;
};
PlainScalar resolve_plain(std::string_view text);

}  // namespace gost::config::detail
