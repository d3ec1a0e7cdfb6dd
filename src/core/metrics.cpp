#include "core/metrics.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <map>
#include <tuple>

#include "core/address.hpp"

namespace gost::metrics {

const std::vector<double> kRequestDurationBuckets = {.005, .01, .025, .05, .1, .25, .5,
                                                     1,    2.5, 5,    10,  15, 30,  60};
const std::vector<double> kNodeConnectBuckets = {.01, .05, .1, .25, .5, 1, 1.5,
                                                 2,   5,   10, 15,  30, 60};

namespace {

void add_signed(std::atomic<std::int64_t>& v, std::int64_t d) {
  v.store(v.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}

using Key = std::pair<std::string, std::string>;
using KeyView = std::pair<std::string_view, std::string_view>;
using Key3 = std::tuple<std::string, std::string, std::string>;
using Key3View = std::tuple<std::string_view, std::string_view, std::string_view>;

// Lets a map keyed by two strings be searched with two string_views (no allocation per lookup).
struct KeyLess {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return std::tuple<std::string_view, std::string_view>(a.first, a.second) <
           std::tuple<std::string_view, std::string_view>(b.first, b.second);
  }
};

// The same for three strings.
struct Key3Less {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return Key3View(std::get<0>(a), std::get<1>(a), std::get<2>(a)) <
           Key3View(std::get<0>(b), std::get<1>(b), std::get<2>(b));
  }
};

std::atomic<std::uint64_t> next_registry_id{1};

struct LocalShard {
  std::uint64_t registry;
  void* shard;
};
thread_local std::vector<LocalShard> t_shards;

std::unique_ptr<Registry> g_registry;

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return {};
  return buf;
}

// Prometheus label value escaping: backslash, double quote and newline.
void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;  // sorted by name

void append_labels(std::string& out, const Labels& labels, std::string_view le = {}) {
  out += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    append_label_value(out, value);
    out += '"';
  }
  if (!le.empty()) {
    out += ",le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

void append_header(std::string& out, std::string_view name, std::string_view help,
                   std::string_view type) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void append_sample(std::string& out, std::string_view name, const Labels& labels, double v) {
  out += name;
  append_labels(out, labels);
  out += ' ';
  out += format_value(v);
  out += '\n';
}

struct HistogramSum {
  std::vector<std::uint64_t> buckets;  // not cumulative, last = +Inf
  std::uint64_t count = 0;
  double sum = 0;
  void add(const Histogram& h) {
    if (buckets.empty()) buckets.assign(h.bounds().size() + 1, 0);
    for (std::size_t i = 0; i < buckets.size(); ++i) buckets[i] += h.bucket(i);
    count += h.count();
    sum += h.sum();
  }
};

void append_histogram(std::string& out, std::string_view name, const Labels& labels,
                      std::span<const double> bounds, const HistogramSum& h) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += h.buckets[i];
    out += name;
    out += "_bucket";
    append_labels(out, labels, i < bounds.size() ? format_value(bounds[i]) : "+Inf");
    out += ' ';
    out += format_value(static_cast<double>(cumulative));
    out += '\n';
  }
  append_sample(out, std::string(name) + "_sum", labels, h.sum);
  append_sample(out, std::string(name) + "_count", labels, static_cast<double>(h.count));
}

}  // namespace

// ---- Histogram ---------------------------------------------------------------------------------

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds), counts_(new Counter[bounds.size() + 1]) {}

