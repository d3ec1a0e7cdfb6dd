// GOST's limiters (go-gost/x limiter/traffic, limiter/conn, limiter/rate; docs/ARCHITECTURE.md
// "Limiters"): pure code, no I/O — time is passed in, so every test is deterministic.
//
// A limiter is a list of lines "<key> <value...>" ('#' starts a comment; tabs count as spaces).
// The key is `$` (the whole service), `$$` (traffic: each connection; connections and requests:
// each client IP), an IP address or a CIDR (each client IP it contains; a literal IP wins over
// CIDRs, and of several CIDRs the widest is used, as GOST's cidranger returns it first).
//   traffic   `limiters`:  "<key> <in> [<out>]"  bytes per second, units base 2 ("1MB" = 1 MiB/s);
//                          a token bucket whose burst equals its rate; in = what the client sends.
//   conn      `climiters`: "<key> <n>"  open connections.
//   rate      `rlimiters`: "<key> <r>"  requests per second (float), burst int(r)+1.
// Lines GOST would ignore (a value that does not parse or is <= 0, a key that is none of the
// above) are ignored too, and listed in `ignored()` so that the runtime can warn about them.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/throttle.hpp"

namespace gost::policy {

using Clock = std::chrono::steady_clock;

// alecthomas/units ParseBase2Bytes, which GOST uses for traffic limits: one or more
// "<number><unit>" with units B, KB/KiB, MB/MiB, GB/GiB, TB/TiB, PB/PiB, EB/EiB (all powers of
// 1024, case-sensitive), "1.5MB" allowed, "0" alone is zero. nullopt when it does not parse.
std::optional<std::int64_t> parse_base2_bytes(std::string_view s);

// A limit line split into its key and values, comments and blanks removed; nullopt for a line
// with fewer than two fields (GOST skips it).
struct LimitLine {
  std::string key;
  std::vector<std::string> values;
};
std::optional<LimitLine> split_limit_line(std::string_view line);

// An IP network; an IPv4-mapped IPv6 address is matched as IPv4 (as Go's net.IP does).
class IpNetwork {
 public:
  static std::optional<IpNetwork> parse_cidr(std::string_view s);  // "10.0.0.0/8", "fd00::/8"
  bool contains(std::string_view ip) const;
  int prefix() const { return prefix_; }

 private:
  std::vector<std::uint8_t> addr_;  // 4 or 16 bytes, masked
  int prefix_ = 0;
};
// The canonical text of an IP ("::ffff:1.2.3.4" -> "1.2.3.4"); nullopt when `s` is not an IP.
std::optional<std::string> canonical_ip(std::string_view s);

// A token bucket (GCRA form: one atomic timestamp, lock-free, shared safely between workers).
// `rate` tokens per second, at most `burst` tokens; starts full. Tokens may go below zero
// (charge()): later callers wait until the debt is paid.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst);
  double rate() const { return rate_; }
  double burst() const { return burst_; }
  // Whole tokens available at `now` (0 when in debt), at most the burst.
  std::int64_t available(Clock::time_point now) const;
  // How long until `n` tokens are available (0 when they are now).
  Clock::duration until(double n, Clock::time_point now) const;
  void charge(double n, Clock::time_point now);
  // Takes `n` tokens if they are available now (golang.org/x/time/rate AllowN).
  bool try_take(double n, Clock::time_point now);
  bool full(Clock::time_point now) const {
    return available(now) >= static_cast<std::int64_t>(burst_);
  }

 private:
  std::int64_t start(std::int64_t now_ns) const;  // the empty-at time, clamped to a full bucket
  double rate_, burst_;
  double ns_per_token_;
  std::int64_t burst_ns_;
  std::atomic<std::int64_t> empty_at_;  // ns on Clock: tokens = (now - empty_at) * rate
};

