// GOST's Prometheus exposition (spec/observability.md §1.3–§1.5): golden text, Go's number
// format, per-thread shards summed at scrape time.
#include "core/metrics.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "config/printer.hpp"
#include "config/url_parser.hpp"

using namespace gost;
using namespace gost::metrics;

namespace {

// The buckets lines of one histogram series, cumulative counts given per bound (+Inf last).
std::string buckets(const std::string& name, const std::string& labels,
                    const std::vector<std::string>& les, const std::vector<int>& counts) {
  std::string out;
  for (std::size_t i = 0; i < les.size(); ++i)
    out +=
        name + "_bucket{" + labels + ",le=\"" + les[i] + "\"} " + std::to_string(counts[i]) + "\n";
  return out;
}

const std::vector<std::string> kConnectLes = {"0.01", "0.05", "0.1", "0.25", "0.5", "1",  "1.5",
                                              "2",    "5",    "10",  "15",   "30",  "60", "+Inf"};
const std::vector<std::string> kDurationLes = {"0.005", "0.01", "0.025", "0.05", "0.1",
                                               "0.25",  "0.5",  "1",     "2.5",  "5",
                                               "10",    "15",   "30",    "60",   "+Inf"};

}  // namespace

TEST(MetricsFormat, GoFormatFloatShortest) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(1), "1");
  EXPECT_EQ(format_value(131), "131");
  EXPECT_EQ(format_value(55), "55");
  EXPECT_EQ(format_value(0.00310564), "0.00310564");
  EXPECT_EQ(format_value(0.015239562999999998), "0.015239562999999998");
  EXPECT_EQ(format_value(0.000281793), "0.000281793");
  EXPECT_EQ(format_value(1.5e6), "1.5e+06");
  EXPECT_EQ(format_value(1e6), "1e+06");
  EXPECT_EQ(format_value(999999), "999999");
  EXPECT_EQ(format_value(100000), "100000");
  EXPECT_EQ(format_value(12345678), "1.2345678e+07");
  EXPECT_EQ(format_value(8388608), "8.388608e+06");
  EXPECT_EQ(format_value(0.0001), "0.0001");
  EXPECT_EQ(format_value(0.00001), "1e-05");
  EXPECT_EQ(format_value(2.5), "2.5");
  EXPECT_EQ(format_value(-3), "-3");
  EXPECT_EQ(format_value(1e21), "1e+21");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
}

TEST(MetricsFormat, ClientIpWithoutPort) {
  EXPECT_EQ(client_ip("127.0.0.1:5678"), "127.0.0.1");
  EXPECT_EQ(client_ip("[::1]:80"), "::1");
}

// spec §1.5: svc-chain (chain-0 = node-a at a closed port) and svc-chain2 (chain-1 = node-ok, then
// node-dead); one proxied request from 127.0.0.1 to each, both answered 503; host "vm".
TEST(MetricsExposition, GoldenScrape) {
  Registry r("vm");
  r.chain_error("chain-0", "node-a");
  r.node_connect("chain-1", "node-ok", 0.000281793);
  r.chain_error("chain-1", "node-ok");
  auto request = [&](const char* service, double seconds, int in, int out) {
    auto& c = r.client(service, "127.0.0.1");
    c.requests.add(1);
    c.errors.add(1);
    c.traffic.input.add(in);
    c.traffic.output.add(out);
    r.request_duration(service).observe(seconds);
  };
  request("svc-chain", 0.00310564, 131, 55);
  request("svc-chain2", 0.015239562999999998, 131, 55);
  r.add_services(2);

  const std::string chain1 = "chain=\"chain-1\",host=\"vm\",node=\"node-ok\"";
  const std::string svc1 = "host=\"vm\",service=\"svc-chain\"";
  const std::string svc2 = "host=\"vm\",service=\"svc-chain2\"";
  std::string want =
      "# HELP gost_chain_errors_total Total chain errors\n"
      "# TYPE gost_chain_errors_total counter\n"
      "gost_chain_errors_total{chain=\"chain-0\",host=\"vm\",node=\"node-a\"} 1\n"
      "gost_chain_errors_total{chain=\"chain-1\",host=\"vm\",node=\"node-ok\"} 1\n"
      "# HELP gost_chain_node_connect_duration_seconds Distribution of chain node connect "
      "latencies\n"
      "# TYPE gost_chain_node_connect_duration_seconds histogram\n" +
      buckets("gost_chain_node_connect_duration_seconds", chain1, kConnectLes,
              std::vector<int>(14, 1)) +
      "gost_chain_node_connect_duration_seconds_sum{" + chain1 + "} 0.000281793\n" +
      "gost_chain_node_connect_duration_seconds_count{" + chain1 + "} 1\n" +
      "# HELP gost_service_handler_errors_total Total service handler errors\n"
      "# TYPE gost_service_handler_errors_total counter\n"
      "gost_service_handler_errors_total{client=\"127.0.0.1\",host=\"vm\",service=\"svc-chain\"} "
      "1\n"
      "gost_service_handler_errors_total{client=\"127.0.0.1\",host=\"vm\",service=\"svc-chain2\"} "
      "1\n"
      "# HELP gost_service_request_duration_seconds Distribution of request latencies\n"
      "# TYPE gost_service_request_duration_seconds histogram\n" +
      buckets("gost_service_request_duration_seconds", svc1, kDurationLes,
              std::vector<int>(15, 1)) +
      "gost_service_request_duration_seconds_sum{" + svc1 + "} 0.00310564\n" +
      "gost_service_request_duration_seconds_count{" + svc1 + "} 1\n" +
      buckets("gost_service_request_duration_seconds", svc2, kDurationLes,
              {0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}) +
      "gost_service_request_duration_seconds_sum{" + svc2 + "} 0.015239562999999998\n" +
      "gost_service_request_duration_seconds_count{" + svc2 + "} 1\n" +
      "# HELP gost_service_requests_in_flight Current in-flight requests\n"
      "# TYPE gost_service_requests_in_flight gauge\n"
      "gost_service_requests_in_flight{client=\"127.0.0.1\",host=\"vm\",service=\"svc-chain\"} 0\n"
      "gost_service_requests_in_flight{client=\"127.0.0.1\",host=\"vm\",service=\"svc-chain2\"} "
      "0\n"
      "# HELP gost_service_requests_total Total number of requests\n"
      "# TYPE gost_service_requests_total counter\n"
      "gost_service_requests_total{client=\"127.0.0.1\",host=\"vm\",service=\"svc-chain\"} 1\n"
      "gost_service_requests_total{client=\"127.0.0.1\",host=\"vm\",service=\"svc-chain2\"} 1\n"
      "# HELP gost_service_transfer_input_bytes_total Total service input data transfer size in "
      "bytes\n"
      "# TYPE gost_service_transfer_input_bytes_total counter\n"
      "gost_service_transfer_input_bytes_total{client=\"127.0.0.1\",host=\"vm\",service=\"svc-"
      "chain\"} 131\n"
      "gost_service_transfer_input_bytes_total{client=\"127.0.0.1\",host=\"vm\",service=\"svc-"
      "chain2\"} 131\n"
      "# HELP gost_service_transfer_output_bytes_total Total service output data transfer size "
      "in bytes\n"
      "# TYPE gost_service_transfer_output_bytes_total counter\n"
      "gost_service_transfer_output_bytes_total{client=\"127.0.0.1\",host=\"vm\",service=\"svc-"
      "chain\"} 55\n"
      "gost_service_transfer_output_bytes_total{client=\"127.0.0.1\",host=\"vm\",service=\"svc-"
      "chain2\"} 55\n"
      "# HELP gost_services Current number of services\n"
      "# TYPE gost_services gauge\n"
      "gost_services{host=\"vm\"} 2\n";
  EXPECT_EQ(r.exposition(), want);
}

