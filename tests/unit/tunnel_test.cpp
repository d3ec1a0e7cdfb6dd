// The tunnel protocol's codec bits (docs/PROTOCOLS.md "tunnel"): the tunnel-id feature, the
// messages of go-gost/x connector/tunnel and handler/tunnel, GOST's ingress matching, and the
// smux version-2 frames.
#include <gtest/gtest.h>

#include <cctype>

#include "policy/ingress.hpp"
#include "proto/relay.hpp"
#include "proto/smux.hpp"

namespace rp = gost::proto::relay;
namespace smux = gost::proto::smux;
using gost::policy::Ingress;

namespace {

std::string hex(std::string_view h) {
  std::string out;
  int hi = -1;
  for (char c : h) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) continue;
    int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10);
    if (hi < 0) {
      hi = v;
    } else {
      out += static_cast<char>(hi * 16 + v);
      hi = -1;
    }
  }
  return out;
}

constexpr const char* kTid = "893787fd-fcd2-46a0-8dc4-f9f8a1f1b0c9";

TEST(TunnelId, ParsesUuidForms) {
  auto id = rp::TunnelId::parse(kTid);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->to_string(), kTid);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(id->bytes.data()), 20),
            hex("893787fdfcd246a08dc4f9f8a1f1b0c9 00 0000 00"));
  EXPECT_EQ(rp::TunnelId::parse("893787FDFCD246A08DC4F9F8A1F1B0C9")->to_string(), kTid);
  EXPECT_EQ(rp::TunnelId::parse("{893787fd-fcd2-46a0-8dc4-f9f8a1f1b0c9}")->to_string(), kTid);
  EXPECT_EQ(rp::TunnelId::parse("urn:uuid:893787fd-fcd2-46a0-8dc4-f9f8a1f1b0c9")->to_string(),
            kTid);
  EXPECT_FALSE(rp::TunnelId::parse("not-a-uuid"));
  EXPECT_FALSE(rp::TunnelId::parse("893787fd-fcd2-46a0-8dc4-f9f8a1f1b0cz"));
  EXPECT_FALSE(rp::TunnelId::parse("893787fdxfcd2-46a0-8dc4-f9f8a1f1b0c9"));
  EXPECT_FALSE(rp::TunnelId::parse(""));
  EXPECT_TRUE(rp::TunnelId::parse("00000000-0000-0000-0000-000000000000")->is_zero());
}

TEST(TunnelId, FlagsAndWeight) {
  auto id = *rp::TunnelId::parse(kTid);
  EXPECT_FALSE(id.is_private());
  EXPECT_FALSE(id.is_udp());
  auto other = id;
  other.set_flag(rp::TunnelId::kFlagPrivate);
  other.set_weight(9);
  EXPECT_TRUE(other.is_private());
  EXPECT_EQ(other.weight(), 9);
  EXPECT_TRUE(other.same_id(id));  // flags and weight are not part of the ID
  EXPECT_FALSE(other == id);
  other.set_flag(rp::TunnelId::kFlagUdp);
  EXPECT_TRUE(other.is_udp());
}

// The connector's BIND (go-gost/x connector/tunnel bind.go): source, bind address, tunnel ID with
// the weight in its last byte.
TEST(TunnelCodec, ConnectorBindRequest) {
  auto id = *rp::TunnelId::parse(kTid);
  id.set_weight(3);
  rp::FeatureWriter w;
  w.address("127.0.0.1:40000").address(":0").tunnel(id);
  auto bytes = rp::encode_with(rp::kCmdBind, w);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(*bytes, hex("01 02 00 28"
                        "02 00 07 01 7f000001 9c40"
                        "02 00 04 03 00 0000"
                        "03 00 14 893787fdfcd246a08dc4f9f8a1f1b0c9 00 0000 03"));
  auto f = rp::parse_features(std::string_view(*bytes).substr(4));
  ASSERT_TRUE(f);
  ASSERT_EQ(f->addresses.size(), 2u);
  EXPECT_EQ(f->addresses[0].to_string(), "127.0.0.1:40000");
  EXPECT_EQ(f->addresses[1].to_string(), ":0");
  ASSERT_TRUE(f->tunnel);
  EXPECT_EQ(f->tunnel->to_string(), kTid);
  EXPECT_EQ(f->tunnel->weight(), 3);
}

TEST(TunnelCodec, WithAuthAndUdpConnectorResponse) {
  auto id = *rp::TunnelId::parse(kTid);
  rp::FeatureWriter w;
  w.auth({"user", "pass"}).address("1.2.3.4:5").address("example.com:80").tunnel(id);
  auto bytes = rp::encode_with(rp::kCmdConnect, w);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(bytes->substr(0, 4), hex("01 01 00 40"));
  EXPECT_EQ(bytes->substr(4, 13), hex("01 00 0a 04 75736572 04 70617373"));
  // The BIND response: the endpoint name, the connector ID flagged UDP.
  auto cid = id;
  cid.set_flag(rp::TunnelId::kFlagUdp);
  rp::FeatureWriter r;
  r.address("0123456789abcdef:0").tunnel(cid);
  auto resp = rp::encode_with(0, r);
  ASSERT_TRUE(resp);
  auto f = rp::parse_features(std::string_view(*resp).substr(4));
  ASSERT_TRUE(f && f->tunnel && f->address);
  EXPECT_TRUE(f->tunnel->is_udp());
  EXPECT_EQ(f->address->host, "0123456789abcdef");
}

