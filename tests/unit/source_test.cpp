// GOST's source text formats, the Redis frame guard in front of hiredis, the plugin answers'
// decoding, and an auther's table updated by a source (docs/ARCHITECTURE.md "Sources").
#include <gtest/gtest.h>

#include <stdexcept>

#include "core/auth.hpp"
#include "source/fetch.hpp"
#include "source/plugin.hpp"
#include "source/text.hpp"

namespace gost::source {
namespace {

using Lines = std::vector<std::string>;

TEST(SourceText, LinesStripCommentsAndSpace) {
  EXPECT_EQ(
      parse_lines("10.0.0.1\n  192.168.0.0/16  # office\r\n# all comment\n\n\t*.example.com\t"),
      (Lines{"10.0.0.1", "192.168.0.0/16", "*.example.com"}));
  EXPECT_EQ(parse_lines(""), Lines{});
  EXPECT_EQ(parse_lines("#only\n   \n"), Lines{});
  EXPECT_EQ(parse_lines("a#b"), Lines{"a"});
}

TEST(SourceText, PairsFollowGostAuthFile) {
  Pairs p = parse_pairs(
      "alice secret\n"
      "bob\tpass word  \n"
      "# carol x\n"
      "  dave\n"
      "erin #notacomment\n"
      "\t\n");
  Pairs want{{"alice", "secret"}, {"bob", "pass word"}, {"dave", ""}, {"erin", "#notacomment"}};
  EXPECT_EQ(p, want);
}

TEST(SourceText, PairsOfMalformedInputAreSkippedNotFatal) {
  // Binary junk and very long lines: no crash, the lines that are pairs survive.
  std::string junk("\x00\x01\xff \n", 5);
  junk += std::string(100000, 'x') + "\nok pw\n";
  Pairs p = parse_pairs(junk);
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p.back(), (std::pair<std::string, std::string>{"ok", "pw"}));
}

TEST(SourceRedis, FrameLength) {
  using detail::resp_frame_length;
  EXPECT_EQ(resp_frame_length("+OK\r\n"), 5u);
  EXPECT_EQ(resp_frame_length("+OK\r"), 0u);
  EXPECT_EQ(resp_frame_length("-ERR wrong\r\n+OK\r\n"), 12u);
  EXPECT_EQ(resp_frame_length("*2\r\n$1\r\na\r\n$2\r\nbc\r\n"), 19u);
  EXPECT_EQ(resp_frame_length("*2\r\n$1\r\na\r\n$2\r\nb"), 0u);
  EXPECT_EQ(resp_frame_length("*0\r\n"), 4u);
  EXPECT_EQ(resp_frame_length("$-1\r\n"), 5u);
}

TEST(SourceRedis, HostileFramesAreRefusedBeforeHiredisSeesThem) {
  using detail::resp_frame_length;
  EXPECT_THROW(resp_frame_length("*2000000000\r\n"), std::runtime_error);
  EXPECT_THROW(resp_frame_length("$99999999999\r\n"), std::runtime_error);
  EXPECT_THROW(resp_frame_length("?what\r\n"), std::runtime_error);
  EXPECT_THROW(resp_frame_length("$3\r\nabcXY"), std::runtime_error);
  EXPECT_THROW(resp_frame_length("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), std::runtime_error);
  EXPECT_THROW(resp_frame_length("*x\r\n"), std::runtime_error);
  // A length line that never ends is refused once it is longer than any number.
  EXPECT_THROW(resp_frame_length("*" + std::string(100, '1')), std::runtime_error);
}

TEST(SourcePlugin, AuthAnswerAsGoDecodesIt) {
  using detail::decode_auth_answer;
  auto a = decode_auth_answer(R"({"ok":true,"id":"u1"})");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->ok);
  EXPECT_EQ(a->id, "u1");
  a = decode_auth_answer(R"({"ok":true})");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, "");
  EXPECT_FALSE(decode_auth_answer(R"({"ok":"true"})"));  // a string is not a bool in Go
  EXPECT_FALSE(decode_auth_answer(R"({"ok":true,"id":5})"));
  EXPECT_FALSE(decode_auth_answer("[true]"));
  EXPECT_FALSE(decode_auth_answer("not json"));
  EXPECT_FALSE(decode_auth_answer(std::string(100, '[')));  // depth bound
  a = decode_auth_answer(R"({"ok":false,"id":"u1"})");
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->ok);
  EXPECT_EQ(detail::decode_ok_answer(R"({"ok":true,"x":1})"), std::optional<bool>(true));
  EXPECT_EQ(detail::decode_ok_answer(R"({})"), std::optional<bool>(false));
}

TEST(SourceUrl, HttpOnly) {
  EXPECT_FALSE(unsupported_url("http://127.0.0.1:8080/users?x=1"));
  EXPECT_FALSE(unsupported_url("HTTP://[::1]/"));
  ASSERT_TRUE(unsupported_url("https://example.com/"));
  EXPECT_NE(unsupported_url("https://example.com/")->find("https"), std::string::npos);
  EXPECT_TRUE(unsupported_url("ftp://x/"));
  EXPECT_TRUE(unsupported_url("http://user:pw@x/"));
  EXPECT_TRUE(unsupported_url("http:///path"));
}

TEST(SourceAuther, LoadedUsersMergeWithInlineAndReachCopies) {
  Auther a;
  a.add("inline", "p1");
  Auther copy = a;  // what each service's Authenticator holds
  EXPECT_TRUE(copy.authenticate("inline", "p1"));
  EXPECT_FALSE(copy.authenticate("loaded", "p2"));
  a.set_loaded({{"loaded", "p2"}, {"inline", "override"}});
  EXPECT_TRUE(copy.authenticate("loaded", "p2"));
  EXPECT_TRUE(copy.authenticate("inline", "override"));  // a loaded entry wins (GOST's merge)
  EXPECT_FALSE(copy.authenticate("inline", "p1"));
  a.set_loaded({});
  EXPECT_FALSE(copy.authenticate("loaded", "p2"));
  EXPECT_TRUE(copy.authenticate("inline", "p1"));
}

}  // namespace
}  // namespace gost::source
