#include "config/model.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>

#include "config/go_text.hpp"

namespace gost::config {

using detail::iequals;

namespace {

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(first, last - first + 1));
}

std::optional<std::chrono::nanoseconds> seconds(double v) {
  const double ns = v * 1e9;
  if (!std::isfinite(ns) || std::fabs(ns) >= 9.2e18) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

}  // namespace

std::string Value::as_string() const {
  if (auto s = std::get_if<std::string>(&v)) return *s;
  if (auto b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (auto i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (auto d = std::get_if<double>(&v)) return detail::go_format_float(*d, 'f');
  return {};
}

namespace {
std::atomic<MetadataKeyLog*> active_key_log{nullptr};

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

MetadataKeyLog::MetadataKeyLog() { active_key_log.store(this); }
MetadataKeyLog::~MetadataKeyLog() { active_key_log.store(nullptr); }

void MetadataKeyLog::record(std::string_view key) {
  auto k = lower(key);
  // A reload builds services while the workers serve (and look options up): record under a lock.
  std::lock_guard lock(mu_);
  if (std::find(keys_.begin(), keys_.end(), k) == keys_.end()) keys_.push_back(std::move(k));
}

bool MetadataKeyLog::seen(std::string_view key) const {
  std::lock_guard lock(mu_);
  return std::find(keys_.begin(), keys_.end(), lower(key)) != keys_.end();
}

const Value* Metadata::find(std::string_view key) const {
  if (auto* log = active_key_log.load(std::memory_order_relaxed)) log->record(key);
  for (const auto& [k, value] : entries) {
    if (iequals(k, key)) return &value;
  }
  return nullptr;
}

const Value* Metadata::find_first(std::initializer_list<std::string_view> keys,
                                  std::string_view* which) const {
  for (auto k : keys)
    if (const auto* v = find(k)) {
      if (which) *which = k;
      return v;
    }
  return nullptr;
}

void Metadata::set(std::string key, Value value) {
  for (auto& entry : entries) {
    if (iequals(entry.first, key)) {
      entry = {std::move(key), std::move(value)};
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

bool Metadata::erase(std::string_view key) {
  const auto before = entries.size();
  std::erase_if(entries, [key](const auto& e) { return iequals(e.first, key); });
  return entries.size() != before;
}

std::optional<std::string> Metadata::get_string(std::string_view key) const {
  const Value* value = find(key);
  if (!value || !value->is_scalar()) return std::nullopt;
  return value->as_string();
}

std::optional<bool> Metadata::get_bool(std::string_view key) const {
  const Value* value = find(key);
  if (!value) return std::nullopt;
  if (auto b = std::get_if<bool>(&value->v)) return *b;
  if (auto i = std::get_if<std::int64_t>(&value->v)) return *i != 0;
  if (auto d = std::get_if<double>(&value->v)) return *d != 0;
  if (auto s = std::get_if<std::string>(&value->v)) {
    const std::string l = detail::ascii_lower(*s);
    if (l == "true" || l == "1" || l == "t") return true;
    if (l == "false" || l == "0" || l == "f") return false;
  }
  return std::nullopt;
}

std::optional<std::int64_t> Metadata::get_int(std::string_view key) const {
  const Value* value = find(key);
  if (!value) return std::nullopt;
  if (auto i = std::get_if<std::int64_t>(&value->v)) return *i;
  if (auto b = std::get_if<bool>(&value->v)) return *b ? 1 : 0;
  if (auto d = std::get_if<double>(&value->v)) {
    if (!std::isfinite(*d) || std::fabs(*d) >= 9.2e18) return std::nullopt;
    return static_cast<std::int64_t>(*d);
  }
  if (auto s = std::get_if<std::string>(&value->v)) return detail::go_atoi(trim(*s));
  return std::nullopt;
}

std::optional<std::chrono::nanoseconds> Metadata::get_duration(std::string_view key) const {
  const Value* value = find(key);
  if (!value) return std::nullopt;
  if (auto i = std::get_if<std::int64_t>(&value->v)) return seconds(static_cast<double>(*i));
  if (auto d = std::get_if<double>(&value->v)) return seconds(*d);
  if (auto s = std::get_if<std::string>(&value->v)) {
    const std::string text = trim(*s);
    if (auto d = parse_go_duration(text); d && d->count() != 0) return d;
    if (auto n = detail::go_atoi(text)) return seconds(static_cast<double>(*n));
    if (auto d = parse_go_duration(text)) return d;  // "0", "0s"
  }
  return std::nullopt;
}

std::optional<std::vector<std::string>> Metadata::get_strings(std::string_view key) const {
  const Value* value = find(key);
  if (!value) return std::nullopt;
  std::vector<std::string> out;
  if (auto list = std::get_if<ValueList>(&value->v)) {
    for (const auto& item : *list) {
      if (item.is_scalar()) out.push_back(item.as_string());
    }
    return out;
  }
  if (!value->is_scalar()) return std::nullopt;
  const std::string text = value->as_string();
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string part = trim(std::string_view(text).substr(start, comma - start));
    if (!part.empty()) out.push_back(std::move(part));
    start = comma + 1;
  }
  return out;
}

void Config::merge(Config other) {
  auto append = [](auto& into, auto& from) {
    into.insert(into.end(), std::make_move_iterator(from.begin()),
                std::make_move_iterator(from.end()));
  };
  append(services, other.services);
  append(chains, other.chains);
  append(hops, other.hops);
  append(authers, other.authers);
  append(admissions, other.admissions);
  append(bypasses, other.bypasses);
  append(hosts, other.hosts);
  append(ingresses, other.ingresses);
  append(limiters, other.limiters);
  append(climiters, other.climiters);
  append(rlimiters, other.rlimiters);
  append(loggers, other.loggers);
  if (other.tls) tls = std::move(other.tls);
  if (other.log) log = std::move(other.log);
  if (other.api) api = std::move(other.api);
  if (other.metrics) metrics = std::move(other.metrics);
}

// ---- Go durations -------------------------------------------------------------------------

namespace {

constexpr std::uint64_t kMaxDuration = std::uint64_t{1} << 63;

std::optional<std::uint64_t> unit_nanos(std::string_view unit) {
  if (unit == "ns") return 1;
  if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") return 1000;
  if (unit == "ms") return 1000000;
  if (unit == "s") return 1000000000;
  if (unit == "m") return 60ull * 1000000000;
  if (unit == "h") return 3600ull * 1000000000;
  return std::nullopt;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// One "<number><unit>" component; adds its value to `total`. False on syntax error/overflow.
bool take_component(std::string_view& s, std::uint64_t& total) {
  if (s.empty() || !(s[0] == '.' || is_digit(s[0]))) return false;
  std::uint64_t v = 0;
  std::size_t i = 0;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    if (v > (kMaxDuration) / 10) return false;
    v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
    if (v > kMaxDuration) return false;
  }
  const bool pre = i > 0;
  s.remove_prefix(i);
  std::uint64_t frac = 0;
  double scale = 1;
  bool post = false;
  if (!s.empty() && s[0] == '.') {
    s.remove_prefix(1);
    bool overflow = false;
    for (i = 0; i < s.size() && is_digit(s[i]); ++i) {
      if (overflow || frac > (std::numeric_limits<std::int64_t>::max() - 9) / 10) {
        overflow = true;
        continue;
      }
      frac = frac * 10 + static_cast<std::uint64_t>(s[i] - '0');
      scale *= 10;
    }
    post = i > 0;
    s.remove_prefix(i);
  }
  if (!pre && !post) return false;
  i = 0;
  while (i < s.size() && s[i] != '.' && !is_digit(s[i])) ++i;
  auto unit = unit_nanos(s.substr(0, i));
  if (!unit) return false;
  s.remove_prefix(i);
  if (v > kMaxDuration / *unit) return false;
  v *= *unit;
  if (frac > 0) {
    v += static_cast<std::uint64_t>(static_cast<double>(frac) *
                                    (static_cast<double>(*unit) / scale));
    if (v > kMaxDuration) return false;
  }
  total += v;
  return total <= kMaxDuration;
}

// fmtFrac of Go's time package: ".123" without trailing zeros; empty if the fraction is 0.
std::string fraction(std::uint64_t& v, int prec) {
  std::string digits;
  bool print = false;
  for (int i = 0; i < prec; ++i) {
    const auto digit = v % 10;
    print = print || digit != 0;
    if (print) digits.insert(digits.begin(), static_cast<char>('0' + digit));
    v /= 10;
  }
  return print ? "." + digits : std::string();
}

}  // namespace

std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view text) {
  std::string_view s = text;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return std::nullopt;
  std::uint64_t total = 0;
  while (!s.empty()) {
    if (!take_component(s, total)) return std::nullopt;
  }
  if (neg) {
    return std::chrono::nanoseconds(total == kMaxDuration ? std::numeric_limits<std::int64_t>::min()
                                                          : -static_cast<std::int64_t>(total));
  }
  if (total > kMaxDuration - 1) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(total));
}

std::string format_go_duration(std::chrono::nanoseconds d) {
  const std::int64_t n = d.count();
  const bool neg = n < 0;
  std::uint64_t u = neg ? (~static_cast<std::uint64_t>(n) + 1) : static_cast<std::uint64_t>(n);
  std::string out;
  if (u < 1000000000ull) {
    if (u == 0) return "0s";
    int prec = 0;
    std::string unit;
    if (u < 1000) {
      unit = "ns";
    } else if (u < 1000000) {
      prec = 3;
      unit = "\xC2\xB5s";
    } else {
      prec = 6;
      unit = "ms";
    }
    std::string frac = fraction(u, prec);
    out = std::to_string(u) + frac + unit;
  } else {
    std::string frac = fraction(u, 9);
    out = std::to_string(u % 60) + frac + "s";
    u /= 60;
    if (u > 0) {
      out = std::to_string(u % 60) + "m" + out;
      u /= 60;
      if (u > 0) out = std::to_string(u) + "h" + out;
    }
  }
  return neg ? "-" + out : out;
}

}  // namespace gost::config
