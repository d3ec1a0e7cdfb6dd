// GOST's Prometheus exposition (docs/PROTOCOLS.md "observability: metrics"): golden text, Go's
// number format, per-thread shards summed at scrape time.
#include "core/metrics.hpp"

#include <fmt/format.h>
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

// GOST 3.2.6's golden scrape (docs/PROTOCOLS.md "observability: metrics"): svc-chain (chain-0 =
// node-a at a closed port) and svc-chain2 (chain-1 = node-ok, then node-dead); one proxied request
// from 127.0.0.1 to each, both answered 503; host "vm".
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

// metrics.userLabel (go-gost/x#35): the per-client families gain `user`, sorted last; the other
// families are unchanged. Series sort by client, service, then user ("" first).
TEST(MetricsExposition, GoldenScrapeWithUserLabel) {
  Registry r("vm", true);
  auto& alice = r.client("svc", "127.0.0.1", "alice");
  alice.requests.add(2);
  alice.traffic.input.add(131);
  alice.traffic.output.add(55);
  auto& anonymous = r.client("svc", "127.0.0.1", "");
  anonymous.requests.add(1);
  anonymous.errors.add(1);
  anonymous.traffic.input.add(70);
  anonymous.traffic.output.add(130);
  auto& bob = r.client("svc", "10.0.0.1", "bob");
  bob.requests.add(1);
  bob.in_flight.store(1);
  bob.traffic.input.add(3);
  bob.traffic.output.add(4);
  r.add_services(1);
  auto line = [](const char* family, const char* client, const char* user, const char* v) {
    return fmt::format("{}{{client=\"{}\",host=\"vm\",service=\"svc\",user=\"{}\"}} {}\n", family,
                       client, user, v);
  };
  auto three = [&](const char* family, const char* bob_v, const char* anon_v, const char* alice_v) {
    return line(family, "10.0.0.1", "bob", bob_v) + line(family, "127.0.0.1", "", anon_v) +
           line(family, "127.0.0.1", "alice", alice_v);
  };
  std::string want =
      "# HELP gost_service_handler_errors_total Total service handler errors\n"
      "# TYPE gost_service_handler_errors_total counter\n" +
      line("gost_service_handler_errors_total", "127.0.0.1", "", "1") +
      "# HELP gost_service_requests_in_flight Current in-flight requests\n"
      "# TYPE gost_service_requests_in_flight gauge\n" +
      three("gost_service_requests_in_flight", "1", "0", "0") +
      "# HELP gost_service_requests_total Total number of requests\n"
      "# TYPE gost_service_requests_total counter\n" +
      three("gost_service_requests_total", "1", "1", "2") +
      "# HELP gost_service_transfer_input_bytes_total Total service input data transfer size in "
      "bytes\n"
      "# TYPE gost_service_transfer_input_bytes_total counter\n" +
      three("gost_service_transfer_input_bytes_total", "3", "70", "131") +
      "# HELP gost_service_transfer_output_bytes_total Total service output data transfer size "
      "in bytes\n"
      "# TYPE gost_service_transfer_output_bytes_total counter\n" +
      three("gost_service_transfer_output_bytes_total", "4", "130", "55") +
      "# HELP gost_services Current number of services\n"
      "# TYPE gost_services gauge\n"
      "gost_services{host=\"vm\"} 1\n";
  EXPECT_EQ(r.exposition(), want);
}

