// Golden vectors of docs/PROTOCOLS.md "socks5: golden bytes" and SOCKS4/4a bytes; bounds and
// rejection of the codecs.
#include <gtest/gtest.h>

#include "proto/socks4.hpp"
#include "proto/socks5.hpp"

namespace socks5 = gost::proto::socks5;
namespace socks4 = gost::proto::socks4;
using socks5::Status;

namespace {

std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

std::string unhex(std::string_view h) {
  std::string out;
  std::string digits;
  for (char c : h)
    if (c != ' ') digits.push_back(c);
  for (std::size_t i = 0; i + 1 < digits.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return out;
}

socks5::Address addr(std::string_view text) { return *socks5::address_from_text(text); }

}  // namespace

TEST(Socks5Golden, Greetings) {
  EXPECT_EQ(hex(socks5::greeting(socks5::client_methods(false, false))), "05020080");
  EXPECT_EQ(hex(socks5::greeting(socks5::client_methods(true, false))), "050400028082");
  EXPECT_EQ(hex(socks5::greeting(socks5::client_methods(false, true))), "050100");
  EXPECT_EQ(hex(socks5::greeting(socks5::client_methods(true, true))), "05020002");
}

TEST(Socks5Golden, MethodReplies) {
  EXPECT_EQ(hex(socks5::method_reply(0x80)), "0580");
  EXPECT_EQ(hex(socks5::method_reply(0x82)), "0582");
  EXPECT_EQ(hex(socks5::method_reply(0x02)), "0502");
  EXPECT_EQ(hex(socks5::method_reply(0x00)), "0500");
  EXPECT_EQ(hex(socks5::method_reply(0xFF)), "05ff");
}

TEST(Socks5, MethodSelectionTable) {
  using V = std::vector<std::uint8_t>;
  // auth configured
  EXPECT_EQ(socks5::select_method(V{0, 2, 0x80, 0x82}, true, true), 0x82);
  EXPECT_EQ(socks5::select_method(V{0, 2, 0x80, 0x82}, true, false), 0x02);
  EXPECT_EQ(socks5::select_method(V{0x82}, true, false), 0xFF);
  EXPECT_EQ(socks5::select_method(V{2}, true, true), 0x02);
  EXPECT_EQ(socks5::select_method(V{0, 0x80}, true, true), 0xFF);
  // no auth
  EXPECT_EQ(socks5::select_method(V{0, 0x80}, false, true), 0x80);
  EXPECT_EQ(socks5::select_method(V{0, 0x80}, false, false), 0x00);
  EXPECT_EQ(socks5::select_method(V{0}, false, true), 0x00);
  EXPECT_EQ(socks5::select_method(V{2}, false, true), 0xFF);
  EXPECT_EQ(socks5::select_method(V{0x80}, false, false), 0xFF);
}

TEST(Socks5Golden, UserPass) {
  EXPECT_EQ(hex(*socks5::user_pass_request("user", "pass")), "0104757365720470617373");
  EXPECT_EQ(hex(socks5::user_pass_reply(true)), "0100");
  EXPECT_EQ(hex(socks5::user_pass_reply(false)), "0101");
  std::string u, p;
  auto r = socks5::parse_user_pass_request(unhex("01 04 75736572 04 70617373"), u, p);
  EXPECT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.size, 11u);
  EXPECT_EQ(u, "user");
  EXPECT_EQ(p, "pass");
  r = socks5::parse_user_pass_request(unhex("01 00 00"), u, p);  // empty fields allowed
  EXPECT_EQ(r.status, Status::complete);
  EXPECT_EQ(u, "");
  EXPECT_EQ(p, "");
  EXPECT_EQ(socks5::parse_user_pass_request(unhex("05 04"), u, p).status, Status::bad);
  EXPECT_FALSE(socks5::user_pass_request(std::string(256, 'u'), "p"));
  std::uint8_t st = 9;
  EXPECT_EQ(socks5::parse_user_pass_reply(unhex("0101"), st).status, Status::complete);
  EXPECT_EQ(st, 1);
  EXPECT_EQ(socks5::parse_user_pass_reply(unhex("0500"), st).status, Status::bad);
}

TEST(Socks5Golden, Requests) {
  EXPECT_EQ(hex(socks5::request(socks5::cmd::connect, addr("example.com:80"))),
            "050100030b6578616d706c652e636f6d0050");
  EXPECT_EQ(hex(socks5::request(socks5::cmd::connect, addr("93.184.216.34:443"))),
            "050100015db8d82201bb");
  EXPECT_EQ(hex(socks5::request(socks5::cmd::udp_associate, addr(""))), "05030001000000000000");
  EXPECT_EQ(hex(socks5::request(socks5::cmd::udp_tun, addr(":0"))), "05f30001000000000000");
  EXPECT_EQ(hex(socks5::request(socks5::cmd::mbind, addr("0.0.0.0:2222"))),
            "05f2000100000000"
            "08ae");
  EXPECT_EQ(hex(socks5::request(socks5::cmd::udp_tun, addr("0.0.0.0:2223"))),
            "05f3000100000000"
            "08af");
  EXPECT_EQ(hex(socks5::request(socks5::cmd::connect, addr("[2001:db8::1]:80"))),
            "0501000420010db8000000000000000000000001"
            "0050");
  // IPv4-mapped IPv6 text is encoded as IPv4.
  EXPECT_EQ(hex(socks5::request(socks5::cmd::connect, addr("[::ffff:10.0.0.1]:1"))),
            "050100010a0000010001");
}

