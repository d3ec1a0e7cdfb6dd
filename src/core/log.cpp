#include "core/log.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

#include "config/go_text.hpp"
#include "config/model.hpp"
#include "core/log_file.hpp"

namespace gost::log {

namespace detail {
std::atomic<int> g_min_level{static_cast<int>(Level::info)};
}  // namespace detail

namespace {

constexpr int kDiscardAll = static_cast<int>(Level::fatal) + 1;

// ---- configuration snapshot ------------------------------------------------------------------

enum class Format { json, text, color };

struct Sink {
  std::string name;  // empty: the default logger (no `logger` field)
  Level level = Level::info;
  Format format = Format::json;
  std::shared_ptr<Writer> writer;  // null: output none/null
  std::string rotation_key;        // a rotated file: kept by a reconfigure with the same key
};

// Immutable once published; a writer holds it only for the line being written.
struct Snapshot {
  Sink def;
  std::vector<Sink> named;
};

std::shared_ptr<const Snapshot> initial_snapshot() {
  auto s = std::make_shared<Snapshot>();
  s->def.writer = stderr_writer();  // GOST's logger before loader.Load: json/info/stderr
  return s;
}

// The published snapshot. A mutex held for a pointer copy, not std::atomic<std::shared_ptr>:
// libstdc++ 12's load() releases its internal lock with a relaxed store (a formal data race that
// ThreadSanitizer reports). A line costs a write(2) anyway; this lock is not what it waits on.
class Current {
 public:
  std::shared_ptr<const Snapshot> load() const {
    std::lock_guard lk(mu_);
    return snap_;
  }
  void store(std::shared_ptr<const Snapshot> s) {
    {
      std::lock_guard lk(mu_);
      snap_.swap(s);
    }
    // `s`, the previous snapshot, is released here, outside the lock: closing its files is slow.
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> snap_ = initial_snapshot();
};

// Never destroyed: a thread may still log while the process exits.
Current& current() {
  static Current* c = new Current;
  return *c;
}

std::mutex& config_mutex() {
  static std::mutex mu;
  return mu;
}

std::atomic<std::chrono::system_clock::time_point (*)()> g_clock{nullptr};

// ---- time ------------------------------------------------------------------------------------

// "2006-01-02T15:04:05" and "Z07:00" of one second in the local zone, cached per thread (the
// zone lookup takes a lock inside libc).
struct TimeParts {
  std::int64_t sec = INT64_MIN;
  char base[64] = {};
  char zone[16] = {};
  std::size_t zone_len = 0;
};

const TimeParts& time_parts(std::int64_t sec) {
  thread_local TimeParts tp;
  if (tp.sec == sec) return tp;
  std::time_t t = static_cast<std::time_t>(sec);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  std::snprintf(tp.base, sizeof tp.base, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  long off = tm.tm_gmtoff;
  if (off == 0) {
    tp.zone[0] = 'Z';
    tp.zone[1] = 0;
    tp.zone_len = 1;
  } else {
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    std::snprintf(tp.zone, sizeof tp.zone, "%c%02ld:%02ld", sign, (off / 3600) % 100,
                  (off / 60) % 60);
    tp.zone_len = 6;
  }
  tp.sec = sec;
  return tp;
}

// ---- escaping: config/go_text (encoding/json and strconv.Quote) -------------------------------

using config::detail::append_go_json_string;
using config::detail::append_go_quoted;

// logrus TextFormatter.needsQuoting.
bool needs_quoting(std::string_view s) {
  for (char ch : s) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_' || ch == '/' || ch == '@' || ch == '^' ||
              ch == '+';
    if (!ok) return true;
  }
  return false;
}

void append_text_value(std::string& out, std::string_view s) {
  if (needs_quoting(s))
    append_go_quoted(out, s);
  else
    out += s;
}

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// ---- line formatting -------------------------------------------------------------------------

enum class Kind : std::uint8_t { str, num, time, level, msg };

struct Item {
  std::string_view key;
  Kind kind;
  std::string_view s;
  std::int64_t i = 0;
};

// logrus prefixFieldClashes: a field may not take a fixed key's name.
std::string_view field_key(std::string_view k) {
  if (k == "time") return "fields.time";
  if (k == "msg") return "fields.msg";
  if (k == "level") return "fields.level";
  return k;
}

bool same_key(const char* a, const char* b) { return a == b || std::strcmp(a, b) == 0; }

// The field named `key` in `fields` (a vector of Field, const or not), or null.
template <class Fields>
auto* find_field(Fields& fields, const char* key) {
  auto it = std::find_if(fields.begin(), fields.end(),
                         [&](const Field& f) { return same_key(f.key, key); });
  return it == fields.end() ? nullptr : &*it;
}

// Sets field `key` of `fields`: replaces its value, else appends it.
void put_field(std::vector<Field>& fields, const char* key, Field::Value value) {
  if (auto* f = find_field(fields, key))
    f->value = std::move(value);
  else
    fields.push_back({key, std::move(value)});
}

struct Line {
  Level level;
  std::string_view msg;
  const std::vector<Field>* shared;  // may be null
  const std::vector<Field>& base;
  const std::vector<Field>& extra;
  std::int64_t ms;  // time, ms since the epoch
};

// The fields of one line sorted by key (byte order, as Go sorts map keys); a later field replaces
// an earlier one with the same key (WithFields semantics). `fixed` adds time/level/msg (JSON).
void collect(std::vector<Item>& items, const Sink& sink, const Line& line, bool fixed) {
  items.clear();
  if (fixed) {
    items.push_back({"level", Kind::level, {}});
    items.push_back({"msg", Kind::msg, {}});
    items.push_back({"time", Kind::time, {}});
  }
  if (!sink.name.empty()) items.push_back({"logger", Kind::str, sink.name});
  static const std::vector<Field> kNone;
  for (const auto* fields : {line.shared ? line.shared : &kNone, &line.base, &line.extra})
    for (const auto& f : *fields) {
      if (auto* s = std::get_if<std::string>(&f.value))
        items.push_back({field_key(f.key), Kind::str, *s});
      else
        items.push_back({field_key(f.key), Kind::num, {}, std::get<std::int64_t>(f.value)});
    }
  if (items.size() > 64) {
    std::stable_sort(items.begin(), items.end(),
                     [](const Item& a, const Item& b) { return a.key < b.key; });
  } else {
    // Insertion sort: stable, no allocation, and lines have a dozen fields.
    for (std::size_t i = 1; i < items.size(); ++i) {
      Item tmp = items[i];
      std::size_t j = i;
      for (; j > 0 && tmp.key < items[j - 1].key; --j) items[j] = items[j - 1];
      items[j] = tmp;
    }
  }
  std::size_t w = 0;
  for (std::size_t i = 0; i < items.size(); ++i)
    if (i + 1 == items.size() || items[i + 1].key != items[i].key) items[w++] = items[i];
  items.resize(w);
}

void append_time(std::string& out, std::int64_t ms, bool millis) {
  std::int64_t sec = ms / 1000, frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    --sec;
  }
  const TimeParts& tp = time_parts(sec);
  out += tp.base;
  if (millis) {
    out.push_back('.');
    out.push_back(static_cast<char>('0' + frac / 100));
    out.push_back(static_cast<char>('0' + frac / 10 % 10));
    out.push_back(static_cast<char>('0' + frac % 10));
  }
  out.append(tp.zone, tp.zone_len);
}

void format_json(std::string& out, const std::vector<Item>& items, const Line& line) {
  out.push_back('{');
  bool first = true;
  for (const auto& it : items) {
    if (!first) out.push_back(',');
    first = false;
    append_go_json_string(out, it.key, false);
    out.push_back(':');
    switch (it.kind) {
      case Kind::str:
        append_go_json_string(out, it.s, false);
        break;
      case Kind::num:
        append_int(out, it.i);
        break;
      case Kind::time:
        out.push_back('"');
        append_time(out, line.ms, true);
        out.push_back('"');
        break;
      case Kind::level:
        out.push_back('"');
        out += level_name(line.level);
        out.push_back('"');
        break;
      case Kind::msg:
        append_go_json_string(out, line.msg, false);
        break;
    }
  }
  out += "}\n";
}

void append_text_item(std::string& out, const Item& it) {
  if (it.kind == Kind::str) {
    append_text_value(out, it.s);
  } else if (it.key == "duration") {
    append_text_value(out, config::format_go_duration(std::chrono::nanoseconds(it.i)));
  } else {
    append_int(out, it.i);
  }
}

// logrus TextFormatter{FullTimestamp: true} writing to something that is not a terminal.
void format_text(std::string& out, const std::vector<Item>& items, const Line& line) {
  out += "time=\"";
  append_time(out, line.ms, false);
  out += "\" level=";
  out += level_name(line.level);
  if (!line.msg.empty()) {
    out += " msg=";
    append_text_value(out, line.msg);
  }
  for (const auto& it : items) {
    out.push_back(' ');
    out += it.key;
    out.push_back('=');
    append_text_item(out, it);
  }
  out.push_back('\n');
}

// logrus TextFormatter.printColored (a terminal).
void format_color(std::string& out, const std::vector<Item>& items, const Line& line) {
  static constexpr const char* kShort[] = {"TRAC", "DEBU", "INFO", "WARN", "ERRO", "FATA"};
  static constexpr const char* kColor[] = {"37", "37", "36", "33", "31", "31"};
  auto idx = static_cast<std::size_t>(line.level);
  const char* color = kColor[idx];
  out += "\x1b[";
  out += color;
  out += 'm';
  out += kShort[idx];
  out += "\x1b[0m[";
  append_time(out, line.ms, false);
  out += "] ";
  std::string_view msg = line.msg;
  if (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  out += msg;
  // %-44s pads to 44 runes.
  std::size_t runes = 0;
  for (char c : msg)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++runes;
  if (runes < 44) out.append(44 - runes, ' ');
  out.push_back(' ');
  for (const auto& it : items) {
    out += " \x1b[";
    out += color;
    out += 'm';
    out += it.key;
    out += "\x1b[0m=";
    append_text_item(out, it);
  }
  out.push_back('\n');
}

void emit(const Sink& sink, const Line& line) {
  if (line.level < sink.level || !sink.writer) return;
  thread_local std::string buf;
  thread_local std::vector<Item> items;
  buf.clear();
  collect(items, sink, line, sink.format == Format::json);
  switch (sink.format) {
    case Format::json:
      format_json(buf, items, line);
      break;
    case Format::text:
      format_text(buf, items, line);
      break;
    case Format::color:
      format_color(buf, items, line);
      break;
  }
  sink.writer->write(buf);
  if (buf.capacity() > (64u << 10)) std::string().swap(buf);  // one huge trace line: give it back
}

// ---- building a configuration ----------------------------------------------------------------

struct Builder {
  const Snapshot* old = nullptr;
  std::vector<std::pair<std::string, std::shared_ptr<Writer>>> opened;  // this configure's files
  std::vector<std::string> warnings;

  std::shared_ptr<Writer> find(const std::string& key) const {
    for (const auto& [k, w] : opened)
      if (k == key) return w;
    return nullptr;
  }

  std::shared_ptr<Writer> find_rotated(const std::string& key) const {
    if (auto w = find(key)) return w;
    if (!old) return nullptr;
    if (old->def.rotation_key == key) return old->def.writer;
    for (const auto& s : old->named)
      if (s.rotation_key == key) return s.writer;
    return nullptr;
  }

  Sink sink(const std::string& name, const config::Log& cfg) {
    Sink s;
    s.name = name;
    s.level = parse_level(cfg.level);
    const std::string& out = cfg.output;
    if (out.empty() || out == "stderr") {
      s.writer = stderr_writer();
    } else if (out == "stdout") {
      s.writer = stdout_writer();
    } else if (out == "none" || out == "null") {
      s.writer = nullptr;
    } else if (cfg.rotation) {
      const auto& r = *cfg.rotation;
      // lumberjack's MaxSize is in MB; 0 (or less) means 100.
      RotationOptions o;
      o.filename = out;
      o.max_bytes = std::uint64_t(r.maxSize > 0 ? r.maxSize : 100) << 20;
      o.max_age_days = std::max(r.maxAge, 0);
      o.max_backups = std::max(r.maxBackups, 0);
      o.local_time = r.localTime;
      o.compress = r.compress;
      s.rotation_key = "rotate " + std::to_string(o.max_bytes) + " " +
                       std::to_string(o.max_age_days) + " " + std::to_string(o.max_backups) + " " +
                       (o.local_time ? "1" : "0") + (o.compress ? "1" : "0") + " " + out;
      s.writer = find_rotated(s.rotation_key);
      if (!s.writer) {
        s.writer = std::make_shared<RotatingFile>(std::move(o));
        opened.emplace_back(s.rotation_key, s.writer);
      }
    } else {
      // A plain file is reopened by every configure (GOST reopens on reload: logrotate + SIGHUP).
      std::string key = "file " + out;
      s.writer = find(key);
      if (!s.writer) {
        std::string err;
        s.writer = open_file_writer(out, err);
        if (s.writer) {
          opened.emplace_back(key, s.writer);
        } else {
          warnings.push_back(std::move(err));
          s.writer = stderr_writer();
        }
      }
    }
    s.format = cfg.format != "text"                    ? Format::json
               : (s.writer && s.writer->is_terminal()) ? Format::color
                                                       : Format::text;
    return s;
  }
};

int min_level(const Snapshot& s) {
  int m = kDiscardAll;
  if (s.def.writer) m = std::min(m, static_cast<int>(s.def.level));
  for (const auto& n : s.named)
    if (n.writer) m = std::min(m, static_cast<int>(n.level));
  return m;
}

// Caller holds config_mutex(). The level is lowered before the snapshot is published and raised
// after, so a line that a new logger wants is never skipped by enabled().
void install(std::shared_ptr<const Snapshot> next) {
  int m = min_level(*next);
  int prev = detail::g_min_level.load(std::memory_order_relaxed);
  if (m < prev) detail::g_min_level.store(m, std::memory_order_relaxed);
  current().store(std::move(next));
  if (m >= prev) detail::g_min_level.store(m, std::memory_order_relaxed);
}

void write_line(const std::shared_ptr<const std::vector<std::string>>& route, const Line& line) {
  auto snap = current().load();
  bool routed = false;
  if (route)
    for (const auto& name : *route)
      for (const auto& s : snap->named)
        if (s.name == name) {
          routed = true;
          emit(s, line);
          break;
        }
  if (!routed) emit(snap->def, line);
}

std::int64_t now_ms() {
  auto clock = g_clock.load(std::memory_order_relaxed);
  auto t = clock ? clock() : std::chrono::system_clock::now();
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

void log_warnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) root().warn(w);
}

}  // namespace

Level parse_level(std::string_view name) {
  if (name == "trace") return Level::trace;
  if (name == "debug") return Level::debug;
  if (name == "warn") return Level::warn;
  if (name == "error") return Level::error;
  if (name == "fatal") return Level::fatal;
  return Level::info;
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
      return "warning";
    case Level::error:
      return "error";
    case Level::fatal:
      return "fatal";
  }
  return "info";
}

