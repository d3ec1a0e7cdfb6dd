// Golden vectors of docs/PROTOCOLS.md "relay: golden vectors" and the bounds of the relay codec.
#include <gtest/gtest.h>

#include <cctype>

#include "proto/relay.hpp"

namespace relay = gost::proto::relay;

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

relay::Request request(std::uint8_t cmd, std::string_view addr,
                       std::optional<std::uint16_t> network = std::nullopt,
                       std::optional<relay::UserAuth> auth = std::nullopt) {
  relay::Request r;
  r.cmd = cmd;
  r.features.network = network;
  r.features.auth = std::move(auth);
  r.features.address = relay::parse_address(addr);
  return r;
}

const relay::UserAuth kUserPass{"user", "pass"};

// Parses a whole request the way the handler does: header, then exactly FEALEN bytes.
std::optional<relay::Request> decode(std::string_view wire) {
  auto h = relay::parse_header(wire);
  if (!h || wire.size() < relay::kHeaderSize + h->features_length) return std::nullopt;
  auto f = relay::parse_features(wire.substr(relay::kHeaderSize, h->features_length));
  if (!f) return std::nullopt;
  return relay::Request{h->code, *f};
}

}  // namespace

TEST(RelayGolden, A_ConnectDomain) {
  auto want = hex("01 01 00 12 02 00 0f 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50");
  EXPECT_EQ(relay::encode_request(request(0x01, "example.com:80")), want);
  auto r = decode(want);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->cmd, 0x01);
  EXPECT_EQ(r->features.address->to_string(), "example.com:80");
  EXPECT_FALSE(r->features.auth);
}

TEST(RelayGolden, B_ConnectWithAuth) {
  auto want = hex(
      "01 01 00 1f 01 00 0a 04 75 73 65 72 04 70 61 73 73 02 00 0f 03 0b 65 78 61 6d 70 6c 65 2e "
      "63 6f 6d 00 50");
  EXPECT_EQ(relay::encode_request(request(0x01, "example.com:80", std::nullopt, kUserPass)), want);
  auto r = decode(want);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->features.auth, kUserPass);
  EXPECT_EQ(r->features.address->to_string(), "example.com:80");
}

TEST(RelayGolden, C_ConnectIPv4) {
  auto want = hex("01 01 00 0a 02 00 07 01 01 02 03 04 01 bb");
  EXPECT_EQ(relay::encode_request(request(0x01, "1.2.3.4:443")), want);
  EXPECT_EQ(decode(want)->features.address->to_string(), "1.2.3.4:443");
}

TEST(RelayGolden, D_ConnectIPv6) {
  auto want = hex("01 01 00 16 02 00 13 04 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 01 bb");
  EXPECT_EQ(relay::encode_request(request(0x01, "[2001:db8::1]:443")), want);
  EXPECT_EQ(decode(want)->features.address->to_string(), "[2001:db8::1]:443");
}

TEST(RelayGolden, E_RequestFollowedByPayload) {
  auto req = hex("01 01 00 12 02 00 0f 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50");
  std::string wire = req + "GET / HTTP/1.1\r\n";
  auto h = relay::parse_header(wire);
  ASSERT_TRUE(h);
  EXPECT_EQ(relay::kHeaderSize + h->features_length, req.size());  // payload is not consumed
  EXPECT_EQ(wire.substr(req.size()), "GET / HTTP/1.1\r\n");
}

TEST(RelayGolden, F_G_UdpConnect) {
  auto f = hex("01 81 00 0f 04 00 02 00 01 02 00 07 01 08 08 08 08 00 35");
  EXPECT_EQ(relay::encode_request(request(0x81, "8.8.8.8:53", 1)), f);
  auto g = hex(
      "01 81 00 1c 04 00 02 00 01 01 00 0a 04 75 73 65 72 04 70 61 73 73 02 00 07 01 08 08 08 08 "
      "00 35");
  EXPECT_EQ(relay::encode_request(request(0x81, "8.8.8.8:53", 1, kUserPass)), g);
  auto r = decode(g);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->cmd & relay::kFlagUdp, relay::kFlagUdp);
  EXPECT_EQ(r->cmd & relay::kCmdMask, relay::kCmdConnect);
  EXPECT_EQ(r->features.network, 1);
  EXPECT_EQ(relay::network_name(*r->features.network), "udp");
  EXPECT_EQ(r->features.auth, kUserPass);
}

TEST(RelayGolden, H_Datagram) {
  EXPECT_EQ(relay::encode_datagram("abc"), hex("00 03 61 62 63"));
  EXPECT_EQ(relay::datagram_frame_size(hex("00 03 61")), 5u);
  EXPECT_EQ(relay::datagram_frame_size(hex("00")), std::nullopt);
  EXPECT_EQ(relay::encode_datagram(std::string(65535, 'x'))->size(), 65537u);
  EXPECT_EQ(relay::encode_datagram(std::string(65536, 'x')), std::nullopt);
}

