#include "core/log.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>

namespace gost::log {
namespace {

std::atomic<Level> g_level{Level::info};
std::atomic<bool> g_text{false};

std::shared_ptr<spdlog::logger> make_sink_logger(std::string_view output) {
  std::shared_ptr<spdlog::logger> l;
  if (output.empty() || output == "stderr")
    l = std::make_shared<spdlog::logger>("gost", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  else if (output == "stdout")
    l = std::make_shared<spdlog::logger>("gost", std::make_shared<spdlog::sinks::stdout_sink_mt>());
  else if (output == "none" || output == "null")
    l = std::make_shared<spdlog::logger>("gost", std::make_shared<spdlog::sinks::null_sink_mt>());
  else
    l = std::make_shared<spdlog::logger>(
        "gost", std::make_shared<spdlog::sinks::basic_file_sink_mt>(std::string(output)));
  l->set_pattern("%v");
  l->set_level(spdlog::level::trace);
  l->flush_on(spdlog::level::trace);
  return l;
}

std::mutex g_sink_mu;
std::shared_ptr<spdlog::logger> g_sink = make_sink_logger("stderr");

std::shared_ptr<spdlog::logger> sink() {
  std::lock_guard lk(g_sink_mu);
  return g_sink;
}

const char* level_name(Level l) {
  switch (l) {
    case Level::trace:
      return "trace";
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
    case Level::fatal:
      return "fatal";
  }
  return "info";
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

std::string now_text() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", tm, static_cast<int>(ms % 1000));
}

void append_field(std::string& out, const Field& f, bool text) {
  if (text) {
    out += fmt::format(" {}=", f.key);
    if (auto* s = std::get_if<std::string>(&f.value)) {
      bool quote = s->empty() || s->find_first_of(" \"=") != std::string::npos;
      if (quote)
        append_json_string(out, *s);
      else
        out += *s;
    } else {
      out += std::to_string(std::get<std::int64_t>(f.value));
    }
    return;
  }
  out.push_back(',');
  append_json_string(out, f.key);
  out.push_back(':');
  if (auto* s = std::get_if<std::string>(&f.value))
    append_json_string(out, *s);
  else
    out += std::to_string(std::get<std::int64_t>(f.value));
}

}  // namespace

void set_level(std::string_view name) {
  Level l = Level::info;
  if (name == "trace")
    l = Level::trace;
  else if (name == "debug")
    l = Level::debug;
  else if (name == "warn")
    l = Level::warn;
  else if (name == "error")
    l = Level::error;
  else if (name == "fatal")
    l = Level::fatal;
  g_level = l;
}

Level level() { return g_level.load(std::memory_order_relaxed); }

void configure(std::string_view format, std::string_view output) {
  g_text = format == "text";
  auto l = make_sink_logger(output);
  std::lock_guard lk(g_sink_mu);
  g_sink = l;
}

Logger Logger::with(std::string key, std::string value) const {
  Logger l = *this;
  for (auto& f : l.fields_)
    if (f.key == key) {
      f.value = std::move(value);
      return l;
    }
  l.fields_.push_back({std::move(key), std::move(value)});
  return l;
}

Logger Logger::with(std::initializer_list<std::pair<const char*, std::string>> fields) const {
  Logger l = *this;
  for (auto& [k, v] : fields) l = l.with(k, v);
  return l;
}

void Logger::write(Level l, std::string_view msg, std::vector<Field> extra) const {
  if (!enabled(l)) return;
  bool text = g_text.load(std::memory_order_relaxed);
  std::string out;
  out.reserve(256);
  if (text) {
    out += fmt::format("time={} level={} msg=", now_text(), level_name(l));
    append_json_string(out, msg);
  } else {
    out += "{\"time\":\"";
    out += now_text();
    out += "\",\"level\":\"";
    out += level_name(l);
    out += "\",\"msg\":";
    append_json_string(out, msg);
  }
  for (const auto& f : fields_) append_field(out, f, text);
  for (const auto& f : extra) append_field(out, f, text);
  if (!text) out.push_back('}');
  sink()->info(out);
}

const Logger& root() {
  static const Logger logger;
  return logger;
}

}  // namespace gost::log
