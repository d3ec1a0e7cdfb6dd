// Logging as GOST (logrus) does it (docs/PROTOCOLS.md "observability: logging"): a default logger
// (`log:`) and named loggers (`loggers:`), each with its own level, format (json / text / colored
// text on a terminal) and output (stderr, stdout, none, a file, a rotated file).
//
//   {"handler":"http","kind":"service","level":"info","msg":"listening on ...","time":"..."}
//   time="2026-12-01T11:11:57Z" level=info msg="listening on ..." handler=http kind=service
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace gost::config {
struct Log;
struct NamedLogger;
}  // namespace gost::config

namespace gost::log {

enum class Level { trace, debug, info, warn, error, fatal };

// GOST's level names (trace debug info warn error fatal); anything else → info.
Level parse_level(std::string_view name);
// As printed: trace debug info warning error fatal.
const char* level_name(Level l);

namespace detail {
// The lowest level any configured logger writes (as int; 6 = every output discarded).
extern std::atomic<int> g_min_level;
}  // namespace detail

// Cheap enough for hot paths: one relaxed load.
inline bool enabled(Level l) {
  return static_cast<int>(l) >= detail::g_min_level.load(std::memory_order_relaxed);
}
// The lowest level any logger writes (fatal when all are discarded).
Level level();

// Applies the `log:` section (nullopt: json/info/stderr) and the `loggers:` section. May be called
// again at any time (config reload) while other threads log: the new configuration replaces the
// old one atomically; files of the old one are closed when the last line being written to them is
// done. A file that cannot be opened logs a warning and writes to stderr instead. Rotated files
// with the same path and settings as before are kept open (one rotator per file).
void configure(const std::optional<config::Log>& log,
               const std::vector<config::NamedLogger>& loggers);
// The default logger only (keeps its level and the named loggers).
void configure(std::string_view format, std::string_view output);
// The default logger's level, from GOST's names (unknown → info).
void set_level(std::string_view name);

struct Field {
  // A name with static storage (a literal): a connection's logger holds a few fields for as long
  // as its tunnel lasts, and a key of its own would cost a std::string each.
  const char* key;
  // int64 values print as numbers; a field named "duration" holds nanoseconds and prints as a Go
  // duration ("1.5ms") in the text format.
  using Value = std::variant<std::string, std::int64_t>;
  Value value;
};

class Logger {
 public:
  Logger() = default;  // the default logger (whatever it is configured to at write time)
  // `key` has static storage (see Field). The result holds exactly the fields it needs.
  Logger with(const char* key, std::string value) const;
  Logger with(std::initializer_list<std::pair<const char*, std::string>> fields) const;
  // This logger with its fields moved into storage that the loggers made from it by with()
  // share, read-only, instead of copying: a service's logger, from which every connection makes
  // its own (an idle tunnel's logger holds its own few fields only; docs/ARCHITECTURE.md
  // "Memory").
  Logger shared() const;
  // The string value of field `key` ("" when it has none).
  std::string_view field(const char* key) const;

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
  // This logger with a copy of its own fields and room for `room` more.
  Logger with_room(std::size_t room) const;
  friend Logger service_logger(const std::string& logger, const std::vector<std::string>& loggers);
  // A line's fields: shared_'s, then fields_ (a later field of the same key wins).
  std::shared_ptr<const std::vector<Field>> shared_;
  std::vector<Field> fields_;
  // Named loggers to write to (`logger` then `loggers`), looked up in the configuration current at
  // write time; null, or no name configured, → the default logger.
  std::shared_ptr<const std::vector<std::string>> route_;
};

// The base logger of a service with `logger: <name>` / `loggers: [...]`: every line goes to each
// named logger listed (its level, format, output, plus field logger=<name>); unknown names are
// ignored; none known → the default logger.
Logger service_logger(const std::string& logger, const std::vector<std::string>& loggers);

// The process-wide logger without fields.
const Logger& root();

namespace testing {
// Replaces the clock of the `time` field (nullptr: the system clock).
void set_clock(std::chrono::system_clock::time_point (*now)());
}  // namespace testing

}  // namespace gost::log
