// proto/wt: QUIC varints (RFC 9000 §16 and its appendix A.1 examples), the WebTransport stream
// preamble, the classification of a peer stream's first bytes and the SETTINGS patch
// (docs/PROTOCOLS.md "wt: wire").
#include <gtest/gtest.h>

#include "proto/wt.hpp"

namespace wt = gost::proto::wt;
using namespace std::string_literals;

TEST(WtCodec, VarintsOfRfc9000) {
  struct Case {
    std::string bytes;
    std::uint64_t value;
  } cases[] = {
      {"\xc2\x19\x7c\x5e\xff\x14\xe8\x8c"s, 151288809941952652ULL},
      {"\x9d\x7f\x3e\x7d"s, 494878333},
      {"\x7b\xbd"s, 15293},
      {"\x25"s, 37},
  };
  for (const auto& c : cases) {
    auto v = wt::read_varint(c.bytes);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->first, c.value);
    EXPECT_EQ(v->second, c.bytes.size());
    std::string out;
    wt::append_varint(out, c.value);
    EXPECT_EQ(out, c.bytes);
  }
  EXPECT_FALSE(wt::read_varint("\x7b"s));  // a two-byte varint cut short
  EXPECT_FALSE(wt::read_varint(""));
}

TEST(WtCodec, StreamPreamble) {
  // signal 0x41 (two bytes: 0x40 0x41), then the session ID (the CONNECT stream's ID).
  EXPECT_EQ(wt::stream_preamble(0), "\x40\x41\x00"s);
  EXPECT_EQ(wt::stream_preamble(4), "\x40\x41\x04"s);
  EXPECT_EQ(wt::stream_preamble(100), "\x40\x41\x40\x64"s);
}

TEST(WtCodec, ClassifiesTheStartOfAPeerStream) {
  auto k = wt::classify_stream("\x40\x41\x04hello"s);
  EXPECT_EQ(k.kind, wt::StreamStart::webtransport);
  EXPECT_EQ(k.session, 4u);
  EXPECT_EQ(k.length, 3u);
  EXPECT_EQ(wt::classify_stream("\x40"s).kind, wt::StreamStart::need_more);
  EXPECT_EQ(wt::classify_stream("\x40\x41"s).kind, wt::StreamStart::need_more);
  EXPECT_EQ(wt::classify_stream("\x40\x41\x80\x00"s).kind, wt::StreamStart::need_more);
  EXPECT_EQ(wt::classify_stream("\x01\x10"s).kind, wt::StreamStart::http3);         // HEADERS
  EXPECT_EQ(wt::classify_stream("\x40\x21\x00"s).kind, wt::StreamStart::http3);     // reserved
  EXPECT_EQ(wt::classify_stream("\x00\x05hello"s).kind, wt::StreamStart::invalid);  // DATA
  EXPECT_EQ(wt::classify_stream("\x04\x00"s).kind, wt::StreamStart::invalid);       // SETTINGS
}

TEST(WtCodec, AddsSettingsToTheControlStream) {
  // stream type 0, SETTINGS (4) of length 2: ENABLE_CONNECT_PROTOCOL (8) = 1; a GOAWAY after it
  std::string ctrl = "\x00\x04\x02\x08\x01"s + "\x07\x01\x02"s;
  auto out = wt::add_settings(ctrl, {{0x33, 1}, {0x2b603742, 1}});
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, "\x00\x04\x09\x08\x01\x33\x01\xab\x60\x37\x42\x01\x07\x01\x02"s);
  EXPECT_FALSE(wt::add_settings("\x00\x04\x05\x08\x01"s, {{0x33, 1}}));  // frame cut short
  EXPECT_FALSE(wt::add_settings("\x01\x04\x00"s, {{0x33, 1}}));          // not a control stream
  EXPECT_FALSE(wt::add_settings("\x00\x07\x00"s, {{0x33, 1}}));          // no SETTINGS first
}