void Histogram::observe(double v) noexcept {
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;  // Prometheus buckets are "le" (≤)
  counts_[i].add(1);
  count_.add(1);
  sum_.store(sum_.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

// ---- Registry ----------------------------------------------------------------------------------

// One thread's series. Only that thread inserts (under `mu`) and updates; a scrape reads under
// `mu`. The owner's lookups need no lock: the only writer of the maps' structure is itself.
struct Registry::Shard {
  std::mutex mu;
  std::map<Key3, ClientSeries, Key3Less> clients;  // {service, client, user}
  std::map<std::string, Histogram, std::less<>> durations;
  std::map<Key, Counter, KeyLess> chain_errors;  // {chain, node}
  std::map<Key, Histogram, KeyLess> connect;
  std::map<std::string, Counter, std::less<>> records;
  std::map<Key, Counter, KeyLess> refused;       // {service, listener}
  std::map<Key, Counter, KeyLess> node_refused;  // {chain, node}

  template <class Map, class K, class... Args>
  auto& get(Map& m, const K& key, Args&&... args) {
    auto it = m.find(key);
    if (it != m.end()) return it->second;
    std::lock_guard lock(mu);
    return m.try_emplace(typename Map::key_type(key), std::forward<Args>(args)...).first->second;
  }
};

Registry::Registry(std::string host, bool user_label)
    : host_(std::move(host)), user_label_(user_label), id_(next_registry_id++) {}
Registry::~Registry() = default;

Registry::Shard& Registry::shard() {
  for (const auto& l : t_shards)
    if (l.registry == id_) return *static_cast<Shard*>(l.shard);
  auto s = std::make_unique<Shard>();
  Shard* raw = s.get();
  {
    std::lock_guard lock(mu_);
    shards_.push_back(std::move(s));
  }
  t_shards.push_back({id_, raw});
  return *raw;
}

ClientSeries& Registry::client(std::string_view service, std::string_view client,
                               std::string_view user) {
  auto& s = shard();
  return s.get(s.clients, Key3View(service, client, user));
}

Histogram& Registry::request_duration(std::string_view service) {
  auto& s = shard();
  return s.get(s.durations, service, std::span<const double>(kRequestDurationBuckets));
}

void Registry::chain_error(std::string_view chain, std::string_view node) {
  auto& s = shard();
  s.get(s.chain_errors, KeyView(chain, node)).add(1);
}

void Registry::node_connect(std::string_view chain, std::string_view node, double seconds) {
  auto& s = shard();
  s.get(s.connect, KeyView(chain, node), std::span<const double>(kNodeConnectBuckets))
      .observe(seconds);
}

void Registry::recorder_record(std::string_view recorder) {
  auto& s = shard();
  s.get(s.records, recorder).add(1);
}

void Registry::stream_refused(std::string_view service, std::string_view listener) {
  auto& s = shard();
  s.get(s.refused, KeyView(service, listener)).add(1);
}

void Registry::node_stream_refused(std::string_view chain, std::string_view node) {
  auto& s = shard();
  s.get(s.node_refused, KeyView(chain, node)).add(1);
}

void Registry::add_services(std::int64_t delta) {
  services_used_.store(true, std::memory_order_relaxed);
  services_.fetch_add(delta, std::memory_order_relaxed);
}

std::string Registry::exposition() const {
  struct ClientSum {
    std::uint64_t requests = 0, errors = 0, input = 0, output = 0;
    std::int64_t in_flight = 0;
  };
  // Keyed in label-name order (client < host < service < user; chain < host < node), so that
  // iteration order is the exposition's series order.
  std::map<Key3, ClientSum> clients;  // {client, service, user}
  const bool by_user = user_label();  // off: the users' series (after a reload) are summed
  std::map<std::string, HistogramSum> durations;
  std::map<Key, std::uint64_t> chain_errors;  // {chain, node}
  std::map<Key, HistogramSum> connect;
  std::map<std::string, std::uint64_t> records;
  std::map<Key, std::uint64_t> refused;       // {service, listener}
  std::map<Key, std::uint64_t> node_refused;  // {chain, node}
  {
    std::lock_guard lock(mu_);
    for (const auto& sp : shards_) {
      std::lock_guard shard_lock(sp->mu);
      for (const auto& [k, c] : sp->clients) {
        const auto& [service, client, user] = k;
        auto& sum = clients[{client, service, by_user ? user : std::string()}];
        sum.requests += c.requests.get();
        sum.errors += c.errors.get();
        sum.input += c.traffic.input.get();
        sum.output += c.traffic.output.get();
        sum.in_flight += c.in_flight.load(std::memory_order_relaxed);
      }
      for (const auto& [k, h] : sp->durations) durations[k].add(h);
      for (const auto& [k, c] : sp->chain_errors) chain_errors[k] += c.get();
      for (const auto& [k, h] : sp->connect) connect[k].add(h);
      for (const auto& [k, c] : sp->records) records[k] += c.get();
      for (const auto& [k, c] : sp->refused) refused[k] += c.get();
      for (const auto& [k, c] : sp->node_refused) node_refused[k] += c.get();
    }
  }
  std::string out;
  const std::string_view host = host_;
  auto chain_labels = [&](const Key& k) {
    return Labels{{"chain", k.first}, {"host", host}, {"node", k.second}};
  };
  // Without the user label every series has user "" and the label is not shown: the text is
  // GOST's, byte for byte.
  auto client_labels = [&](const Key3& k) {
    Labels l{{"client", std::get<0>(k)}, {"host", host}, {"service", std::get<1>(k)}};
    if (by_user) l.emplace_back("user", std::get<2>(k));
    return l;
  };

  // Families in name order.
  if (!chain_errors.empty()) {
    append_header(out, "gost_chain_errors_total", "Total chain errors", "counter");
    for (const auto& [k, v] : chain_errors)
      append_sample(out, "gost_chain_errors_total", chain_labels(k), static_cast<double>(v));
  }
  if (!connect.empty()) {
    const char* name = "gost_chain_node_connect_duration_seconds";
    append_header(out, name, "Distribution of chain node connect latencies", "histogram");
    for (const auto& [k, h] : connect)
      append_histogram(out, name, chain_labels(k), kNodeConnectBuckets, h);
  }
  if (!node_refused.empty()) {
    const char* name = "gost_chain_refused_streams_total";
    append_header(out, name, "Total streams a chain node refused before they carried data",
                  "counter");
    for (const auto& [k, v] : node_refused)
      append_sample(out, name, chain_labels(k), static_cast<double>(v));
  }
  if (!records.empty()) {
    append_header(out, "gost_recorder_records_total", "Total records written by recorder",
                  "counter");
    for (const auto& [k, v] : records)
      append_sample(out, "gost_recorder_records_total", {{"host", host}, {"recorder", k}},
                    static_cast<double>(v));
  }
  auto client_family = [&](const char* name, const char* help, const char* type, auto value,
                           bool skip_zero) {
    bool any = false;
    for (const auto& [k, c] : clients) {
      double v = value(c);
      if (skip_zero && v == 0) continue;
      if (!any) append_header(out, name, help, type);
      any = true;
      append_sample(out, name, client_labels(k), v);
    }
  };
  client_family(
      "gost_service_handler_errors_total", "Total service handler errors", "counter",
      [](const ClientSum& c) { return static_cast<double>(c.errors); }, true);
  if (!refused.empty()) {
    const char* name = "gost_service_refused_streams_total";
    append_header(out, name, "Total streams a listener refused before they carried data",
                  "counter");
    for (const auto& [k, v] : refused)
      append_sample(out, name, {{"host", host}, {"listener", k.second}, {"service", k.first}},
                    static_cast<double>(v));
  }
  bool any_duration = false;
  for (const auto& [service, h] : durations) {
    if (h.count == 0) continue;
    const char* name = "gost_service_request_duration_seconds";
    if (!any_duration) append_header(out, name, "Distribution of request latencies", "histogram");
    any_duration = true;
    append_histogram(out, name, {{"host", host}, {"service", service}}, kRequestDurationBuckets, h);
  }
  client_family(
      "gost_service_requests_in_flight", "Current in-flight requests", "gauge",
      [](const ClientSum& c) { return static_cast<double>(c.in_flight); }, false);
  client_family(
      "gost_service_requests_total", "Total number of requests", "counter",
      [](const ClientSum& c) { return static_cast<double>(c.requests); }, false);
  client_family(
      "gost_service_transfer_input_bytes_total", "Total service input data transfer size in bytes",
      "counter", [](const ClientSum& c) { return static_cast<double>(c.input); }, false);
  client_family(
      "gost_service_transfer_output_bytes_total",
      "Total service output data transfer size in bytes", "counter",
      [](const ClientSum& c) { return static_cast<double>(c.output); }, false);
  if (services_used_.load(std::memory_order_relaxed)) {
    append_header(out, "gost_services", "Current number of services", "gauge");
    append_sample(out, "gost_services", {{"host", host}},
                  static_cast<double>(services_.load(std::memory_order_relaxed)));
  }
  return out;
}

Registry* global() { return g_registry.get(); }

void enable(bool user_label) {
  if (!g_registry)
    g_registry = std::make_unique<Registry>(hostname(), user_label);
  else
    g_registry->set_user_label(user_label);
}

// ---- Request -----------------------------------------------------------------------------------

struct Request::Pending {
  std::string service;
  std::string client;
};

Request::Request(Registry* registry, std::string_view service, std::string_view remote_address)
    : registry_(registry) {
  if (!registry_) return;
  duration_ = &registry_->request_duration(service);
  start_ = std::chrono::steady_clock::now();
  if (registry_->user_label()) {
    sink_ = std::make_shared<Sink>();
    pending_ = std::make_unique<Pending>(Pending{std::string(service), client_ip(remote_address)});
    return;
  }
  join(service, client_ip(remote_address), {});
}

void Request::join(std::string_view service, std::string_view client, std::string_view user) {
  series_ = &registry_->client(service, client, user);
  series_->requests.add(1);
  add_signed(series_->in_flight, 1);
  if (!sink_) {
    // The series' own sink: no allocation and no reference count per connection.
    sink_ = SinkPtr(SinkPtr(), &series_->sink);
    return;
  }
  series_->traffic.input.add(sink_->held_.input.get());
  series_->traffic.output.add(sink_->held_.output.get());
  sink_->to_ = &series_->traffic;
}

void Request::set_user(std::string_view user) {
  if (!pending_) return;  // collection off, no user label, or joined already
  auto p = std::move(pending_);
  join(p->service, p->client, user);
}

Request::~Request() {
  if (!registry_) return;
  if (pending_) set_user({});  // the handler never named a user
  add_signed(series_->in_flight, -1);
  if (failed_) series_->errors.add(1);
  duration_->observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
}

// ---- formatting --------------------------------------------------------------------------------

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == 0) return std::signbit(v) ? "-0" : "0";
  // Shortest round-trip digits, then Go's %g layout for them: exponent form when the decimal
  // exponent is < -4 or >= 6 (the "shortest" precision rule of strconv.FormatFloat).
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));
  std::string out;
  if (sci.front() == '-') {
    out += '-';
    sci.remove_prefix(1);
  }
  auto e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits += c;
  int exp = 0;
  std::from_chars(sci.data() + e + 1 + (sci[e + 1] == '+' ? 1 : 0), sci.data() + sci.size(), exp);
  if (exp < -4 || exp >= 6) {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out += digits.substr(1);
    }
    out += fmt::format("e{}{:02d}", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    return out;
  }
  int dp = exp + 1;  // digits before the decimal point
  int nd = static_cast<int>(digits.size());
  if (dp <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-dp), '0');
    out += digits;
  } else if (dp >= nd) {
    out += digits;
    out.append(static_cast<std::size_t>(dp - nd), '0');
  } else {
    out += digits.substr(0, static_cast<std::size_t>(dp));
    out += '.';
    out += digits.substr(static_cast<std::size_t>(dp));
  }
  return out;
}

std::string client_ip(std::string_view remote_address) {
  if (auto hp = split_host_port(remote_address)) return hp->host;
  return std::string(remote_address);
}

}  // namespace gost::metrics
