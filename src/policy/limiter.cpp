#include "policy/limiter.hpp"

#include <boost/asio/ip/address.hpp>
#include <charconv>
#include <cmath>
#include <limits>

namespace gost::policy {
namespace {

constexpr std::string_view kService = "$";
constexpr std::string_view kEach = "$$";
// The least a stream waits for: fewer, larger moves than a byte at a time, yet well under the
// burst of any sensible rate (docs/ARCHITECTURE.md "Limiters").
constexpr std::size_t kQuantum = 16 * 1024;

std::int64_t ns_of(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// Go's leadingInt: the digits at the front of `s`; false on overflow.
bool leading_int(std::string_view& s, std::int64_t& x) {
  std::size_t i = 0;
  x = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (x > (std::numeric_limits<std::int64_t>::max() - 9) / 10) return false;
    x = x * 10 + (s[i] - '0');
  }
  s.remove_prefix(i);
  return true;
}

// alecthomas/units ParseUnit with one unit map.
std::optional<std::int64_t> parse_unit(std::string_view s, bool binary) {
  auto unit_value = [binary](std::string_view u) -> double {
    if (u == "B") return 1;
    static constexpr std::string_view prefixes = "KMGTPE";
    if (u.size() != (binary ? 3u : 2u)) return 0;
    if (binary ? u.substr(1) != "iB" : u.substr(1) != "B") return 0;
    auto p = prefixes.find(u[0]);
    if (p == std::string_view::npos) return 0;
    return std::pow(1024.0, static_cast<double>(p + 1));
  };
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return 0;
  if (s.empty()) return std::nullopt;
  double f = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || (s[0] >= '0' && s[0] <= '9'))) return std::nullopt;
    std::size_t before = s.size();
    std::int64_t x = 0;
    if (!leading_int(s, x)) return std::nullopt;
    double g = static_cast<double>(x);
    bool pre = before != s.size(), post = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      std::size_t at = s.size();
      if (!leading_int(s, x)) return std::nullopt;
      double scale = std::pow(10.0, static_cast<double>(at - s.size()));
      g += static_cast<double>(x) / scale;
      post = at != s.size();
    }
    if (!pre && !post) return std::nullopt;
    std::size_t i = 0;
    while (i < s.size() && s[i] != '.' && !(s[i] >= '0' && s[i] <= '9')) ++i;
    double unit = unit_value(s.substr(0, i));
    if (unit == 0) return std::nullopt;
    s.remove_prefix(i);
    f += g * unit;
  }
  if (neg) f = -f;
  if (f < -9.2e18 || f > 9.2e18) return std::nullopt;
  return static_cast<std::int64_t>(f);
}

// Go's strconv.Atoi.
std::optional<std::int64_t> parse_int(std::string_view s) {
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return neg ? -v : v;
}

// Go's strconv.ParseFloat for the plain decimal forms a limit line uses; non-finite values are
// refused (they make no rate).
std::optional<double> parse_float(std::string_view s) {
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v))
    return std::nullopt;
  return neg ? -v : v;
}

std::optional<boost::asio::ip::address> parse_ip(std::string_view s) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(std::string(s), ec);
  if (ec) return std::nullopt;
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return boost::asio::ip::address(
        boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6()));
  if (a.is_v6() && a.to_v6().scope_id() != 0) return std::nullopt;  // Go's ParseIP has no zones
  return a;
}

std::vector<std::uint8_t> bytes_of(const boost::asio::ip::address& a) {
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    return {b.begin(), b.end()};
  }
  auto b = a.to_v6().to_bytes();
  return {b.begin(), b.end()};
}

// A line that is more than blanks and a comment (one field alone is ignored by GOST).
bool has_content(std::string_view text) {
  text = text.substr(0, text.find('#'));
  return text.find_first_not_of(" \t\r\n\v\f") != std::string_view::npos;
}

// What a key names; the kinds of the three limiters are the same.
enum class KeyKind { service, each, ip, cidr, unknown };
KeyKind classify(const std::string& key, std::string& ip, std::optional<IpNetwork>& net) {
  if (key == kService) return KeyKind::service;
  if (key == kEach) return KeyKind::each;
  if (auto c = canonical_ip(key)) {
    ip = *c;
    return KeyKind::ip;
  }
  if ((net = IpNetwork::parse_cidr(key))) return KeyKind::cidr;
  return KeyKind::unknown;
}