Level level() {
  return static_cast<Level>(std::min(detail::g_min_level.load(std::memory_order_relaxed),
                                     static_cast<int>(Level::fatal)));
}

void configure(const std::optional<config::Log>& log,
               const std::vector<config::NamedLogger>& loggers) {
  std::vector<std::string> warnings;
  {
    std::lock_guard lk(config_mutex());
    auto old = current().load();
    Builder b;
    b.old = old.get();
    auto next = std::make_shared<Snapshot>();
    next->def = b.sink("", log ? *log : config::Log{});
    for (const auto& n : loggers) next->named.push_back(b.sink(n.name, n.log));
    install(std::move(next));
    warnings = std::move(b.warnings);
  }
  log_warnings(warnings);
}

void configure(std::string_view format, std::string_view output) {
  std::vector<std::string> warnings;
  {
    std::lock_guard lk(config_mutex());
    auto old = current().load();
    Builder b;
    b.old = old.get();
    config::Log cfg;
    cfg.format = std::string(format);
    cfg.output = std::string(output);
    auto next = std::make_shared<Snapshot>(*old);
    next->def = b.sink("", cfg);
    next->def.level = old->def.level;
    install(std::move(next));
    warnings = std::move(b.warnings);
  }
  log_warnings(warnings);
}

void set_level(std::string_view name) {
  std::lock_guard lk(config_mutex());
  auto next = std::make_shared<Snapshot>(*current().load());
  next->def.level = parse_level(name);
  install(std::move(next));
}