// Several buckets that must all allow a move (GOST's limiterGroup): the one core::Throttle a
// limited stream direction sees.
class BucketThrottle final : public Throttle {
 public:
  explicit BucketThrottle(std::vector<std::shared_ptr<TokenBucket>> buckets);
  Budget check(std::size_t want, Clock::time_point now) override;
  void charge(std::size_t n, Clock::time_point now) override;
  const std::vector<std::shared_ptr<TokenBucket>>& buckets() const { return buckets_; }

 private:
  std::vector<std::shared_ptr<TokenBucket>> buckets_;
  std::size_t quantum_;  // the least a wait is for: min(16 KiB, smallest burst)
};

// Per-client-IP state, created on first use and forgotten once unused (`idle` says when), so that
// hostile clients from many addresses cannot grow it without bound.
template <class T>
class PerIp {
 public:
  template <class Make, class Idle>
  std::shared_ptr<T> get(const std::string& ip, Make make, Idle idle) {
    std::lock_guard lock(mu_);
    auto it = map_.find(ip);
    if (it != map_.end()) return it->second;
    if (map_.size() >= prune_at_) {
      for (auto i = map_.begin(); i != map_.end();) i = idle(i->second) ? map_.erase(i) : ++i;
      prune_at_ = std::max<std::size_t>(1024, map_.size() * 2);
    }
    auto v = make();
    map_.emplace(ip, v);
    return v;
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return map_.size();
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<T>> map_;
  std::size_t prune_at_ = 1024;
};

// ---- traffic (limiters) --------------------------------------------------------------------

class TrafficLimiter {
 public:
  explicit TrafficLimiter(const std::vector<std::string>& lines);
  // The budgets of one connection from `client_ip`: the service's buckets (`$`), new buckets of
  // its own (`$$`) and its IP's (IP or CIDR line); null for a direction without any.
  struct Throttles {
    ThrottlePtr in, out;
  };
  Throttles for_connection(std::string_view client_ip, Clock::time_point now);
  bool empty() const;
  std::size_t tracked_ips() const { return per_ip_.size(); }
  const std::vector<std::string>& ignored() const { return ignored_; }

 private:
  struct Rates {
    std::int64_t in = 0, out = 0;
  };
  struct IpBuckets {
    std::shared_ptr<TokenBucket> in, out;
  };
  std::shared_ptr<TokenBucket> service_in_, service_out_;
  Rates each_;
  std::map<std::string, Rates> ips_;
  std::vector<std::pair<IpNetwork, Rates>> cidrs_;  // widest first
  PerIp<IpBuckets> per_ip_;
  std::vector<std::string> ignored_;
};

// ---- connections (climiters) ---------------------------------------------------------------

// One open connection's places in the counters it counts in; given back when destroyed.
class ConnSlot {
 public:
  struct Counter {
    explicit Counter(std::int64_t l) : limit(l) {}
    std::atomic<std::int64_t> limit;  // a source's change sets it (ConnLimiter's `previous`)
    std::atomic<std::int64_t> current{0};
  };
  ConnSlot() = default;
  explicit ConnSlot(std::vector<std::shared_ptr<Counter>> held) : held_(std::move(held)) {}
  ConnSlot(ConnSlot&&) = default;
  ConnSlot& operator=(ConnSlot&& o) noexcept;
  ~ConnSlot();
  // Something else to give back with the slot (a fleet counter's place: app/fleet_climiter.hpp).
  void keep(std::shared_ptr<void> p) { kept_ = std::move(p); }