// Widest first (GOST takes the first network cidranger's ContainingNetworks returns, and it
// walks the trie from the root); the same network twice: the later line.
template <class V>
void add_cidr(std::vector<std::pair<IpNetwork, V>>& list, std::vector<std::string>& keys,
              const std::string& key, IpNetwork net, V value) {
  for (std::size_t i = 0; i < keys.size(); ++i)
    if (keys[i] == key) {
      list[i].second = value;
      return;
    }
  auto at = std::upper_bound(list.begin(), list.end(), net.prefix(),
                             [](int p, const auto& e) { return p < e.first.prefix(); });
  keys.insert(keys.begin() + (at - list.begin()), key);
  list.insert(at, {std::move(net), value});
}

template <class V>
const V* widest_containing(const std::vector<std::pair<IpNetwork, V>>& list, std::string_view ip) {
  for (const auto& [net, v] : list)
    if (net.contains(ip)) return &v;
  return nullptr;
}

}  // namespace

std::optional<std::int64_t> parse_base2_bytes(std::string_view s) {
  if (auto v = parse_unit(s, true)) return v;
  return parse_unit(s, false);
}

std::optional<LimitLine> split_limit_line(std::string_view line) {
  if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
  LimitLine out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' ||
                               line[i] == '\n' || line[i] == '\v' || line[i] == '\f'))
      ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' &&
           line[i] != '\n' && line[i] != '\v' && line[i] != '\f')
      ++i;
    if (i > start) {
      std::string field(line.substr(start, i - start));
      if (out.key.empty())
        out.key = std::move(field);
      else
        out.values.push_back(std::move(field));
    }
  }
  if (out.values.empty()) return std::nullopt;
  return out;
}

std::optional<std::string> canonical_ip(std::string_view s) {
  auto a = parse_ip(s);
  if (!a) return std::nullopt;
  return a->to_string();
}

std::optional<IpNetwork> IpNetwork::parse_cidr(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(std::string(s.substr(0, slash)), ec);
  if (ec || (a.is_v6() && a.to_v6().scope_id() != 0)) return std::nullopt;
  std::string_view p = s.substr(slash + 1);
  int prefix = 0;
  auto [end, pec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
  if (p.empty() || pec != std::errc() || end != p.data() + p.size() || p[0] == '+')
    return std::nullopt;
  IpNetwork net;
  net.addr_ = bytes_of(a);
  if (prefix < 0 || prefix > static_cast<int>(net.addr_.size() * 8)) return std::nullopt;
  // Go keeps an IPv4-mapped network in its 16-byte form, but matches IPv4 clients against it
  // only through the mapping: treat "::ffff:a.b.c.d/n" (n >= 96) as the IPv4 network.
  if (a.is_v6() && a.to_v6().is_v4_mapped() && prefix >= 96) {
    net.addr_.erase(net.addr_.begin(), net.addr_.begin() + 12);
    prefix -= 96;
  }
  net.prefix_ = prefix;
  for (std::size_t i = 0; i < net.addr_.size(); ++i) {
    int bits = std::clamp(prefix - static_cast<int>(i * 8), 0, 8);
    net.addr_[i] &= static_cast<std::uint8_t>(0xff00 >> bits);
  }
  return net;
}

bool IpNetwork::contains(std::string_view ip) const {
  auto a = parse_ip(ip);
  if (!a) return false;
  auto b = bytes_of(*a);
  if (b.size() != addr_.size()) return false;
  for (std::size_t i = 0; i < b.size(); ++i) {
    int bits = std::clamp(prefix_ - static_cast<int>(i * 8), 0, 8);
    if ((b[i] & static_cast<std::uint8_t>(0xff00 >> bits)) != addr_[i]) return false;
  }
  return true;
}

// ---- TokenBucket ---------------------------------------------------------------------------

// Rates below one token in ~11 days are that rate: the arithmetic stays within int64 nanoseconds.
constexpr double kMinRate = 1e-6;

TokenBucket::TokenBucket(double rate, double burst)
    : rate_(std::max(rate, kMinRate)),
      burst_(std::max(burst, 1.0)),
      ns_per_token_(1e9 / rate_),
      burst_ns_(static_cast<std::int64_t>(std::llround(burst_ * ns_per_token_))),
      empty_at_(std::numeric_limits<std::int64_t>::min() / 4) {}

std::int64_t TokenBucket::start(std::int64_t now_ns) const {
  return std::max(empty_at_.load(std::memory_order_relaxed), now_ns - burst_ns_);
}

std::int64_t TokenBucket::available(Clock::time_point now) const {
  std::int64_t now_ns = ns_of(now);
  double tokens = static_cast<double>(now_ns - start(now_ns)) / ns_per_token_;
  if (tokens <= 0) return 0;
  return static_cast<std::int64_t>(std::min(tokens, burst_) + 1e-9);
}

Clock::duration TokenBucket::until(double n, Clock::time_point now) const {
  std::int64_t now_ns = ns_of(now);
  double t = static_cast<double>(start(now_ns) - now_ns) + n * ns_per_token_;
  if (t <= 0) return Clock::duration::zero();
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::nanoseconds(static_cast<std::int64_t>(std::ceil(t))));
}