TEST(RelayGolden, I_J_Association) {
  EXPECT_EQ(relay::encode_request(request(0x82, "0.0.0.0:0", 1)),
            hex("01 82 00 0f 04 00 02 00 01 02 00 07 01 00 00 00 00 00 00"));
  EXPECT_EQ(relay::encode_request(request(0x82, "0.0.0.0:0", 1, kUserPass)),
            hex("01 82 00 1c 01 00 0a 04 75 73 65 72 04 70 61 73 73 04 00 02 00 01 02 00 07 01 00 "
                "00 00 00 00 00"));
  // GOST 3.2.6 sends an empty domain; it must decode (host "" = wildcard for the handler).
  auto r = decode(hex("01 82 00 0c 04 00 02 00 01 02 00 04 03 00 00 00"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->features.address->host, "");
  EXPECT_EQ(r->features.address->to_string(), ":0");
  auto j = decode(hex(
      "01 82 00 19 01 00 0a 04 75 73 65 72 04 70 61 73 73 04 00 02 00 01 02 00 04 03 00 00 00"));
  ASSERT_TRUE(j);
  EXPECT_EQ(j->features.auth, kUserPass);
  EXPECT_EQ(j->features.network, 1);
}

TEST(RelayGolden, M_Bind) {
  auto want = hex("01 02 00 0f 04 00 02 00 00 02 00 07 01 00 00 00 00 08 ae");
  EXPECT_EQ(relay::encode_request(request(0x02, "0.0.0.0:2222", 0)), want);
  // 3.2.6's un-normalised form with an empty host.
  auto r = decode(hex("01 02 00 0c 04 00 02 00 00 02 00 04 03 00 08 b3"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->features.address->to_string(), ":2227");
}

TEST(RelayGolden, N_O_P_Q_R_Responses) {
  EXPECT_EQ(relay::encode_status(relay::Status::ok), hex("01 00 00 00"));
  relay::Response o;
  o.features.address = relay::parse_address("[::]:2222");
  EXPECT_EQ(relay::encode_response(o),
            hex("01 00 00 16 02 00 13 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 08 ae"));
  relay::Response p;
  p.features.address = relay::parse_address("0.0.0.0:2222");
  EXPECT_EQ(relay::encode_response(p), hex("01 00 00 0a 02 00 07 01 00 00 00 00 08 ae"));
  relay::Response q;
  q.features.address = relay::parse_address("203.0.113.5:51000");
  EXPECT_EQ(relay::encode_response(q), hex("01 00 00 0a 02 00 07 01 cb 00 71 05 c7 38"));
  EXPECT_EQ(relay::encode_status(relay::Status::unauthorized), hex("01 02 00 00"));
  EXPECT_EQ(relay::encode_status(relay::Status::forbidden), hex("01 03 00 00"));
  EXPECT_EQ(relay::encode_status(relay::Status::network_unreachable), hex("01 07 00 00"));
  EXPECT_EQ(relay::encode_status(relay::Status::bad_request), hex("01 01 00 00"));
  EXPECT_EQ(relay::encode_status(relay::Status::service_unavailable), hex("01 05 00 00"));
  EXPECT_EQ(relay::encode_status(relay::Status::host_unreachable), hex("01 06 00 00"));
}

TEST(RelayGolden, StatusText) {
  EXPECT_EQ(relay::status_text(0x02), "Unauthorized");
  EXPECT_EQ(relay::status_text(0x07), "Network Unreachable");
  EXPECT_EQ(relay::status_text(0x08), "Internal Server Error");
  EXPECT_EQ(relay::status_text(0x42), "Unknown");
}

TEST(RelayCodec, ResponseAddressDecodes) {
  auto f = relay::parse_features(hex("02 00 07 01 7f 00 00 01 1f 90"));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->address->to_string(), "127.0.0.1:8080");
}

TEST(RelayCodec, AddressTextRules) {
  EXPECT_EQ(relay::parse_address("example.com")->port, 0);  // missing port → 0
  EXPECT_EQ(relay::parse_address("example.com:http")->port, 0);
  EXPECT_EQ(relay::parse_address("[::ffff:1.2.3.4]:5")->atyp, relay::kAtypIPv4);
  EXPECT_EQ(relay::parse_address("[::ffff:1.2.3.4]:5")->to_string(), "1.2.3.4:5");
  EXPECT_EQ(relay::parse_address(std::string(256, 'a') + ":1"), std::nullopt);
  EXPECT_TRUE(relay::parse_address(std::string(255, 'a') + ":1"));
  // v4-mapped IPv6 on the wire is shown as IPv4 (Go's net.IP.String).
  auto f = relay::parse_features(hex("02 00 13 04 00000000 00000000 0000ffff 7f000001 0050"));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->address->to_string(), "127.0.0.1:80");
}