TEST(TunnelCodec, ShortAndLongTunnelFeatures) {
  // 16 bytes (an older relay library): accepted, flags and weight zero.
  auto f = rp::parse_features(hex("03 00 10 893787fdfcd246a08dc4f9f8a1f1b0c9"));
  ASSERT_TRUE(f && f->tunnel);
  EXPECT_EQ(f->tunnel->to_string(), kTid);
  EXPECT_EQ(f->tunnel->weight(), 0);
  // 15 bytes: malformed.
  EXPECT_FALSE(rp::parse_features(hex("03 00 0f 893787fdfcd246a08dc4f9f8a1f1b0")));
  // 24 bytes: the first 20 are used.
  f = rp::parse_features(hex("03 00 18 893787fdfcd246a08dc4f9f8a1f1b0c9 80 0000 05 ffffffff"));
  ASSERT_TRUE(f && f->tunnel);
  EXPECT_TRUE(f->tunnel->is_private());
  EXPECT_EQ(f->tunnel->weight(), 5);
  // A domain over 255 bytes cannot be written.
  rp::FeatureWriter w;
  w.address(std::string(300, 'a') + ":1");
  EXPECT_FALSE(rp::encode_with(1, w));
}

// go-gost/x ingress Get: the port is stripped; exact name, ".name", then parent suffixes.
TEST(IngressRules, Matching) {
  Ingress in({{"app.example.com", "A"},
              {"*.wild.example.com", "W"},
              {".dot.example.com", "D"},
              {"example.org", "O"},
              {"", "skipped"},
              {"noendpoint.example.com", ""}});
  EXPECT_EQ(in.endpoint("app.example.com"), "A");
  EXPECT_EQ(in.endpoint("app.example.com:8080"), "A");
  EXPECT_EQ(in.endpoint("x.app.example.com"), "");
  EXPECT_EQ(in.endpoint("wild.example.com"), "W");  // ".wild.example.com" by ".host"
  EXPECT_EQ(in.endpoint("a.wild.example.com"), "W");
  EXPECT_EQ(in.endpoint("a.b.wild.example.com:443"), "W");
  EXPECT_EQ(in.endpoint("dot.example.com"), "D");
  EXPECT_EQ(in.endpoint("x.dot.example.com"), "D");
  EXPECT_EQ(in.endpoint("example.org"), "O");
  EXPECT_EQ(in.endpoint("www.example.org"), "");  // "example.org" is no suffix rule
  EXPECT_EQ(in.endpoint("example.com"), "");
  EXPECT_EQ(in.endpoint("noendpoint.example.com"), "");
  EXPECT_EQ(in.endpoint(""), "");
  EXPECT_EQ(in.size(), 4u);
  in.set_rule({"app.example.com", "B"});  // a later rule for a name wins
  EXPECT_EQ(in.endpoint("app.example.com"), "B");
  EXPECT_EQ(Ingress().endpoint("app.example.com"), "");
}

// A source's rules sit between the configured ones and what connectors register; each read
// replaces the previous one; the registered rules survive it (GOST's reload drops them).
TEST(IngressRules, SourceLayers) {
  Ingress in({{"conf.example.com", "C"}, {"both.example.com", "C"}});
  in.set_rule({"reg.example.com", "R"});
  in.update({{"both.example.com", "L"}, {"*.loaded.example.com", "L"}, {"reg.example.com", "L"}});
  EXPECT_EQ(in.endpoint("conf.example.com"), "C");
  EXPECT_EQ(in.endpoint("both.example.com"), "L");  // loaded over configured
  EXPECT_EQ(in.endpoint("a.loaded.example.com"), "L");
  EXPECT_EQ(in.endpoint("reg.example.com"), "R");  // registered over loaded
  in.update({});                                   // the source now holds nothing
  EXPECT_EQ(in.endpoint("both.example.com"), "C");
  EXPECT_EQ(in.endpoint("a.loaded.example.com"), "");
  EXPECT_EQ(in.endpoint("reg.example.com"), "R");
  EXPECT_EQ(in.size(), 3u);
}

TEST(IngressRules, SourceLines) {
  auto r = gost::policy::parse_ingress_line("  web.example.com\t\t$tid  extra");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->hostname, "web.example.com");
  EXPECT_EQ(r->endpoint, "$tid");
  EXPECT_FALSE(gost::policy::parse_ingress_line("lonely.example.com"));
  EXPECT_FALSE(gost::policy::parse_ingress_line("   "));
}

TEST(IngressRules, TunnelOption) {
  auto rules = gost::policy::parse_tunnel_rules(
      "a.example.com:893787fd-fcd2-46a0-8dc4-f9f8a1f1b0c9,bad,b.example.com:$x,");
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].hostname, "a.example.com");
  EXPECT_EQ(rules[0].endpoint, kTid);
  EXPECT_EQ(rules[1].endpoint, "$x");
}

TEST(SmuxV2, UpdFrames) {
  auto frame = smux::encode_frame(smux::Cmd::upd, 3, smux::encode_upd(300, 65536), 2);
  ASSERT_TRUE(frame);
  EXPECT_EQ(*frame, hex("02 04 0800 03000000 2c010000 00000100"));
  auto h = smux::parse_header(*frame);
  ASSERT_TRUE(h);
  EXPECT_TRUE(smux::valid_for(*h, 2));
  EXPECT_FALSE(smux::valid_for(*h, 1));  // UPD and VER 2 are no version-1 frames
  EXPECT_FALSE(smux::valid_v1(*h));
  auto u = smux::parse_upd(frame->substr(8));
  ASSERT_TRUE(u);
  EXPECT_EQ(u->consumed, 300u);
  EXPECT_EQ(u->window, 65536u);
  EXPECT_FALSE(smux::parse_upd("short"));
  smux::Header bad{2, 5, 0, 1};
  EXPECT_FALSE(smux::valid_for(bad, 2));
  EXPECT_EQ(*smux::encode_frame(smux::Cmd::syn, 3), hex("01 00 0000 03000000"));
}

}  // namespace