void TokenBucket::charge(double n, Clock::time_point now) {
  std::int64_t now_ns = ns_of(now);
  auto cost = static_cast<std::int64_t>(std::llround(n * ns_per_token_));
  std::int64_t e = empty_at_.load(std::memory_order_relaxed);
  while (!empty_at_.compare_exchange_weak(e, std::max(e, now_ns - burst_ns_) + cost,
                                          std::memory_order_relaxed)) {
  }
}

bool TokenBucket::try_take(double n, Clock::time_point now) {
  std::int64_t now_ns = ns_of(now);
  auto cost = static_cast<std::int64_t>(std::llround(n * ns_per_token_));
  std::int64_t e = empty_at_.load(std::memory_order_relaxed);
  for (;;) {
    std::int64_t next = std::max(e, now_ns - burst_ns_) + cost;
    if (next > now_ns) return false;
    if (empty_at_.compare_exchange_weak(e, next, std::memory_order_relaxed)) return true;
  }
}

// ---- BucketThrottle ------------------------------------------------------------------------

BucketThrottle::BucketThrottle(std::vector<std::shared_ptr<TokenBucket>> buckets)
    : buckets_(std::move(buckets)), quantum_(kQuantum) {
  for (const auto& b : buckets_)
    quantum_ = std::min(quantum_, std::max<std::size_t>(1, static_cast<std::size_t>(b->burst())));
}

Throttle::Budget BucketThrottle::check(std::size_t want, Clock::time_point now) {
  std::size_t need = std::min(want, quantum_);
  std::int64_t avail = std::numeric_limits<std::int64_t>::max();
  for (const auto& b : buckets_) avail = std::min(avail, b->available(now));
  if (avail >= static_cast<std::int64_t>(need))
    return {std::min(want, static_cast<std::size_t>(avail)), {}};
  Clock::duration wait{};
  for (const auto& b : buckets_) wait = std::max(wait, b->until(static_cast<double>(need), now));
  return {0, wait};
}

void BucketThrottle::charge(std::size_t n, Clock::time_point now) {
  for (const auto& b : buckets_) b->charge(static_cast<double>(n), now);
}

// ---- TrafficLimiter ------------------------------------------------------------------------

TrafficLimiter::TrafficLimiter(const std::vector<std::string>& lines) {
  std::vector<std::string> cidr_keys;
  for (const auto& text : lines) {
    auto line = split_limit_line(text);
    if (!line) {
      if (has_content(text)) ignored_.push_back(text);
      continue;
    }
    Rates r;
    bool bad = false;
    auto value = [&](std::size_t i) -> std::int64_t {
      if (i >= line->values.size()) return 0;
      auto v = parse_base2_bytes(line->values[i]);
      if (!v) bad = true;
      return v && *v > 0 ? *v : 0;
    };
    r.in = value(0);
    r.out = value(1);
    std::string ip;
    std::optional<IpNetwork> net;
    auto kind = classify(line->key, ip, net);
    if (bad || kind == KeyKind::unknown || (r.in == 0 && r.out == 0)) ignored_.push_back(text);
    switch (kind) {
      case KeyKind::service:
        service_in_ = r.in > 0 ? std::make_shared<TokenBucket>(r.in, r.in) : nullptr;
        service_out_ = r.out > 0 ? std::make_shared<TokenBucket>(r.out, r.out) : nullptr;
        break;
      case KeyKind::each:
        each_ = r;
        break;
      case KeyKind::ip:
        ips_[ip] = r;
        break;
      case KeyKind::cidr:
        add_cidr(cidrs_, cidr_keys, line->key, std::move(*net), r);
        break;
      case KeyKind::unknown:
        break;
    }
  }
}