TEST(MetricsExposition, EmptyUntilUsed) {
  Registry r("h");
  EXPECT_EQ(r.exposition(), "");
}

// Series sort by label values in label-name order: client before service.
TEST(MetricsExposition, SeriesSortedByClientThenService) {
  Registry r("h");
  r.client("b", "10.0.0.2").requests.add(1);
  r.client("a", "10.0.0.9").requests.add(2);
  r.client("c", "10.0.0.10").requests.add(3);
  std::string text = r.exposition();
  auto p10 = text.find("gost_service_requests_total{client=\"10.0.0.10\"");
  auto p2 = text.find("gost_service_requests_total{client=\"10.0.0.2\"");
  auto p9 = text.find("gost_service_requests_total{client=\"10.0.0.9\"");
  ASSERT_NE(p10, std::string::npos);
  EXPECT_LT(p10, p2);
  EXPECT_LT(p2, p9);
}

TEST(MetricsExposition, LabelValuesEscaped) {
  Registry r("h");
  r.client("a\"b\\c\nd", "1.2.3.4").requests.add(1);
  EXPECT_NE(r.exposition().find("service=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos);
}

// Each thread writes its own shard; a scrape sums them.
TEST(MetricsExposition, ShardsSummed) {
  Registry r("h");
  auto work = [&] {
    auto& c = r.client("svc", "127.0.0.1");
    for (int i = 0; i < 1000; ++i) c.traffic.input.add(3);
    c.requests.add(1);
    c.in_flight.store(c.in_flight.load() + 1);
  };
  std::thread t1(work), t2(work);
  t1.join();
  t2.join();
  work();
  std::string text = r.exposition();
  EXPECT_NE(text.find("gost_service_transfer_input_bytes_total{client=\"127.0.0.1\",host=\"h\","
                      "service=\"svc\"} 9000\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("gost_service_requests_total{client=\"127.0.0.1\",host=\"h\",service="
                      "\"svc\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("gost_service_requests_in_flight{client=\"127.0.0.1\",host=\"h\",service="
                      "\"svc\"} 3\n"),
            std::string::npos);
}

TEST(MetricsConfig, FlagParsedAndPrinted) {
  auto m = config::parse_metrics_flag("user:pass@127.0.0.1:9000?path=/m");
  EXPECT_EQ(m.addr, "127.0.0.1:9000");
  EXPECT_EQ(m.path, "/m");
  ASSERT_TRUE(m.auth);
  EXPECT_EQ(m.auth->username, "user");
  EXPECT_EQ(m.auth->password, "pass");
  auto bare = config::parse_metrics_flag(":9000");
  EXPECT_EQ(bare.addr, ":9000");
  EXPECT_EQ(bare.path, "");
  EXPECT_FALSE(bare.auth);
  config::Config cfg;
  cfg.metrics = m;
  EXPECT_EQ(config::to_yaml(cfg),
            "services: []\nmetrics:\n  addr: 127.0.0.1:9000\n  path: /m\n  auth:\n    username: "
            "user\n    password: pass\n");
}
