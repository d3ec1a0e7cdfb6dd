#include "app/flags.hpp"

#include <fmt/format.h>

namespace gost::app {

std::variant<Flags, FlagError> parse_flags(const std::vector<std::string>& args) {
  Flags f;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a.size() < 2 || a[0] != '-') break;  // first non-flag argument ends parsing
    if (a == "--") break;
    std::string name = a.substr(a[1] == '-' ? 2 : 1);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto bool_flag = [&](bool& target) -> std::optional<FlagError> {
      if (!value) {
        target = true;
        return std::nullopt;
      }
      if (*value == "true" || *value == "1" || *value == "t" || *value == "T" || *value == "TRUE" ||
          *value == "True")
        target = true;
      else if (*value == "false" || *value == "0" || *value == "f" || *value == "F" ||
               *value == "FALSE" || *value == "False")
        target = false;
      else
        return FlagError{fmt::format("invalid boolean value \"{}\" for -{}", *value, name)};
      return std::nullopt;
    };
    auto string_value = [&]() -> std::optional<std::string> {
      if (value) return value;
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    if (name == "D") {
      if (auto e = bool_flag(f.debug)) return *e;
    } else if (name == "DD") {
      if (auto e = bool_flag(f.trace)) return *e;
    } else if (name == "V") {
      if (auto e = bool_flag(f.version)) return *e;
    } else if (name == "h" || name == "help") {
      f.help = true;
    } else if (name == "L" || name == "F" || name == "C" || name == "O" || name == "api" ||
               name == "metrics" || name == "R") {
      auto v = string_value();
      if (!v) return FlagError{fmt::format("flag needs an argument: -{}", name)};
      if (name == "L")
        f.services.push_back(*v);
      else if (name == "F")
        f.nodes.push_back(*v);
      else if (name == "C")
        f.configs.push_back(*v);
      else if (name == "O")
        f.output = *v;
      else if (name == "api")
        f.api = *v;
      else if (name == "metrics")
        f.metrics = *v;
      else
        f.reload = *v;
    } else {
      return FlagError{fmt::format("flag provided but not defined: -{}", name)};
    }
  }
  return f;
}

// The text is src/app/help.txt (the man page gost.1 is generated from it too), embedded at build
// time by scripts/embed_text.cmake.
std::string usage_text() {
  return
#include "app/help_text.inc"
      ;
}

}  // namespace gost::app