bool TrafficLimiter::empty() const {
  auto zero = [](const Rates& r) { return r.in == 0 && r.out == 0; };
  return !service_in_ && !service_out_ && zero(each_) &&
         std::all_of(ips_.begin(), ips_.end(), [&](const auto& e) { return zero(e.second); }) &&
         std::all_of(cidrs_.begin(), cidrs_.end(), [&](const auto& e) { return zero(e.second); });
}

TrafficLimiter::Throttles TrafficLimiter::for_connection(std::string_view client_ip,
                                                         Clock::time_point now) {
  std::vector<std::shared_ptr<TokenBucket>> in, out;
  if (service_in_) in.push_back(service_in_);
  if (service_out_) out.push_back(service_out_);
  if (each_.in > 0) in.push_back(std::make_shared<TokenBucket>(each_.in, each_.in));
  if (each_.out > 0) out.push_back(std::make_shared<TokenBucket>(each_.out, each_.out));
  // The client IP's buckets: per direction, its own line, else the widest CIDR containing it.
  std::string ip = canonical_ip(client_ip).value_or(std::string(client_ip));
  Rates rates;
  const Rates* own = nullptr;
  if (auto it = ips_.find(ip); it != ips_.end()) own = &it->second;
  const Rates* wide = widest_containing(cidrs_, ip);
  rates.in = own && own->in > 0 ? own->in : wide ? wide->in : 0;
  rates.out = own && own->out > 0 ? own->out : wide ? wide->out : 0;
  if (rates.in > 0 || rates.out > 0) {
    auto buckets = per_ip_.get(
        ip,
        [&] {
          auto b = std::make_shared<IpBuckets>();
          if (rates.in > 0) b->in = std::make_shared<TokenBucket>(rates.in, rates.in);
          if (rates.out > 0) b->out = std::make_shared<TokenBucket>(rates.out, rates.out);
          return b;
        },
        [now](const std::shared_ptr<IpBuckets>& b) {
          auto idle = [now](const std::shared_ptr<TokenBucket>& t) {
            return !t || (t.use_count() == 1 && t->full(now));
          };
          return idle(b->in) && idle(b->out);
        });
    if (buckets->in) in.push_back(buckets->in);
    if (buckets->out) out.push_back(buckets->out);
  }
  Throttles t;
  if (!in.empty()) t.in = std::make_shared<BucketThrottle>(std::move(in));
  if (!out.empty()) t.out = std::make_shared<BucketThrottle>(std::move(out));
  return t;
}

// ---- ConnLimiter ---------------------------------------------------------------------------

ConnSlot& ConnSlot::operator=(ConnSlot&& o) noexcept {
  if (this != &o) {
    release();
    held_ = std::move(o.held_);
    kept_ = std::move(o.kept_);
  }
  return *this;
}

ConnSlot::~ConnSlot() { release(); }

void ConnSlot::release() {
  for (auto& c : held_) c->current.fetch_sub(1, std::memory_order_relaxed);
  held_.clear();
  kept_.reset();
}

namespace {

// Collects the lines of a counting limiter (conn, rate): `$`, `$$`, IP, CIDR -> value.
template <class V, class Parse>
void read_count_lines(const std::vector<std::string>& lines, Parse parse, std::optional<V>& service,
                      V& each, std::map<std::string, V>& ips,
                      std::vector<std::pair<IpNetwork, V>>& cidrs,
                      std::vector<std::string>& ignored) {
  std::vector<std::string> cidr_keys;
  for (const auto& text : lines) {
    auto line = split_limit_line(text);
    if (!line) {
      if (has_content(text)) ignored.push_back(text);
      continue;
    }
    auto v = parse(line->values[0]);
    std::string ip;
    std::optional<IpNetwork> net;
    auto kind = classify(line->key, ip, net);
    if (!v || *v <= 0 || kind == KeyKind::unknown) {
      ignored.push_back(text);
      continue;  // GOST: `if key == "" || limit <= 0 { continue }`
    }
    switch (kind) {
      case KeyKind::service:
        service = *v;
        break;
      case KeyKind::each:
        each = *v;
        break;
      case KeyKind::ip:
        ips[ip] = *v;
        break;
      case KeyKind::cidr:
        add_cidr(cidrs, cidr_keys, line->key, std::move(*net), *v);
        break;
      case KeyKind::unknown:
        break;
    }
  }
}

}  // namespace

