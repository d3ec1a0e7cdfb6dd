// GOST's Prometheus metrics (spec/observability.md §1): the families, their update points and the
// text exposition format 0.0.4.
//
// Counters on the data path are per thread: each worker writes its own shard (a plain load + store
// on a relaxed atomic, no read-modify-write, no shared cache line), and a scrape sums the shards.
// A connection resolves its series once when accepted; per byte there is one add to memory only
// its worker writes. Collection is off until enable() (GOST: `metrics.Enable(true)`), and every
// hook then costs a single branch.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gost::metrics {

// A counter with a single writer (its thread); others only read it.
class Counter {
 public:
  void add(std::uint64_t n) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// Bytes read from / written to a raw accepted connection (gost_service_transfer_*_bytes_total).
struct Traffic {
  Counter input;
  Counter output;
};

// The series of one {service, client} in one shard.
struct ClientSeries {
  Counter requests;
  Counter errors;
  Traffic traffic;
  std::atomic<std::int64_t> in_flight{0};  // this shard's share: may be negative, the sum is not
};

// A histogram with fixed upper bounds (+Inf implied); single writer.
class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds);
  void observe(double v) noexcept;
  std::span<const double> bounds() const { return bounds_; }
  std::uint64_t bucket(std::size_t i) const { return counts_[i].get(); }  // not cumulative
  std::uint64_t count() const { return count_.get(); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::span<const double> bounds_;
  std::unique_ptr<Counter[]> counts_;  // bounds_.size() + 1 (the last is +Inf)
  Counter count_;
  std::atomic<double> sum_{0};
};

// GOST's buckets (spec §1.3).
extern const std::vector<double> kRequestDurationBuckets;
extern const std::vector<double> kNodeConnectBuckets;

class Registry {
 public:
  explicit Registry(std::string host);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // This thread's series (created on first use; the reference stays valid for the registry's
  // life). Call from the thread that will update it.
  ClientSeries& client(std::string_view service, std::string_view client);
  Histogram& request_duration(std::string_view service);
  void chain_error(std::string_view chain, std::string_view node);
  void node_connect(std::string_view chain, std::string_view node, double seconds);
  void recorder_record(std::string_view recorder);
  // gost_services: +1 when a service starts serving, -1 when it stops.
  void add_services(std::int64_t delta);

  // The text exposition: families sorted by name, series by label values, labels by name.
  std::string exposition() const;

 private:
  struct Shard;
  Shard& shard();

  std::string host_;
  std::uint64_t id_;
  mutable std::mutex mu_;  // guards shards_ (not the shards' contents)
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<std::int64_t> services_{0};
  std::atomic<bool> services_used_{false};
};

// The process-wide registry: null until enable().
Registry* global();
// Turns collection on (host label = the host name). Call before the workers start.
void enable();

// One accepted connection (GOST: one request), from accept to handler return. No-op when
// collection is off.
class Request {
 public:
  Request(std::string_view service, std::string_view remote_address);
  ~Request();
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  void fail() { failed_ = true; }  // the handler returned an error (counted once)
  Traffic* traffic() const { return series_ ? &series_->traffic : nullptr; }

 private:
  ClientSeries* series_ = nullptr;
  Histogram* duration_ = nullptr;
  std::chrono::steady_clock::time_point start_;
  bool failed_ = false;
};

// Go's strconv.FormatFloat(v, 'g', -1, 64), as the Prometheus client prints sample values.
std::string format_value(double v);
// The IP of "host:port" / "[v6]:port" (GOST's `client` label: the address without port).
std::string client_ip(std::string_view remote_address);

}  // namespace gost::metrics
