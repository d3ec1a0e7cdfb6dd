// Model helpers (Go durations, metadata conversions, merge) and the -O emitters' scalar rules.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "config/model.hpp"
#include "config/printer.hpp"
#include "config/url_parser.hpp"

namespace gost::config {
namespace {

using namespace std::chrono_literals;

TEST(ConfigModel, ParseGoDuration) {
  EXPECT_EQ(parse_go_duration("1m30s"), 90s);
  EXPECT_EQ(parse_go_duration("300ms"), 300ms);
  EXPECT_EQ(parse_go_duration("1.5s"), 1500ms);
  EXPECT_EQ(parse_go_duration("-1.5h"), -90min);
  EXPECT_EQ(parse_go_duration("+2h"), 2h);
  EXPECT_EQ(parse_go_duration(".5s"), 500ms);
  EXPECT_EQ(parse_go_duration("1.s"), 1s);
  EXPECT_EQ(parse_go_duration("1h2m3.5s"), 1h + 2min + 3500ms);
  EXPECT_EQ(parse_go_duration("10us"), 10us);
  EXPECT_EQ(parse_go_duration("10\xC2\xB5s"), 10us);
  EXPECT_EQ(parse_go_duration("7ns"), 7ns);
  EXPECT_EQ(parse_go_duration("0"), 0ns);
  EXPECT_EQ(parse_go_duration("2562047h47m16.854775807s"),
            std::chrono::nanoseconds(9223372036854775807));
  for (const char* bad : {"", "1", "s", "1x", "1.5", ".s", "1s ", " 1s", "-", "9999999999h"}) {
    EXPECT_FALSE(parse_go_duration(bad)) << bad;
  }
}

TEST(ConfigModel, FormatGoDuration) {
  EXPECT_EQ(format_go_duration(60s), "1m0s");
  EXPECT_EQ(format_go_duration(30s), "30s");
  EXPECT_EQ(format_go_duration(1500ms), "1.5s");
  EXPECT_EQ(format_go_duration(300ms), "300ms");
  EXPECT_EQ(format_go_duration(0s), "0s");
  EXPECT_EQ(format_go_duration(1ns), "1ns");
  EXPECT_EQ(format_go_duration(1500ns), "1.5\xC2\xB5s");
  EXPECT_EQ(format_go_duration(1h + 30min), "1h30m0s");
  EXPECT_EQ(format_go_duration(3h), "3h0m0s");
  EXPECT_EQ(format_go_duration(-2s), "-2s");
  EXPECT_EQ(format_go_duration(90s + 1ns), "1m30.000000001s");
  EXPECT_EQ(format_go_duration(std::chrono::nanoseconds(INT64_MIN)), "-2562047h47m16.854775808s");
}

TEST(ConfigModel, ValueAsString) {
  EXPECT_EQ(Value("x").as_string(), "x");
  EXPECT_EQ(Value(true).as_string(), "true");
  EXPECT_EQ(Value(10).as_string(), "10");
  EXPECT_EQ(Value(1.5).as_string(), "1.5");
  EXPECT_EQ(Value(1e21).as_string(), "1000000000000000000000");
  EXPECT_EQ(Value(ValueList{Value("a")}).as_string(), "");
  EXPECT_EQ(Value().as_string(), "");
}

TEST(ConfigModel, MetadataLookupIsCaseInsensitive) {
  Metadata md;
  md.set("readTimeout", "5s");
  md.set("Udp", true);
  EXPECT_TRUE(md.contains("READTIMEOUT"));
  EXPECT_EQ(md.get_duration("readtimeout"), 5s);
  md.set("READTIMEOUT", "7s");
  EXPECT_EQ(md.entries.size(), 2u);
  EXPECT_EQ(md.entries[0].first, "READTIMEOUT");
  EXPECT_EQ(md.get_duration("readTimeout"), 7s);
  EXPECT_TRUE(md.erase("udp"));
  EXPECT_FALSE(md.erase("udp"));
  EXPECT_EQ(md.entries.size(), 1u);
}

TEST(ConfigModel, MetadataConversions) {
  Metadata md;
  md.set("b1", "TRUE");
  md.set("b2", "0");
  md.set("b3", 2);
  md.set("b4", "yes");
  md.set("i1", "42");
  md.set("i2", true);
  md.set("i3", 3.0);
  md.set("i4", "4x");
  md.set("d1", "30");
  md.set("d2", 30);
  md.set("d3", "1m");
  md.set("d4", "abc");
  md.set("d5", 1.5);
  md.set("s1", 10);
  md.set("l1", "a, b,,c");
  md.set("l2", ValueList{Value("x"), Value(1)});
  EXPECT_EQ(md.get_bool("b1"), true);
  EXPECT_EQ(md.get_bool("b2"), false);
  EXPECT_EQ(md.get_bool("b3"), true);
  EXPECT_EQ(md.get_bool("b4"), std::nullopt);
  EXPECT_EQ(md.get_bool("missing"), std::nullopt);
  EXPECT_EQ(md.get_int("i1"), 42);
  EXPECT_EQ(md.get_int("i2"), 1);
  EXPECT_EQ(md.get_int("i3"), 3);
  EXPECT_EQ(md.get_int("i4"), std::nullopt);
  EXPECT_EQ(md.get_duration("d1"), 30s);
  EXPECT_EQ(md.get_duration("d2"), 30s);
  EXPECT_EQ(md.get_duration("d3"), 60s);
  EXPECT_EQ(md.get_duration("d4"), std::nullopt);
  EXPECT_EQ(md.get_duration("d5"), 1500ms);
  EXPECT_EQ(md.get_string("s1"), "10");
  EXPECT_EQ(md.get_string("l2"), std::nullopt);
  EXPECT_EQ(md.get_strings("l1"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(md.get_strings("l2"), (std::vector<std::string>{"x", "1"}));
}

TEST(ConfigModel, MergeAppendsListsAndReplacesSingles) {
  Config a, b;
  a.services.emplace_back().name = "a";
  a.log = Log{.output = "stderr", .level = "info", .format = ""};
  b.services.emplace_back().name = "b";
  b.chains.emplace_back().name = "c";
  b.tls = TLS{};
  a.merge(b);
  ASSERT_EQ(a.services.size(), 2u);
  EXPECT_EQ(a.services[1].name, "b");
  EXPECT_EQ(a.chains.size(), 1u);
  EXPECT_TRUE(a.tls);
  ASSERT_TRUE(a.log);
  EXPECT_EQ(a.log->level, "info");
  Config c;
  c.log = Log{.output = "", .level = "debug", .format = ""};
  a.merge(c);
  EXPECT_EQ(a.log->level, "debug");
}

// ---- emitter scalar rules ---------------------------------------------------------------------

Config with_metadata(Metadata md) {
  Config cfg;
  Service& s = cfg.services.emplace_back();
  s.name = "s";
  s.handler.type = "auto";
  s.listener.type = "tcp";
  s.metadata = std::move(md);
  return cfg;
}

std::string yaml_value(const Value& v) {
  Metadata md;
  md.set("k", v);
  const std::string out = to_yaml(with_metadata(md));
  const std::string marker = "    metadata:\n      k:";
  const auto pos = out.find(marker);
  return pos == std::string::npos ? out : out.substr(pos + marker.size());
}

TEST(ConfigPrinter, YamlStringQuoting) {
  const std::pair<const char*, const char*> cases[] = {
      {"plain", " plain\n"},
      {":8080", " :8080\n"},
      {"a:b", " a:b\n"},
      {"-a", " -a\n"},
      {"a b!", " a b!\n"},
      {"/authorize", " /authorize\n"},
      {"true", " \"true\"\n"},
      {"False", " \"False\"\n"},
      {"yes", " \"yes\"\n"},
      {"off", " \"off\"\n"},
      {"Y", " \"Y\"\n"},
      {"10", " \"10\"\n"},
      {"-3", " \"-3\"\n"},
      {"0x1F", " \"0x1F\"\n"},
      {"1_000", " \"1_000\"\n"},
      {"1.5", " \"1.5\"\n"},
      {".5", " \".5\"\n"},
      {"1e3", " \"1e3\"\n"},
      {".inf", " \".inf\"\n"},
      {"", " \"\"\n"},
      {"null", " \"null\"\n"},
      {"~", " \"~\"\n"},
      {"2024-01-02", " \"2024-01-02\"\n"},
      {"1:20", " \"1:20\"\n"},
      {"*.local", " '*.local'\n"},
      {"&a", " '&a'\n"},
      {"!x", " '!x'\n"},
      {"[a", " '[a'\n"},
      {"{a", " '{a'\n"},
      {"#x", " '#x'\n"},
      {"'a", " '''a'\n"},
      {"\"a", " '\"a'\n"},
      {"%x", " '%x'\n"},
      {"@x", " '@x'\n"},
      {"`x", " '`x'\n"},
      {"- a", " '- a'\n"},
      {"-", " '-'\n"},
      {"a: b", " 'a: b'\n"},
      {"a #b", " 'a #b'\n"},
      {"a#b", " a#b\n"},
      {" a", " ' a'\n"},
      {"a ", " 'a '\n"},
      {"---", " '---'\n"},
      {"a\tb", " \"a\\tb\"\n"},
      {"caf\xC3\xA9", " caf\xC3\xA9\n"},
      {"a\x01", " \"a\\x01\"\n"},
      {"a\nb", " |-\n        a\n        b\n"},
      {"a\n", " |\n        a\n"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(yaml_value(Value(in)), want) << in;
}

TEST(ConfigPrinter, YamlNonStringScalars) {
  EXPECT_EQ(yaml_value(true), " true\n");
  EXPECT_EQ(yaml_value(42), " 42\n");
  EXPECT_EQ(yaml_value(1.5), " 1.5\n");
  EXPECT_EQ(yaml_value(1.0), " 1\n");
  EXPECT_EQ(yaml_value(1e6), " 1e+06\n");
  EXPECT_EQ(yaml_value(100000.0), " 100000\n");
  EXPECT_EQ(yaml_value(0.00001), " 1e-05\n");
  EXPECT_EQ(yaml_value(Value()), " null\n");
  EXPECT_EQ(yaml_value(ValueList{}), " []\n");
  EXPECT_EQ(yaml_value(ValueMap{}), " {}\n");
  EXPECT_EQ(yaml_value(ValueList{Value("a"), Value(ValueList{Value(1), Value(2)})}),
            "\n        - a\n        - - 1\n          - 2\n");
  EXPECT_EQ(yaml_value(ValueList{Value(ValueMap{{"b", Value(1)}, {"a", Value("x")}})}),
            "\n        - a: x\n          b: 1\n");
}

TEST(ConfigPrinter, MetadataKeyOrder) {
  Metadata md;
  for (const char* k : {"a10", "B", "1", "a9", "_x"}) md.entries.emplace_back(k, Value(1));
  md.entries.emplace_back("b", Value(2));  // set() would merge it with "B"
  const std::string yaml = to_yaml(with_metadata(md));
  EXPECT_NE(
      yaml.find("      _x: 1\n      \"1\": 1\n      B: 1\n      a9: 1\n      a10: 1\n      b: 2\n"),
      std::string::npos)
      << yaml;
  const std::string json = to_json(with_metadata(md));
  EXPECT_NE(json.find(R"("1": 1,
        "B": 1,
        "_x": 1,
        "a10": 1,
        "a9": 1,
        "b": 2)"),
            std::string::npos)
      << json;
}

TEST(ConfigPrinter, JsonScalars) {
  Metadata md;
  md.set("esc", "<a&b>\"\\\n\t\x01\b");
  md.set("f1", 1e6);
  md.set("f2", 1e21);
  md.set("f3", 1e-7);
  md.set("f4", 1.5);
  md.set("l", ValueList{});
  md.set("m", ValueMap{});
  md.set("n", Value());
  const std::string json = to_json(with_metadata(md));
  EXPECT_NE(json.find(R"("metadata": {
        "esc": "\u003ca\u0026b\u003e\"\\\n\t\u0001\b",
        "f1": 1000000,
        "f2": 1e+21,
        "f3": 1e-7,
        "f4": 1.5,
        "l": [],
        "m": {},
        "n": null
      })"),
            std::string::npos)
      << json;
}

TEST(ConfigPrinter, EmptyForwarderNodesAndTlsBlock) {
  Config cfg;
  Service& s = cfg.services.emplace_back();
  s.name = "s";
  s.handler.type = "tcp";
  s.listener.type = "tcp";
  s.listener.tls = TLS{};
  s.forwarder.emplace().hop = "h";
  EXPECT_EQ(to_yaml(cfg), R"(services:
  - name: s
    handler:
      type: tcp
    listener:
      type: tcp
      tls: {}
    forwarder:
      hop: h
      nodes: []
)");
  EXPECT_NE(to_json(cfg).find(R"("forwarder": {
        "hop": "h",
        "nodes": null
      })"),
            std::string::npos);
}

}  // namespace
}  // namespace gost::config

namespace gost::config {
namespace {

TEST(ConfigPrinter, LogSectionComesLast) {
  Config cfg = parse_command_line({":8080"}, {});
  cfg.log = Log{.output = "", .level = "debug", .format = ""};
  EXPECT_EQ(to_yaml(cfg), R"(services:
  - name: service-0
    addr: :8080
    handler:
      type: auto
    listener:
      type: tcp
log:
  level: debug
)");
}

}  // namespace
}  // namespace gost::config
