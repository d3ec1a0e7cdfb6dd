// GOST's Prometheus metrics (docs/PROTOCOLS.md "observability: metrics"): the families, their
// update points and the text exposition format 0.0.4.
//
// Counters on the data path are per thread: each worker writes its own shard (a plain load + store
// on a relaxed atomic, no read-modify-write, no shared cache line), and a scrape sums the shards.
// A connection resolves its series once (when accepted, or with the opt-in `user` label once its
// handler has authenticated the client); per byte there is one add to memory only its worker
// writes. Collection is off until enable() (GOST: `metrics.Enable(true)`), and every hook then
// costs a single branch.
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

// Where the counted streams of one request add their bytes (the accepted socket, the payload of a
// multiplexed listener's stream, a UDP association's client socket): the request's series, or,
// with the `user` label, a tally of the request's own until its handler names the user, which is
// then folded into the user's series and followed from there on. Shared by the request and its
// streams: a stream may outlive its request (a session's last frames) and its late bytes still
// land in the series.
class Sink {
 public:
  explicit Sink(Traffic* to = nullptr) : to_(to ? to : &held_) {}
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;
  void input(std::uint64_t n) noexcept { to_->input.add(n); }
  void output(std::uint64_t n) noexcept { to_->output.add(n); }
  Traffic* traffic() const noexcept { return to_; }

 private:
  friend class Request;
  Traffic held_;
  Traffic* to_;
};
using SinkPtr = std::shared_ptr<Sink>;

// The series of one {service, client, user} in one shard (user: "" unless the label is on).
struct ClientSeries {
  Counter requests;
  Counter errors;
  Traffic traffic;
  std::atomic<std::int64_t> in_flight{0};  // this shard's share: may be negative, the sum is not
  Sink sink{&traffic};                     // lives as long as the registry: shared without a count
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

// GOST's buckets (docs/PROTOCOLS.md "observability: metrics").
extern const std::vector<double> kRequestDurationBuckets;
extern const std::vector<double> kNodeConnectBuckets;

class Registry {
 public:
  // `user_label`: the per-client families carry a `user` label (go-gost/x#35; metrics.userLabel).
  explicit Registry(std::string host, bool user_label = false);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  bool user_label() const { return user_label_.load(std::memory_order_relaxed); }
  // A reload may turn the label on or off: requests accepted from then on follow it, and the
  // exposition shows it or sums the users' series (never two series with the same labels).
  void set_user_label(bool on) { user_label_.store(on, std::memory_order_relaxed); }
  // This thread's series (created on first use; the reference stays valid for the registry's
  // life). Call from the thread that will update it. `user` is only shown with the user label.
  ClientSeries& client(std::string_view service, std::string_view client,
                       std::string_view user = {});
  Histogram& request_duration(std::string_view service);
  void chain_error(std::string_view chain, std::string_view node);
  void node_connect(std::string_view chain, std::string_view node, double seconds);
  void recorder_record(std::string_view recorder);
  // A stream (tunnel) a multiplexing listener refused before it carried data (not in GOST:
  // gost_service_refused_streams_total{service, listener}).
  void stream_refused(std::string_view service, std::string_view listener);
  // A stream the server of a chain node refused before it carried data, seen by our dialer (not
  // in GOST: gost_chain_refused_streams_total{chain, node}).
  void node_stream_refused(std::string_view chain, std::string_view node);
  // gost_services: +1 when a service starts serving, -1 when it stops.
  void add_services(std::int64_t delta);

  // The text exposition: families sorted by name, series by label values, labels by name.
  std::string exposition() const;

 private:
  struct Shard;
  Shard& shard();

  std::string host_;
  std::atomic<bool> user_label_;
  std::uint64_t id_;
  mutable std::mutex mu_;  // guards shards_ (not the shards' contents)
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<std::int64_t> services_{0};
  std::atomic<bool> services_used_{false};
};

// The process-wide registry: null until enable().
Registry* global();
// Turns collection on (host label = the host name); `user_label`: metrics.userLabel. Call before
// the workers start, and again on a reload (the registry stays: counters are never reset,
// docs/PROTOCOLS.md "observability: metrics"; only the label setting follows the new
// configuration).
void enable(bool user_label = false);

// One accepted connection (GOST: one request), from accept to handler return. No-op when
// collection is off.
//
// With the user label, the request joins its series {service, client, user} only when the handler
// has authenticated the client (set_user, "" for none) — or at its end if that never happens —
// and only then counts in requests_total and in_flight; the bytes of its handshake, held by its
// sink meanwhile, are added then. So no counter ever moves backwards between series (a request
// first counted under user "" could not be taken back from a counter), at the price of requests
// showing up a handshake late.
class Request {
 public:
  // `service` and `remote_address` are copied as needed.
  Request(std::string_view service, std::string_view remote_address)
      : Request(global(), service, remote_address) {}
  // In `registry` (null: not counted).
  Request(Registry* registry, std::string_view service, std::string_view remote_address);
  ~Request();
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  void fail() { failed_ = true; }  // the handler returned an error (counted once)
  // The handler has authenticated the client as `user` ("" without authentication). Only the
  // first call counts; without the user label it changes nothing.
  void set_user(std::string_view user);
  // Where this request's streams count their bytes; null when collection is off.
  const SinkPtr& sink() const { return sink_; }
  // The traffic counters the bytes go to now (a tally of this request's own before set_user with
  // the user label): for code that counts beside the streams (splice) after set_user.
  Traffic* traffic() const { return sink_ ? sink_->traffic() : nullptr; }

 private:
  struct Pending;  // service and client while the user is not known
  void join(std::string_view service, std::string_view client, std::string_view user);

  Registry* registry_ = nullptr;
  ClientSeries* series_ = nullptr;
  Histogram* duration_ = nullptr;
  SinkPtr sink_;
  std::unique_ptr<Pending> pending_;
  std::chrono::steady_clock::time_point start_;
  bool failed_ = false;
};

// Go's strconv.FormatFloat(v, 'g', -1, 64), as the Prometheus client prints sample values.
std::string format_value(double v);
// The IP of "host:port" / "[v6]:port" (GOST's `client` label: the address without port).
std::string client_ip(std::string_view remote_address);

}  // namespace gost::metrics