ConnLimiter::ConnLimiter(const std::vector<std::string>& lines, const ConnLimiter* previous) {
  std::optional<std::int64_t> service;
  read_count_lines<std::int64_t>(lines, parse_int, service, each_, ips_, cidrs_, ignored_);
  if (previous) per_ip_ = previous->per_ip_;  // admit() sets each IP's limit as it goes
  if (service && previous && previous->service_) {
    service_ = previous->service_;
    service_->limit.store(*service, std::memory_order_relaxed);
  } else if (service) {
    service_ = std::make_shared<ConnSlot::Counter>(*service);
  }
}

bool ConnLimiter::empty() const {
  return !service_ && each_ == 0 && ips_.empty() && cidrs_.empty();
}

ConnLimiter::Limits ConnLimiter::limits_for(std::string_view client_ip) const {
  std::string ip = canonical_ip(client_ip).value_or(std::string(client_ip));
  Limits l;
  // The client IP's own limit: its line, else the widest CIDR containing it, else `$$`.
  if (auto it = ips_.find(ip); it != ips_.end())
    l.client = it->second;
  else if (const auto* v = widest_containing(cidrs_, ip))
    l.client = *v;
  else
    l.client = each_;
  if (service_) l.service = service_->limit.load(std::memory_order_relaxed);
  return l;
}

std::optional<ConnSlot> ConnLimiter::admit(std::string_view client_ip) {
  std::vector<std::shared_ptr<ConnSlot::Counter>> counters;
  std::string ip = canonical_ip(client_ip).value_or(std::string(client_ip));
  const std::int64_t limit = limits_for(ip).client;
  if (limit > 0) {
    auto counter = per_ip_->get(
        ip, [&] { return std::make_shared<ConnSlot::Counter>(limit); },
        [](const std::shared_ptr<ConnSlot::Counter>& c) {
          return c.use_count() == 1 && c->current.load(std::memory_order_relaxed) == 0;
        });
    // A counter made under a limiter this one replaced takes this one's limit.
    if (counter->limit.load(std::memory_order_relaxed) != limit)
      counter->limit.store(limit, std::memory_order_relaxed);
    counters.push_back(std::move(counter));
  }
  if (service_) counters.push_back(service_);
  // Smallest limit first, as GOST's limiterGroup sorts them; a refusal gives back what was taken.
  std::sort(counters.begin(), counters.end(),
            [](const auto& a, const auto& b) { return a->limit.load() < b->limit.load(); });
  for (std::size_t i = 0; i < counters.size(); ++i) {
    if (counters[i]->current.fetch_add(1, std::memory_order_relaxed) + 1 >
        counters[i]->limit.load(std::memory_order_relaxed)) {
      for (std::size_t j = 0; j <= i; ++j)
        counters[j]->current.fetch_sub(1, std::memory_order_relaxed);
      return std::nullopt;
    }
  }
  return ConnSlot(std::move(counters));
}

// ---- RateLimiter ---------------------------------------------------------------------------

namespace {
std::shared_ptr<TokenBucket> request_bucket(double r) {
  // GOST: rate.NewLimiter(r, int(r)+1).
  return std::make_shared<TokenBucket>(r, std::floor(r) + 1);
}
}  // namespace

RateLimiter::RateLimiter(const std::vector<std::string>& lines) {
  std::optional<double> service;
  read_count_lines<double>(lines, parse_float, service, each_, ips_, cidrs_, ignored_);
  if (service) service_ = request_bucket(*service);
}

bool RateLimiter::empty() const {
  return !service_ && each_ == 0 && ips_.empty() && cidrs_.empty();
}

bool RateLimiter::allow(std::string_view client_ip, Clock::time_point now) {
  std::string ip = canonical_ip(client_ip).value_or(std::string(client_ip));
  double r = 0;
  if (auto it = ips_.find(ip); it != ips_.end())
    r = it->second;
  else if (const auto* v = widest_containing(cidrs_, ip))
    r = *v;
  else
    r = each_;
  bool ok = true;
  if (r > 0) {
    auto b = per_ip_.get(
        ip, [&] { return request_bucket(r); },
        [now](const std::shared_ptr<TokenBucket>& t) {
          return t.use_count() == 1 && t->full(now);
        });
    ok = b->try_take(1, now) && ok;
  }
  if (service_) ok = service_->try_take(1, now) && ok;
  return ok;
}

}  // namespace gost::policy