TEST(Socks5Golden, Replies) {
  EXPECT_EQ(hex(socks5::reply(socks5::rep::succeeded, addr("10.0.0.2:40000"))),
            "050000010a0000029c40");
  EXPECT_EQ(hex(socks5::reply(socks5::rep::network_unreachable)), "05030001000000000000");
  EXPECT_EQ(hex(socks5::reply(socks5::rep::not_allowed)), "05020001000000000000");
  EXPECT_EQ(hex(socks5::reply(socks5::rep::command_not_supported)), "05070001000000000000");
  EXPECT_EQ(hex(socks5::reply(socks5::rep::succeeded, addr("192.168.1.10:2222"))),
            "05000001c0a8010a08ae");
  // Relay-mode UDP-TUN reply for a dual-stack wildcard socket.
  EXPECT_EQ(hex(socks5::reply(socks5::rep::succeeded, addr("[::]:54321"))),
            "05000004"
            "00000000000000000000000000000000"
            "d431");
}

TEST(Socks5, ParseRequestAllAddressTypes) {
  socks5::Request req;
  auto r = socks5::parse_request(unhex("050100030b6578616d706c652e636f6d0050"), req);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.size, 18u);
  EXPECT_EQ(req.cmd, 1);
  EXPECT_EQ(req.addr.type, socks5::atyp::domain);
  EXPECT_EQ(req.addr.to_string(), "example.com:80");

  r = socks5::parse_request(unhex("050100015db8d82201bb"), req);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(req.addr.to_string(), "93.184.216.34:443");

  r = socks5::parse_request(unhex("0501000420010db8000000000000000000000001"
                                  "0050"),
                            req);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.size, 22u);
  EXPECT_EQ(req.addr.to_string(), "[2001:db8::1]:80");

  // RSV is ignored; trailing bytes are not part of the message.
  r = socks5::parse_request(unhex("050177015db8d82201bb"
                                  "ffff"),
                            req);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.size, 10u);
}

TEST(Socks5, ParseRequestTruncatedReportsWhatIsNeeded) {
  std::string full = unhex("050100030b6578616d706c652e636f6d0050");
  socks5::Request req;
  for (std::size_t n = 0; n < full.size(); ++n) {
    auto r = socks5::parse_request(std::string_view(full).substr(0, n), req);
    ASSERT_EQ(r.status, Status::incomplete) << n;
    EXPECT_GT(r.size, n);
    EXPECT_LE(r.size, full.size());
  }
}

TEST(Socks5, ParseRejects) {
  socks5::Request req;
  EXPECT_EQ(socks5::parse_request(unhex("0401000100000000"
                                        "0000"),
                                  req)
                .status,
            Status::bad);
  EXPECT_EQ(socks5::parse_request(unhex("050100090000000000"), req).status, Status::bad);
  EXPECT_EQ(socks5::parse_request(unhex("05010002"), req).status, Status::bad);
  std::vector<std::uint8_t> m;
  EXPECT_EQ(socks5::parse_greeting(unhex("04"), m).status, Status::bad);
  EXPECT_EQ(socks5::parse_greeting(unhex("0500"), m).status, Status::bad);  // NMETHODS 0
  EXPECT_EQ(socks5::parse_greeting(unhex("05"), m).status, Status::incomplete);
  auto r = socks5::parse_greeting(unhex("0503"), m);
  EXPECT_EQ(r.status, Status::incomplete);
  EXPECT_EQ(r.size, 5u);
  r = socks5::parse_greeting(unhex("0503000280"
                                   "01"),
                             m);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.size, 5u);
  EXPECT_EQ(m, (std::vector<std::uint8_t>{0, 2, 0x80}));
  std::uint8_t sel = 0;
  EXPECT_EQ(socks5::parse_method_reply(unhex("0400"), sel).status, Status::bad);
  EXPECT_EQ(socks5::parse_method_reply(unhex("05"), sel).status, Status::incomplete);
}

TEST(Socks5, EncodeRejectsOversized) {
  EXPECT_FALSE(socks5::address_from_text(std::string(256, 'a') + ":80"));
  EXPECT_TRUE(socks5::address_from_text(std::string(255, 'a') + ":80"));
  EXPECT_FALSE(socks5::address_from_text("host:65536"));
  EXPECT_FALSE(socks5::address_from_text("host:http"));
  socks5::Address bad{socks5::atyp::domain, std::string(300, 'x'), 1};
  EXPECT_EQ(socks5::request(1, bad), "");
  EXPECT_EQ(socks5::udp_header(bad), "");
  // Unsplittable text encodes as 0.0.0.0 like GOST.
  EXPECT_EQ(hex(socks5::request(1, addr("garbage"))), "05010001000000000000");
}

