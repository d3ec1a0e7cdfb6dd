// gRPC tunnel framing (proto/grpc): golden bytes of docs/PROTOCOLS.md "grpc: method and path",
// "grpc: framing", the streaming decoder across arbitrary splits, and malformed / oversized input.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "proto/grpc.hpp"

namespace pg = gost::proto::grpc;

namespace {

std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (!out.empty()) out += ' ';
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

// Decodes `in` fed in pieces of `step` bytes (a copy, decoded in place like GrpcStream does).
std::string decode(pg::ChunkDecoder& d, std::string in, std::size_t step) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += step) {
    std::string piece = in.substr(i, step);
    auto* p = reinterpret_cast<std::uint8_t*>(piece.data());
    std::size_t k = d.decode(p, piece.size(), p);
    out.append(piece.data(), k);
    if (d.failed()) break;
  }
  return out;
}

}  // namespace

TEST(GrpcCodec, MethodPath) {
  EXPECT_EQ(pg::method_path(""), "/GostTunel/Tunnel");
  EXPECT_EQ(pg::method_path("/"), "/GostTunel/Tunnel");
  EXPECT_EQ(pg::method_path("/foo"), "/foo/Tunnel");
  EXPECT_EQ(pg::method_path("foo/"), "/foo/Tunnel");
  EXPECT_EQ(pg::method_path("/a/b"), "/a/b");
  EXPECT_EQ(pg::method_path("/a/b/c"), "/a/b-c");
  EXPECT_EQ(pg::method_path("/a/b/c/d/"), "/a/b-c-d");
}

TEST(GrpcCodec, GoldenFrames) {
  EXPECT_EQ(hex(pg::encode_chunk("hello")), "00 00 00 00 07 0a 05 68 65 6c 6c 6f");
  EXPECT_EQ(hex(pg::encode_chunk("")), "00 00 00 00 00");
  std::string req(121, 'C');
  EXPECT_EQ(hex(pg::encode_chunk(req).substr(0, 7)), "00 00 00 00 7b 0a 79");
  std::string resp(62, 'H');
  EXPECT_EQ(hex(pg::encode_chunk(resp).substr(0, 7)), "00 00 00 00 40 0a 3e");
  std::string big(32768, 'x');
  auto f = pg::encode_chunk(big);
  EXPECT_EQ(hex(f.substr(0, 9)), "00 00 00 80 04 0a 80 80 02");
  EXPECT_EQ(f.size(), 9u + 32768u);
  // Varint length boundaries: 127 → 1 byte, 128 → 2, 16384 → 3.
  EXPECT_EQ(hex(pg::encode_chunk(std::string(127, 'a')).substr(0, 7)), "00 00 00 00 81 0a 7f");
  EXPECT_EQ(hex(pg::encode_chunk(std::string(128, 'a')).substr(0, 8)), "00 00 00 00 83 0a 80 01");
  EXPECT_EQ(hex(pg::encode_chunk(std::string(16384, 'a')).substr(0, 9)),
            "00 00 00 40 04 0a 80 80 01");
  std::uint8_t v[10];
  EXPECT_EQ(pg::put_varint(v, 300), 2u);
  EXPECT_EQ(v[0], 0xac);
  EXPECT_EQ(v[1], 0x02);
  EXPECT_EQ(pg::put_varint(v, ~0ull), 10u);
}

TEST(GrpcCodec, DecodeEverySplit) {
  std::string payload;
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) payload.push_back(static_cast<char>(rng()));
  std::string wire = pg::encode_chunk(payload.substr(0, 5)) + pg::encode_chunk("") +
                     pg::encode_chunk(payload.substr(5, 200)) +
                     pg::encode_chunk(payload.substr(205));
  for (std::size_t step = 1; step <= wire.size(); ++step) {
    pg::ChunkDecoder d;
    EXPECT_EQ(decode(d, wire, step), payload) << "step " << step;
    EXPECT_FALSE(d.failed());
    EXPECT_TRUE(d.at_boundary());
  }
}

