// JSON-line logging with GOST's keys (spec/core.md §10):
// {"time":"2026-08-21T21:43:17.123Z","level":"info","msg":"...","service":"service-0",...}
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace gost::log {

enum class Level { trace, debug, info, warn, error, fatal };

// Sets the global level from GOST's names (unknown → info).
void set_level(std::string_view name);
Level level();
inline bool enabled(Level l) { return l >= level(); }
// "json" (default) or "text"; output "stderr" (default), "stdout", "none"/"null" or a file path.
void configure(std::string_view format, std::string_view output);

struct Field {
  std::string key;
  std::variant<std::string, std::int64_t> value;
};

class Logger {
 public:
  Logger() = default;
  Logger with(std::string key, std::string value) const;
  Logger with(std::initializer_list<std::pair<const char*, std::string>> fields) const;

  void write(Level l, std::string_view msg, std::vector<Field> extra = {}) const;
  void trace(std::string_view msg, std::vector<Field> extra = {}) const {
    write(Level::trace, msg, std::move(extra));
  }
  void debug(std::string_view msg, std::vector<Field> extra = {}) const {
    write(Level::debug, msg, std::move(extra));
  }
  void info(std::string_view msg, std::vector<Field> extra = {}) const {
    write(Level::info, msg, std::move(extra));
  }
  void warn(std::string_view msg, std::vector<Field> extra = {}) const {
    write(Level::warn, msg, std::move(extra));
  }
  void error(std::string_view msg, std::vector<Field> extra = {}) const {
    write(Level::error, msg, std::move(extra));
  }

 private:
  std::vector<Field> fields_;
};

// The process-wide logger without fields.
const Logger& root();

}  // namespace gost::log