TEST(Socks5Golden, UdpHeaders) {
  std::string dgram = socks5::udp_header(addr("8.8.8.8:53")) + "abc";
  EXPECT_EQ(hex(dgram), "00000001080808080035616263");
  std::string frame = socks5::udp_tun_header(3, addr("8.8.8.8:53")) + "abc";
  EXPECT_EQ(hex(frame), "0003ff01080808080035616263");

  socks5::UdpHeader h;
  auto r = socks5::parse_udp_header(frame, h);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.size, 10u);
  EXPECT_EQ(h.rsv, 3);
  EXPECT_EQ(h.frag, 0xFF);
  EXPECT_EQ(h.addr.to_string(), "8.8.8.8:53");
  // RSV/FRAG are not checked on standard datagrams.
  r = socks5::parse_udp_header(unhex("123405017f000001"
                                     "1f90"),
                               h);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(h.frag, 5);
  EXPECT_EQ(socks5::parse_udp_header(unhex("00000009"), h).status, Status::bad);
  EXPECT_EQ(socks5::parse_udp_header(unhex("000000"), h).status, Status::incomplete);
}

// ---- SOCKS4 / 4a ------------------------------------------------------------------------------

TEST(Socks4Golden, Requests) {
  EXPECT_EQ(hex(*socks4::request(socks4::cmd::connect, "93.184.216.34", 80, "bob", false)),
            "040100505db8d822"
            "626f6200");
  EXPECT_EQ(hex(*socks4::request(socks4::cmd::connect, "example.com", 443, "", true)),
            "040101bb00000001"
            "00"
            "6578616d706c652e636f6d00");
  EXPECT_FALSE(socks4::request(socks4::cmd::connect, "example.com", 80, "", false));
  EXPECT_FALSE(socks4::request(socks4::cmd::connect, std::string(256, 'h'), 80, "", true));
}

TEST(Socks4Golden, Replies) {
  EXPECT_EQ(hex(socks4::reply(socks4::code::granted)), "005a000000000000");
  EXPECT_EQ(hex(socks4::reply(socks4::code::failed)), "005b000000000000");
  EXPECT_EQ(hex(socks4::reply(socks4::code::rejected)), "005c000000000000");
  EXPECT_EQ(hex(socks4::reply(socks4::code::rejected_userid)), "005d000000000000");
  std::uint8_t cd = 0;
  EXPECT_EQ(socks4::parse_reply(unhex("005a000000000000"), cd).status, Status::complete);
  EXPECT_EQ(cd, 0x5A);
  EXPECT_EQ(socks4::parse_reply(unhex("045a000000000000"), cd).status, Status::bad);
  EXPECT_EQ(socks4::parse_reply(unhex("005a"), cd).status, Status::incomplete);
}

TEST(Socks4, ParseRequests) {
  socks4::Request req;
  auto r = socks4::parse_request(unhex("040100505db8d822626f6200"), req);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.size, 12u);
  EXPECT_FALSE(req.socks4a);
  EXPECT_EQ(req.userid, "bob");
  EXPECT_EQ(req.address(), "93.184.216.34:80");

  r = socks4::parse_request(unhex("040101bb00000001006578616d706c652e636f6d00"
                                  "ff"),
                            req);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(r.size, 21u);
  EXPECT_TRUE(req.socks4a);
  EXPECT_EQ(req.userid, "");
  EXPECT_EQ(req.address(), "example.com:443");

  // 0.0.0.0 is not the 4a marker (last byte must be non-zero).
  r = socks4::parse_request(unhex("0401005000000000"
                                  "00"),
                            req);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_FALSE(req.socks4a);
  EXPECT_EQ(req.address(), "0.0.0.0:80");
}

TEST(Socks4, ParseRejectsAndBounds) {
  socks4::Request req;
  EXPECT_EQ(socks4::parse_request(unhex("05010050"), req).status, Status::bad);
  EXPECT_EQ(socks4::parse_request(unhex("0403005000000001"), req).status, Status::bad);
  std::string full = unhex("040101bb00000001006578616d706c652e636f6d00");
  for (std::size_t n = 0; n < full.size(); ++n) {
    auto r = socks4::parse_request(std::string_view(full).substr(0, n), req);
    ASSERT_EQ(r.status, Status::incomplete) << n;
    EXPECT_GT(r.size, n);
  }
  // A USERID of 255 bytes is fine; 256 without a NUL is rejected.
  std::string head = unhex("040100505db8d822");
  EXPECT_EQ(socks4::parse_request(head + std::string(255, 'u') + '\0', req).status,
            Status::complete);
  EXPECT_EQ(socks4::parse_request(head + std::string(256, 'u'), req).status, Status::bad);
  std::string head4a = unhex("0401005000000001") + '\0';
  EXPECT_EQ(socks4::parse_request(head4a + std::string(256, 'h'), req).status, Status::bad);
}