 private:
  void release();
  std::vector<std::shared_ptr<Counter>> held_;
  std::shared_ptr<void> kept_;
};

class ConnLimiter {
 public:
  explicit ConnLimiter(const std::vector<std::string>& lines) : ConnLimiter(lines, nullptr) {}
  // With `previous` (the limiter these lines replace): its counters carry on with the new limits,
  // so that the connections still open count against them (GOST's reload sets the new limit on
  // the existing limiters).
  ConnLimiter(const std::vector<std::string>& lines, const ConnLimiter* previous);
  // A slot when one more connection from `client_ip` is within every limit, else nullopt (and
  // nothing is counted).
  std::optional<ConnSlot> admit(std::string_view client_ip);
  // The limits that apply to `client_ip`: its own (its line, else the widest CIDR, else `$$`)
  // and the service's (`$`); 0 = none.
  struct Limits {
    std::int64_t client = 0, service = 0;
  };
  Limits limits_for(std::string_view client_ip) const;
  std::size_t tracked_ips() const { return per_ip_->size(); }
  bool empty() const;
  const std::vector<std::string>& ignored() const { return ignored_; }

 private:
  std::shared_ptr<ConnSlot::Counter> service_;
  std::int64_t each_ = 0;
  std::map<std::string, std::int64_t> ips_;
  std::vector<std::pair<IpNetwork, std::int64_t>> cidrs_;  // widest first
  std::shared_ptr<PerIp<ConnSlot::Counter>> per_ip_ = std::make_shared<PerIp<ConnSlot::Counter>>();
  std::vector<std::string> ignored_;
};

// ---- requests (rlimiters) ------------------------------------------------------------------

class RateLimiter {
 public:
  explicit RateLimiter(const std::vector<std::string>& lines);
  // Whether one more request from `client_ip` is allowed at `now`. Every bucket that applies is
  // asked (and takes a token when it has one), as GOST's limiterGroup does.
  bool allow(std::string_view client_ip, Clock::time_point now);
  bool empty() const;
  const std::vector<std::string>& ignored() const { return ignored_; }

 private:
  std::shared_ptr<TokenBucket> service_;
  double each_ = 0;
  std::map<std::string, double> ips_;
  std::vector<std::pair<IpNetwork, double>> cidrs_;  // widest first
  PerIp<TokenBucket> per_ip_;
  std::vector<std::string> ignored_;
};

// ---- a named limiter -----------------------------------------------------------------------

// A named limiter (`limiters`, `climiters`, `rlimiters`): its inline `limits` plus the lines its
// sources hold (docs/ARCHITECTURE.md "Limiters"). update() builds a new limiter from both (loaded
// lines after the inline ones: a later line for a key wins, as in GOST's load()) and swaps it in
// atomically: a new connection takes current() once, so the running ones keep their buckets (a
// connection limiter's counts carry over: ConnLimiter's `previous`). No lock on the data path;
// update() runs on one thread at a time (the constructor, then the source thread).
template <class L>
class LimiterHolder {
 public:
  explicit LimiterHolder(std::vector<std::string> inline_lines) : inline_(std::move(inline_lines)) {
    update({});
  }
  // Null while no line has an effect.
  std::shared_ptr<L> current() const { return current_.load(std::memory_order_acquire); }
  // Returns the lines GOST would ignore too (for a warning).
  std::vector<std::string> update(const std::vector<std::string>& loaded) {
    std::vector<std::string> all = inline_;
    all.insert(all.end(), loaded.begin(), loaded.end());
    std::shared_ptr<L> l;
    if constexpr (std::is_constructible_v<L, const std::vector<std::string>&, const L*>)
      l = std::make_shared<L>(all, last_.get());
    else
      l = std::make_shared<L>(all);
    last_ = l;
    auto ignored = l->ignored();
    if (l->empty()) l.reset();
    current_.store(std::move(l), std::memory_order_release);
    return ignored;
  }

 private:
  const std::vector<std::string> inline_;
  std::shared_ptr<L> last_;  // the last built, even when empty (update() only)
  std::atomic<std::shared_ptr<L>> current_;
};

using TrafficLimiters = LimiterHolder<TrafficLimiter>;
using ConnLimiters = LimiterHolder<ConnLimiter>;
using RateLimiters = LimiterHolder<RateLimiter>;

}  // namespace gost::policy