Logger Logger::shared() const {
  if (fields_.empty()) return *this;
  Logger l;
  l.route_ = route_;
  auto all = std::make_shared<std::vector<Field>>();
  if (shared_) *all = *shared_;
  for (const auto& f : fields_) put_field(*all, f.key, f.value);  // later fields win
  l.shared_ = std::move(all);
  return l;
}

std::string_view Logger::field(const char* key) const {
  for (const auto* fields : {&fields_, shared_.get()})
    if (const Field* f = fields ? find_field(*fields, key) : nullptr)
      if (auto* s = std::get_if<std::string>(&f->value)) return *s;
  return {};
}

// Exactly the room it is given: a copy and a push_back would double the capacity, and a
// connection's logger lasts as long as its tunnel.
Logger Logger::with_room(std::size_t room) const {
  Logger l;
  l.shared_ = shared_;
  l.route_ = route_;
  l.fields_.reserve(fields_.size() + room);
  l.fields_ = fields_;
  return l;
}

Logger Logger::with(const char* key, std::string value) const {
  Logger l = with_room(find_field(fields_, key) ? 0 : 1);
  put_field(l.fields_, key, std::move(value));
  return l;
}

Logger Logger::with(std::initializer_list<std::pair<const char*, std::string>> fields) const {
  // A connection's logger gets its address fields, then a target: room for one more.
  Logger l = with_room(fields.size() + (fields_.empty() ? 1 : 0));
  for (const auto& [k, v] : fields) put_field(l.fields_, k, v);
  return l;
}

void Logger::write(Level l, std::string_view msg, std::vector<Field> extra) const {
  if (!enabled(l)) return;
  write_line(route_, Line{l, msg, shared_.get(), fields_, extra, now_ms()});
}

Logger service_logger(const std::string& logger, const std::vector<std::string>& loggers) {
  Logger l;
  if (logger.empty() && loggers.empty()) return l;
  auto route = std::make_shared<std::vector<std::string>>();
  if (!logger.empty()) route->push_back(logger);
  for (const auto& n : loggers) route->push_back(n);
  l.route_ = std::move(route);
  return l;
}

const Logger& root() {
  static const Logger logger;
  return logger;
}

namespace testing {
void set_clock(std::chrono::system_clock::time_point (*now)()) {
  g_clock.store(now, std::memory_order_relaxed);
}
}  // namespace testing

}  // namespace gost::log
