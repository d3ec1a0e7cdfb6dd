// PROXY protocol codec (docs/PROTOCOLS.md "PROXY protocol"): the examples of haproxy's
// proxy-protocol.txt, v2 bytes laid out as its section 2.2 describes, every prefix of a header
// (incremental reading), and the malformed headers that must close the connection.
#include "proto/proxy_protocol.hpp"

#include <gtest/gtest.h>

namespace pp = gost::proto::proxy_protocol;
using pp::Status;

namespace {

std::string unhex(std::string_view h) {
  std::string out;
  std::string digits;
  for (char c : h)
    if (c != ' ') digits.push_back(c);
  for (std::size_t i = 0; i + 1 < digits.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return out;
}

pp::Endpoint ep(std::string_view text) {
  auto e = pp::endpoint_from_text(text);
  EXPECT_TRUE(e) << text;
  return e.value_or(pp::Endpoint{});
}

// Every strict prefix of a complete header is incomplete (never a wrong verdict), and the
// announced need never exceeds the header.
void expect_incremental(const std::string& header) {
  for (std::size_t n = 0; n < header.size(); ++n) {
    auto p = pp::parse(std::string_view(header).substr(0, n));
    ASSERT_EQ(p.status, Status::incomplete) << "prefix " << n;
    EXPECT_GT(p.size, n);
    EXPECT_LE(p.size, header.size());
  }
}

// The v2 header of spec 2.2 for TCP over IPv4 192.168.0.1:56324 -> 192.168.0.11:443.
const std::string kV2Tcp4 = unhex(
    "0d0a0d0a000d0a515549540a"  // signature
    "21"                        // version 2, PROXY
    "11"                        // AF_INET, STREAM
    "000c"                      // 12 bytes of addresses
    "c0a80001 c0a8000b"         // 192.168.0.1, 192.168.0.11
    "dc04 01bb");               // 56324, 443

}  // namespace

TEST(ProxyProtocolV1, SpecExampleTcp4) {
  std::string h = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  auto p = pp::parse(h + "GET / HTTP/1.1\r\n");
  ASSERT_EQ(p.status, Status::complete);
  EXPECT_EQ(p.size, h.size());  // the request after it is left alone
  EXPECT_EQ(p.header.version, 1);
  EXPECT_TRUE(p.header.has_addresses);
  EXPECT_EQ(p.header.source.to_string(), "192.168.0.1:56324");
  EXPECT_EQ(p.header.destination.to_string(), "192.168.0.11:443");
  expect_incremental(h);
}

TEST(ProxyProtocolV1, WorstCasesOfTheSpec) {
  // 2.1: the longest TCP4 line is 56 bytes, TCP6 104, UNKNOWN 107.
  std::string f8 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  std::string tcp4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
  std::string tcp6 = "PROXY TCP6 " + f8 + " " + f8 + " 65535 65535\r\n";
  std::string unknown = "PROXY UNKNOWN " + f8 + " " + f8 + " 65535 65535\r\n";
  EXPECT_EQ(tcp4.size(), 56u);
  EXPECT_EQ(tcp6.size(), 104u);
  EXPECT_EQ(unknown.size(), 107u);
  auto p4 = pp::parse(tcp4);
  ASSERT_EQ(p4.status, Status::complete);
  EXPECT_EQ(p4.header.source.to_string(), "255.255.255.255:65535");
  auto p6 = pp::parse(tcp6);
  ASSERT_EQ(p6.status, Status::complete);
  EXPECT_EQ(p6.header.source.to_string(), "[" + f8 + "]:65535");
  auto pu = pp::parse(unknown);
  ASSERT_EQ(pu.status, Status::complete);
  EXPECT_EQ(pu.size, 107u);
  EXPECT_FALSE(pu.header.has_addresses);  // the connection's own addresses stay
  expect_incremental(unknown);
}

TEST(ProxyProtocolV1, UnknownShortForm) {
  auto p = pp::parse("PROXY UNKNOWN\r\n");
  ASSERT_EQ(p.status, Status::complete);
  EXPECT_EQ(p.size, 15u);
  EXPECT_FALSE(p.header.has_addresses);
}

TEST(ProxyProtocolV1, Malformed) {
  for (std::string bad : {
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n",      // LF without CR
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",        // a field missing
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 1\r\n",  // one too many
           "PROXY TCP4  192.168.0.1 192.168.0.11 56324 443\r\n",   // two spaces
           "PROXY TCP4 ::1 ::1 56324 443\r\n",                     // IPv6 for TCP4
           "PROXY TCP6 192.168.0.1 192.168.0.11 56324 443\r\n",    // IPv4 for TCP6
           "PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",    // port out of range
           "PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n",       // not a number
           "PROXY TCP4 192.168.0.256 192.168.0.11 1 443\r\n",      // not an address
           "PROXY UDP4 192.168.0.1 192.168.0.11 56324 443\r\n",    // not a v1 protocol
           "PROXY\r\n",                                            // nothing
           "PROXYTCP4 1.1.1.1 1.1.1.1 1 1\r\n",                    // no space after PROXY
       }) {
    EXPECT_EQ(pp::parse(bad).status, Status::bad) << bad;
  }
  // 107 bytes without a line end: never a header.
  std::string long_line = "PROXY UNKNOWN " + std::string(93, 'a');
  ASSERT_EQ(long_line.size(), 107u);
  EXPECT_EQ(pp::parse(long_line).status, Status::bad);
  EXPECT_EQ(pp::parse(long_line.substr(0, 106)).status, Status::incomplete);
}

TEST(ProxyProtocolV2, Tcp4LaidOutAsTheSpec) {
  auto p = pp::parse(kV2Tcp4 + "\x05\x01\x00");  // a SOCKS5 greeting after it
  ASSERT_EQ(p.status, Status::complete);
  EXPECT_EQ(p.size, 28u);
  EXPECT_EQ(p.header.version, 2);
  EXPECT_FALSE(p.header.local_command);
  EXPECT_EQ(p.header.family, pp::Family::inet);
  EXPECT_EQ(p.header.source.to_string(), "192.168.0.1:56324");
  EXPECT_EQ(p.header.destination.to_string(), "192.168.0.11:443");
  expect_incremental(kV2Tcp4);
  // And the builder writes exactly these bytes (GOST's node side, pires' Format()).
  EXPECT_EQ(pp::build_v2(ep("192.168.0.1:56324"), ep("192.168.0.11:443")), kV2Tcp4);
}

TEST(ProxyProtocolV2, Tcp6WithTlvs) {
  std::string h = unhex(
      "0d0a0d0a000d0a515549540a 21 21 0032"  // TCP6, 36 + 14 bytes
      "20010db8000000000000000000000001"     // 2001:db8::1
      "20010db8000000000000000000000002"     // 2001:db8::2
      "3039 0050"                            // 12345, 80
      "01 0002 6832"                         // PP2_TYPE_ALPN "h2"
      "04 0000"                              // PP2_TYPE_NOOP, empty
      "05 0003 616263");                     // PP2_TYPE_UNIQUE_ID "abc"
  auto p = pp::parse(h);
  ASSERT_EQ(p.status, Status::complete);
  EXPECT_EQ(p.size, h.size());
  EXPECT_EQ(p.header.tlv_count, 3u);
  EXPECT_EQ(p.header.source.to_string(), "[2001:db8::1]:12345");
  EXPECT_EQ(p.header.destination.to_string(), "[2001:db8::2]:80");
  expect_incremental(h);
  // A TLV running past the block, or cut in its own header, closes the connection.
  std::string overrun = h;
  overrun[16 + 36 + 5 + 3 + 1] = 0x01;  // the UNIQUE_ID's length: 3 -> 259
  EXPECT_EQ(pp::parse(overrun).status, Status::bad);
  std::string cut = unhex("0d0a0d0a000d0a515549540a 21 11 000e c0a80001 c0a8000b dc04 01bb 0100");
  EXPECT_EQ(pp::parse(cut).status, Status::bad);
}

TEST(ProxyProtocolV2, LocalUnspecAndUnix) {
  // LOCAL: the block and its family are ignored; the connection keeps its addresses.
  auto local = pp::parse(pp::build_v2_local());
  ASSERT_EQ(local.status, Status::complete);
  EXPECT_EQ(local.size, 16u);
  EXPECT_TRUE(local.header.local_command);
  EXPECT_FALSE(local.header.has_addresses);
  std::string local_inet = kV2Tcp4;
  local_inet[12] = 0x20;
  auto li = pp::parse(local_inet);
  ASSERT_EQ(li.status, Status::complete);
  EXPECT_FALSE(li.header.has_addresses);
  // PROXY over AF_UNSPEC with some bytes: skipped, no addresses.
  auto unspec = pp::parse(unhex("0d0a0d0a000d0a515549540a 21 00 0003 aabbcc"));
  ASSERT_EQ(unspec.status, Status::complete);
  EXPECT_EQ(unspec.size, 19u);
  EXPECT_FALSE(unspec.header.has_addresses);
  // AF_UNIX: 216 bytes of paths, no IP address to report.
  std::string unix_h = unhex("0d0a0d0a000d0a515549540a 21 31 00d8") + std::string(216, '\0');
  auto u = pp::parse(unix_h);
  ASSERT_EQ(u.status, Status::complete);
  EXPECT_EQ(u.size, 232u);
  EXPECT_EQ(u.header.family, pp::Family::unix_);
  EXPECT_FALSE(u.header.has_addresses);
}

TEST(ProxyProtocolV2, Malformed) {
  auto with = [](std::size_t at, char byte) {
    std::string h = kV2Tcp4;
    h[at] = byte;
    return h;
  };
  EXPECT_EQ(pp::parse(with(12, 0x11)).status, Status::bad);  // version 1 in a v2 header
  EXPECT_EQ(pp::parse(with(12, 0x22)).status, Status::bad);  // command 2
  EXPECT_EQ(pp::parse(with(13, 0x10)).status, Status::bad);  // AF_INET, UNSPEC transport
  EXPECT_EQ(pp::parse(with(13, 0x41)).status, Status::bad);  // family 4
  EXPECT_EQ(pp::parse(with(15, 0x0b)).status, Status::bad);  // 11 bytes: too short for AF_INET
  // A block beyond our 4096-byte bound (GOST's too) is refused before it is waited for.
  std::string big = kV2Tcp4.substr(0, 14) + unhex("1001");
  EXPECT_EQ(pp::parse(big).status, Status::bad);
  std::string max = kV2Tcp4.substr(0, 14) + unhex("1000");
  auto m = pp::parse(max);
  EXPECT_EQ(m.status, Status::incomplete);
  EXPECT_EQ(m.size, 16u + 4096u);
}

TEST(ProxyProtocol, NoHeader) {
  for (std::string other : {"GET / HTTP/1.1\r\n", "CONNECT a:443 HTTP/1.1\r\n", "\x05\x01\x00",
                            "POST / HTTP/1.1\r\n", "PROXZ", "\r\n\r\nX"})
    EXPECT_EQ(pp::parse(other).status, Status::not_proxy) << other;
  // A prefix of a signature is not decided yet.
  EXPECT_EQ(pp::parse("PRO").status, Status::incomplete);
  EXPECT_EQ(pp::parse(std::string_view("\r\n\r\n\0", 5)).status, Status::incomplete);
  EXPECT_EQ(pp::parse("").status, Status::incomplete);
}

TEST(ProxyProtocol, BuildForNode) {
  // v1 as GOST's nodes write it; mixed families go out as IPv6.
  EXPECT_EQ(pp::build_for_node(1, "127.0.0.1:40000", "127.0.0.1:8080"),
            "PROXY TCP4 127.0.0.1 127.0.0.1 40000 8080\r\n");
  EXPECT_EQ(pp::build_for_node(1, "[::1]:40000", "[::1]:8080"),
            "PROXY TCP6 ::1 ::1 40000 8080\r\n");
  EXPECT_EQ(pp::build_for_node(1, "10.0.0.1:1", "[::1]:2"),
            "PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n");
  // Version 2 (and anything but 1) builds v2; what is not an IP endpoint is 0.0.0.0.
  EXPECT_EQ(pp::build_for_node(2, "192.168.0.1:56324", "192.168.0.11:443"), kV2Tcp4);
  EXPECT_EQ(pp::build_for_node(3, "192.168.0.1:56324", "192.168.0.11:443"), kV2Tcp4);
  EXPECT_EQ(pp::build_for_node(1, "", "1.2.3.4:5"), "PROXY TCP4 0.0.0.0 1.2.3.4 0 5\r\n");
  // docs/PROTOCOLS.md "PROXY protocol: node": a client 127.0.0.2:40000 connected to 127.0.0.1:8080.
  EXPECT_EQ(pp::build_for_node(2, "127.0.0.2:40000", "127.0.0.1:8080"),
            unhex("0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a 21 11 00 0c 7f 00 00 02 7f 00 00 01 9c 40 "
                  "1f 90"));
  // Every built header parses back to its addresses.
  for (int v : {1, 2})
    for (auto [s, d] : {std::pair{"1.2.3.4:5", "6.7.8.9:10"}, {"[2001:db8::7]:1", "[::1]:65535"}}) {
      auto p = pp::parse(pp::build_for_node(v, s, d));
      ASSERT_EQ(p.status, Status::complete);
      EXPECT_EQ(p.header.source.to_string(), s);
      EXPECT_EQ(p.header.destination.to_string(), d);
    }
  // IPv4-mapped addresses show as IPv4 (as our socket addresses do).
  EXPECT_EQ(ep("[::ffff:1.2.3.4]:80").to_string(), "1.2.3.4:80");
}