// Without the label a request counts from its accept, as GOST's do; naming a user changes nothing.
TEST(MetricsRequest, WithoutUserLabelCountedAtOnce) {
  Registry r("h");
  {
    Request req(&r, "svc", "127.0.0.1:4000");
    ASSERT_TRUE(req.sink());
    req.sink()->input(10);
    req.sink()->output(20);
    req.set_user("alice");  // no label: nothing changes
    std::string text = r.exposition();
    EXPECT_NE(text.find("gost_service_requests_in_flight{client=\"127.0.0.1\",host=\"h\","
                        "service=\"svc\"} 1\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("gost_service_transfer_input_bytes_total{client=\"127.0.0.1\",host=\"h\","
                        "service=\"svc\"} 10\n"),
              std::string::npos)
        << text;
    EXPECT_EQ(text.find("user="), std::string::npos) << text;
  }
  std::string text = r.exposition();
  EXPECT_NE(text.find("gost_service_requests_in_flight{client=\"127.0.0.1\",host=\"h\","
                      "service=\"svc\"} 0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("gost_service_request_duration_seconds_count{host=\"h\",service=\"svc\"} 1\n"),
      std::string::npos)
      << text;
}

TEST(MetricsRequest, OffWithoutRegistry) {
  Request req(nullptr, "svc", "127.0.0.1:4000");
  EXPECT_FALSE(req.sink());
  EXPECT_EQ(req.traffic(), nullptr);
  req.set_user("x");
  req.fail();
}

// With the label, a request joins {service, client, user} when its handler names the user: its
// handshake bytes are added then, later bytes go straight to the series, and a counter never
// moves between series.
TEST(MetricsRequest, UserLabelJoinsWhenAuthenticated) {
  Registry r("h", true);
  auto has = [&](const std::string& sample) {
    std::string text = r.exposition();
    return text.find(sample) != std::string::npos;
  };
  const std::string alice = "{client=\"10.1.2.3\",host=\"h\",service=\"svc\",user=\"alice\"} ";
  const std::string nobody = "{client=\"10.1.2.3\",host=\"h\",service=\"svc\",user=\"\"} ";
  metrics::SinkPtr late;
  {
    Request req(&r, "svc", "10.1.2.3:999");
    ASSERT_TRUE(req.sink());
    req.sink()->input(100);  // the request head, before authentication
    req.sink()->output(7);
    EXPECT_EQ(r.exposition().find("gost_service_requests_total"), std::string::npos)
        << "not counted before the user is known";
    req.set_user("alice");
    EXPECT_TRUE(has("gost_service_requests_total" + alice + "1\n"));
    EXPECT_TRUE(has("gost_service_requests_in_flight" + alice + "1\n"));
    EXPECT_TRUE(has("gost_service_transfer_input_bytes_total" + alice + "100\n"));
    EXPECT_TRUE(has("gost_service_transfer_output_bytes_total" + alice + "7\n"));
    req.sink()->input(1000);  // the tunnel: visible while it runs
    EXPECT_TRUE(has("gost_service_transfer_input_bytes_total" + alice + "1100\n"));
    EXPECT_EQ(req.traffic(), &r.client("svc", "10.1.2.3", "alice").traffic);
    req.set_user("bob");  // the first call wins
    req.fail();
    late = req.sink();
  }
  EXPECT_TRUE(has("gost_service_requests_in_flight" + alice + "0\n"));
  EXPECT_TRUE(has("gost_service_handler_errors_total" + alice + "1\n"));
  EXPECT_EQ(r.exposition().find("bob"), std::string::npos);
  late->output(3);  // a stream that outlived its request (a session's last frame)
  EXPECT_TRUE(has("gost_service_transfer_output_bytes_total" + alice + "10\n"));

  // Never authenticated (e.g. closed during the handshake): joins user "" at its end.
  {
    Request req(&r, "svc", "10.1.2.3:1000");
    req.sink()->input(5);
    req.fail();
  }
  EXPECT_TRUE(has("gost_service_requests_total" + nobody + "1\n"));
  EXPECT_TRUE(has("gost_service_requests_in_flight" + nobody + "0\n"));
  EXPECT_TRUE(has("gost_service_handler_errors_total" + nobody + "1\n"));
  EXPECT_TRUE(has("gost_service_transfer_input_bytes_total" + nobody + "5\n"));
  EXPECT_TRUE(has("gost_service_request_duration_seconds_count{host=\"h\",service=\"svc\"} 2\n"));
}

// A reload turning the label off: the users' series are summed, never shown twice with the same
// labels; turning it on again shows them apart.
TEST(MetricsExposition, UserLabelTurnedOffSumsUsers) {
  Registry r("h", true);
  r.client("svc", "127.0.0.1", "alice").requests.add(2);
  r.client("svc", "127.0.0.1", "").requests.add(1);
  r.set_user_label(false);
  EXPECT_EQ(r.exposition(),
            "# HELP gost_service_requests_in_flight Current in-flight requests\n"
            "# TYPE gost_service_requests_in_flight gauge\n"
            "gost_service_requests_in_flight{client=\"127.0.0.1\",host=\"h\",service=\"svc\"} 0\n"
            "# HELP gost_service_requests_total Total number of requests\n"
            "# TYPE gost_service_requests_total counter\n"
            "gost_service_requests_total{client=\"127.0.0.1\",host=\"h\",service=\"svc\"} 3\n"
            "# HELP gost_service_transfer_input_bytes_total Total service input data transfer size "
            "in bytes\n"
            "# TYPE gost_service_transfer_input_bytes_total counter\n"
            "gost_service_transfer_input_bytes_total{client=\"127.0.0.1\",host=\"h\",service="
            "\"svc\"} 0\n"
            "# HELP gost_service_transfer_output_bytes_total Total service output data transfer "
            "size in bytes\n"
            "# TYPE gost_service_transfer_output_bytes_total counter\n"
            "gost_service_transfer_output_bytes_total{client=\"127.0.0.1\",host=\"h\",service="
            "\"svc\"} 0\n");
  r.set_user_label(true);
  EXPECT_NE(r.exposition().find("gost_service_requests_total{client=\"127.0.0.1\",host=\"h\","
                                "service=\"svc\",user=\"alice\"} 2\n"),
            std::string::npos);
}

TEST(MetricsConfig, UserLabelFlagParsedAndPrinted) {
  auto m = config::parse_metrics_flag("127.0.0.1:9000?userLabel=true");
  EXPECT_EQ(m.addr, "127.0.0.1:9000");
  EXPECT_TRUE(m.userLabel);
  EXPECT_FALSE(config::parse_metrics_flag(":9000").userLabel);
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

// Not in GOST (issue 16): the streams a multiplexing listener still refused, per service and
// listener type.
TEST(MetricsExposition, RefusedStreams) {
  Registry r("h");
  r.stream_refused("svc", "pht");
  r.stream_refused("svc", "h2");
  r.stream_refused("svc", "h2");
  EXPECT_EQ(r.exposition(),
            "# HELP gost_service_refused_streams_total Total streams a listener refused before "
            "they carried data\n"
            "# TYPE gost_service_refused_streams_total counter\n"
            "gost_service_refused_streams_total{host=\"h\",listener=\"h2\",service=\"svc\"} 2\n"
            "gost_service_refused_streams_total{host=\"h\",listener=\"pht\",service=\"svc\"} 1\n");
}

// Not in GOST (issue 16): the streams a node's server refused to our dialer, per chain and node;
// between the other chain families.
TEST(MetricsExposition, NodeRefusedStreams) {
  Registry r("h");
  r.node_stream_refused("chain-0", "node-1");
  r.node_stream_refused("chain-0", "node-0");
  r.node_stream_refused("chain-0", "node-1");
  r.chain_error("chain-0", "node-0");
  r.recorder_record("rec");
  EXPECT_EQ(r.exposition(),
            "# HELP gost_chain_errors_total Total chain errors\n"
            "# TYPE gost_chain_errors_total counter\n"
            "gost_chain_errors_total{chain=\"chain-0\",host=\"h\",node=\"node-0\"} 1\n"
            "# HELP gost_chain_refused_streams_total Total streams a chain node refused before "
            "they carried data\n"
            "# TYPE gost_chain_refused_streams_total counter\n"
            "gost_chain_refused_streams_total{chain=\"chain-0\",host=\"h\",node=\"node-0\"} 1\n"
            "gost_chain_refused_streams_total{chain=\"chain-0\",host=\"h\",node=\"node-1\"} 2\n"
            "# HELP gost_recorder_records_total Total records written by recorder\n"
            "# TYPE gost_recorder_records_total counter\n"
            "gost_recorder_records_total{host=\"h\",recorder=\"rec\"} 1\n");
}
