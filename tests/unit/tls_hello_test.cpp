// The ClientHello SNI reader used by the auto handler's TLS pass-through.
#include "proto/tls_hello.hpp"

#include <gtest/gtest.h>

namespace tls = gost::proto::tls;

namespace {

std::string u16(std::size_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }
std::string u24(std::size_t v) {
  return std::string(1, static_cast<char>(v >> 16)) + u16(v & 0xffff);
}

// A minimal but well-formed TLS 1.2-style ClientHello record, with an optional SNI.
std::string client_hello(const std::string& sni, bool with_extensions = true) {
  std::string body = u16(0x0303) + std::string(32, 'r') + std::string(1, '\0') + u16(2) +
                     u16(0x1301) + std::string(1, '\1') + std::string(1, '\0');
  if (with_extensions) {
    std::string exts = u16(0x000a) + u16(4) + u16(2) + u16(0x001d);  // supported_groups first
    if (!sni.empty()) {
      std::string entry = std::string(1, '\0') + u16(sni.size()) + sni;
      std::string list = u16(entry.size()) + entry;
      exts += u16(0x0000) + u16(list.size()) + list;
    }
    body += u16(exts.size()) + exts;
  }
  std::string hs = std::string(1, '\1') + u24(body.size()) + body;
  return std::string("\x16\x03\x01", 3) + u16(hs.size()) + hs;
}

}  // namespace

TEST(TlsHello, RecordHeader) {
  EXPECT_TRUE(tls::is_handshake_record(std::string("\x16\x03\x01\x02\x00", 5)));
  EXPECT_TRUE(tls::is_handshake_record(std::string("\x16\x03\x04\x00\x10", 5)));
  EXPECT_FALSE(tls::is_handshake_record(std::string("\x16\x03\x05\x00\x10", 5)));
  EXPECT_FALSE(tls::is_handshake_record(std::string("\x16\x02\x01\x00\x10", 5)));
  EXPECT_FALSE(tls::is_handshake_record("GET /"));
  EXPECT_FALSE(tls::is_handshake_record(std::string("\x16\x03", 2)));
  EXPECT_EQ(tls::record_length(std::string("\x16\x03\x01\x02\x00", 5)), 512u);
}

TEST(TlsHello, ExtractsServerName) {
  std::string sni;
  ASSERT_EQ(tls::parse_client_hello(client_hello("example.com"), sni), tls::HelloStatus::ok);
  EXPECT_EQ(sni, "example.com");
  EXPECT_EQ(tls::parse_client_hello(client_hello(""), sni), tls::HelloStatus::no_sni);
  EXPECT_EQ(tls::parse_client_hello(client_hello("", false), sni), tls::HelloStatus::no_sni);
}

TEST(TlsHello, RejectsTruncatedAndInconsistentInput) {
  std::string good = client_hello("example.com");
  std::string sni;
  for (std::size_t n = 0; n < good.size(); ++n)
    EXPECT_EQ(tls::parse_client_hello(good.substr(0, n), sni), tls::HelloStatus::bad) << n;
  std::string longer = good + "x";
  EXPECT_EQ(tls::parse_client_hello(longer, sni), tls::HelloStatus::bad);
  std::string not_hello = good;
  not_hello[5] = 0x02;  // ServerHello
  EXPECT_EQ(tls::parse_client_hello(not_hello, sni), tls::HelloStatus::bad);
}
