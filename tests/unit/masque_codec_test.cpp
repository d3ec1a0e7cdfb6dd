// proto/masque: the CONNECT-UDP path as GOST builds and parses it, HTTP datagram context IDs and
// capsules (RFC 9297 §3.2), with golden bytes.
#include <gtest/gtest.h>

#include "proto/masque.hpp"

namespace gost::proto::masque {
namespace {

using namespace std::string_literals;

TEST(MasquePath, BuiltAsGoPathEscape) {
  EXPECT_EQ(udp_path("127.0.0.1", 53), "/.well-known/masque/udp/127.0.0.1/53/");
  EXPECT_EQ(udp_path("example.com", 443), "/.well-known/masque/udp/example.com/443/");
  // url.PathEscape keeps ':' (and $&+=@), escapes '/', ';', ',', '?', '%', space and non-ASCII
  EXPECT_EQ(udp_path("::1", 443), "/.well-known/masque/udp/::1/443/");
  EXPECT_EQ(udp_path("a/b c?;,%", 1), "/.well-known/masque/udp/a%2Fb%20c%3F%3B%2C%25/1/");
  EXPECT_EQ(udp_path("\xc3\xa9", 65535), "/.well-known/masque/udp/%C3%A9/65535/");
}

TEST(MasquePath, ParsedAsGost) {
  auto t = parse_udp_path("/.well-known/masque/udp/127.0.0.1/53/");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "127.0.0.1");
  EXPECT_EQ(t->port, 53);
  // the trailing slash is optional, a query is ignored, the host is percent-decoded (RFC 9298
  // templates escape ':' of IPv6 literals)
  t = parse_udp_path("/.well-known/masque/udp/%3A%3A1/443?x=1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "::1");
  EXPECT_EQ(t->port, 443);
  for (auto bad : {"/", "/.well-known/masque/udp/", "/.well-known/masque/udp/h/",
                   "/.well-known/masque/udp//53/", "/.well-known/masque/udp/h/0/",
                   "/.well-known/masque/udp/h/65536/", "/.well-known/masque/udp/h/5x/",
                   "/.well-known/masque/udp/h/53/extra/", "/.well-known/masque/tcp/h/53/",
                   "/.well-known/masque/udp/%zz/53/", "/.well-known/masque/udp/%4/53/",
                   "/.well-known/masque/udp/h/-1/", "/.well-known/masque/udp/h/123456/"})
    EXPECT_FALSE(parse_udp_path(bad)) << bad;
}

TEST(MasqueDatagram, ContextIdZeroOnly) {
  EXPECT_EQ(udp_datagram("hi"), "\x00hi"s);
  EXPECT_EQ(udp_payload("\x00hi"s), "hi");
  EXPECT_EQ(udp_payload("\x40\x00hi"s), "hi");  // 0 in a two-byte varint is still 0
  EXPECT_FALSE(udp_payload("\x02hi"s));         // another context: not a UDP payload
  EXPECT_FALSE(udp_payload(""));
  EXPECT_EQ(udp_payload("\x00"s), "");  // an empty UDP payload
}

TEST(MasqueCapsule, DatagramCapsuleBytes) {
  EXPECT_EQ(datagram_capsule("\x00hi"s), "\x00\x03\x00hi"s);
  std::string big(300, 'x');
  EXPECT_EQ(datagram_capsule(big).substr(0, 3), "\x00\x41\x2c"s);  // length 300: 2-byte varint
}

TEST(MasqueCapsule, ReadsDatagramsInPiecesAndSkipsOthers) {
  CapsuleReader r;
  std::string wire = datagram_capsule("\x00one"s) + "\x40\x41\x02zz"s +  // type 0x41 skipped
                     datagram_capsule("\x00two"s);
  for (char c : wire) r.feed(std::string(1, c));  // a byte at a time
  EXPECT_EQ(r.next(), "\x00one"s);
  EXPECT_EQ(r.next(), "\x00two"s);
  EXPECT_FALSE(r.next());
  EXPECT_FALSE(r.bad());
  EXPECT_EQ(r.held(), 0u);
}

TEST(MasqueCapsule, LongUnknownCapsuleIsSkippedWithoutHoldingIt) {
  CapsuleReader r;
  r.feed("\x17\x80\x10\x00\x00"s);  // type 0x17, length 1 MiB
  r.feed(std::string(4096, 'a'));
  EXPECT_FALSE(r.next());
  EXPECT_LT(r.held(), 64u);
  for (int i = 0; i < 255; ++i) r.feed(std::string(4096, 'a'));  // the rest of its 1 MiB
  r.feed(datagram_capsule("\x00after"s));
  EXPECT_EQ(r.next(), "\x00after"s);
}

TEST(MasqueCapsule, OverLongDatagramCapsuleBreaksTheProtocol) {
  CapsuleReader r;
  r.feed("\x00\x80\x10\x00\x00"s);  // DATAGRAM of 1 MiB: no UDP payload is that long
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.bad());
  r.feed(datagram_capsule("\x00x"s));
  EXPECT_FALSE(r.next());  // bad stays bad
}

}  // namespace
}  // namespace gost::proto::masque