TEST(RelayCodec, EncodeLimits) {
  relay::Request r = request(0x01, "h:1", std::nullopt, relay::UserAuth{std::string(256, 'u'), ""});
  EXPECT_EQ(relay::encode_request(r), std::nullopt);
  r.features.auth = relay::UserAuth{std::string(255, 'u'), std::string(255, 'p')};
  EXPECT_TRUE(relay::encode_request(r));
}

TEST(RelayCodec, UnknownFeatureSkipped) {
  // type 0x09 (3 bytes) between auth and address; and a tunnel feature (20 bytes).
  auto r =
      decode(hex("01 01 00 34 01 00 0a 04 75 73 65 72 04 70 61 73 73 09 00 03 aa bb cc 03 00 14 "
                 "00000000000000000000000000000000 80 0000 00 02 00 07 01 01 02 03 04 01 bb"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->features.auth, kUserPass);
  EXPECT_TRUE(r->features.has_tunnel());
  EXPECT_EQ(r->features.address->to_string(), "1.2.3.4:443");
  // zero-length unknown feature
  EXPECT_TRUE(relay::parse_features(hex("ee 00 00")));
}

TEST(RelayCodec, LastFeatureWinsAndExtraPayloadIgnored) {
  auto f = relay::parse_features(
      hex("02 00 07 01 01 02 03 04 00 01  02 00 09 01 05 06 07 08 00 02 ff ff  04 00 03 00 99 ee"));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->address->to_string(), "5.6.7.8:2");
  EXPECT_EQ(relay::network_name(*f->network), "tcp");  // unknown network → tcp
}

TEST(RelayCodec, TruncatedAndMalformedRejected) {
  EXPECT_EQ(relay::parse_header(hex("01 01 00")), std::nullopt);
  // TLV header cut short / payload overruns the feature block
  EXPECT_EQ(relay::parse_features(hex("02 00")), std::nullopt);
  EXPECT_EQ(relay::parse_features(hex("02 00 07 01 01 02 03")), std::nullopt);
  // address payloads too short for their type
  EXPECT_EQ(relay::parse_features(hex("02 00 03 01 01 02")), std::nullopt);
  EXPECT_EQ(relay::parse_features(hex("02 00 06 01 01 02 03 04 00")), std::nullopt);
  EXPECT_EQ(relay::parse_features(hex("02 00 12 04 00000000000000000000000000000000 00")),
            std::nullopt);
  EXPECT_EQ(relay::parse_features(hex("02 00 05 03 05 61 62 63")), std::nullopt);
  EXPECT_EQ(relay::parse_features(hex("02 00 04 09 00 00 00")), std::nullopt);  // bad ATYP
  // user auth: short, ULEN / PLEN overrun
  EXPECT_EQ(relay::parse_features(hex("01 00 01 00")), std::nullopt);
  EXPECT_EQ(relay::parse_features(hex("01 00 03 05 61 00")), std::nullopt);
  EXPECT_EQ(relay::parse_features(hex("01 00 04 01 61 05 62")), std::nullopt);
  // network and tunnel too short
  EXPECT_EQ(relay::parse_features(hex("04 00 01 00")), std::nullopt);
  EXPECT_EQ(relay::parse_features(hex("03 00 0f 000000000000000000000000000000")), std::nullopt);
  // an empty user auth and empty password are fine
  auto f = relay::parse_features(hex("01 00 02 00 00"));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->auth, (relay::UserAuth{"", ""}));
}

TEST(RelayCodec, OversizedFeatureBlockRejectedByEncoder) {
  relay::Request r;
  r.features.auth = relay::UserAuth{std::string(255, 'u'), std::string(255, 'p')};
  EXPECT_TRUE(relay::encode_request(r));  // 3 + 512 bytes, far below 64 KiB
  // A declared FEALEN larger than the data is a truncated request.
  EXPECT_EQ(decode(hex("01 01 ff ff 02 00 07 01 01 02 03 04 01 bb")), std::nullopt);
}

TEST(RelayCodec, EveryTruncationOfGoldenRequestsFails) {
  for (auto wire :
       {hex("01 01 00 1f 01 00 0a 04 75 73 65 72 04 70 61 73 73 02 00 0f 03 0b 65 78 61 6d 70 6c "
            "65 "
            "2e 63 6f 6d 00 50"),
        hex("01 01 00 16 02 00 13 04 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 01 bb")}) {
    ASSERT_TRUE(decode(wire));
    for (std::size_t n = 0; n < wire.size(); ++n) EXPECT_FALSE(decode(wire.substr(0, n))) << n;
  }
}