TEST(GrpcCodec, BoundaryAndTruncation) {
  pg::ChunkDecoder d;
  std::string wire = pg::encode_chunk("hello");
  EXPECT_EQ(decode(d, wire.substr(0, 3), 3), "");
  EXPECT_FALSE(d.at_boundary());  // inside the prefix
  EXPECT_EQ(decode(d, wire.substr(3, 6), 6), "he");
  EXPECT_FALSE(d.at_boundary());  // inside the data
  EXPECT_EQ(decode(d, wire.substr(9), 10), "llo");
  EXPECT_TRUE(d.at_boundary());
}

TEST(GrpcCodec, UnknownFieldsSkipped) {
  // field 2 varint 150, field 3 fixed64, field 4 bytes "zz", field 5 fixed32, then data "ok",
  // then field 1 with a non-bytes wire type (varint: unknown, skipped).
  std::string msg = bytes({0x10, 0x96, 0x01, 0x19, 1, 2, 3, 4,    5, 6,   7,   8,    0x22, 2,
                           'z',  'z',  0x2d, 1,    2, 3, 4, 0x0a, 2, 'o', 'k', 0x08, 0x05});
  std::string wire = bytes({0, 0, 0, 0, static_cast<int>(msg.size())}) + msg;
  for (std::size_t step = 1; step <= wire.size(); ++step) {
    pg::ChunkDecoder d;
    EXPECT_EQ(decode(d, wire, step), "ok") << step;
    EXPECT_FALSE(d.failed()) << d.message();
    EXPECT_TRUE(d.at_boundary());
  }
}

TEST(GrpcCodec, Malformed) {
  struct Case {
    std::string wire;
    int status;
  };
  std::vector<Case> cases = {
      {bytes({1, 0, 0, 0, 2, 0x0a, 0}), pg::kInternal},              // compressed
      {bytes({2, 0, 0, 0, 2, 0x0a, 0}), pg::kInternal},              // bad flag
      {bytes({0, 0, 0x40, 0, 1}), pg::kResourceExhausted},           // 4 MiB + 1
      {bytes({0, 0xff, 0xff, 0xff, 0xff}), pg::kResourceExhausted},  // 4 GiB
      {bytes({0, 0, 0, 0, 2, 0x0a, 5, 'a'}), pg::kInternal},         // field longer than message
      {bytes({0, 0, 0, 0, 1, 0x0a}), pg::kInternal},                 // length missing
      {bytes({0, 0, 0, 0, 2, 0x0a, 0x80}), pg::kInternal},           // truncated varint
      {bytes({0, 0, 0, 0, 1, 0x00}), pg::kInternal},                 // field number 0
      {bytes({0, 0, 0, 0, 1, 0x0b}), pg::kInternal},                 // group (wire type 3)
      {bytes({0, 0, 0, 0, 1, 0x0e}), pg::kInternal},                 // wire type 6
      {bytes({0, 0, 0, 0, 3, 0x09, 1, 2}), pg::kInternal},           // fixed64 truncated
      {bytes({0, 0, 0, 0, 12, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
              0x01}),
       pg::kInternal},  // 11-byte varint
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    for (std::size_t step : {std::size_t{1}, cases[i].wire.size()}) {
      pg::ChunkDecoder d;
      decode(d, cases[i].wire, step);
      EXPECT_TRUE(d.failed()) << "case " << i;
      EXPECT_EQ(d.status(), cases[i].status) << "case " << i;
      EXPECT_FALSE(d.message().empty());
      // Failed for good.
      std::uint8_t more[] = {0, 0, 0, 0, 0};
      EXPECT_EQ(d.decode(more, 5, more), 0u);
      EXPECT_TRUE(d.failed());
    }
  }
}

TEST(GrpcCodec, MaxMessageBound) {
  pg::ChunkDecoder d(100);
  EXPECT_EQ(decode(d, pg::encode_chunk(std::string(98, 'a')), 7), std::string(98, 'a'));
  EXPECT_FALSE(d.failed());  // 100 bytes: at the limit
  decode(d, pg::encode_chunk(std::string(99, 'a')), 7);
  EXPECT_TRUE(d.failed());
  EXPECT_EQ(d.status(), pg::kResourceExhausted);
  // A 4 MiB message (the default bound) passes.
  pg::ChunkDecoder big;
  std::string data((4 << 20) - 6, 'b');
  EXPECT_EQ(decode(big, pg::encode_chunk(data), 1 << 16).size(), data.size());
  EXPECT_FALSE(big.failed());
}
