// PHT — Plain HTTP Tunnel codec (docs/PROTOCOLS.md "pht"): request targets and tokens, push bodies,
// pull lines and their HTTP/1.1 chunk framing, the authorize body, and the exact response heads our
// server writes. No I/O: net/pht drives these over a request carrier.
#pragma once

#include <cstddef>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/http.hpp"

namespace gost::proto::pht {

// ---- paths ("pht: endpoints and tokens") --------------------------------------------------------
inline constexpr std::string_view kDefaultAuthorizePath = "/authorize";
inline constexpr std::string_view kDefaultPushPath = "/push";
inline constexpr std::string_view kDefaultPullPath = "/pull";
// A configured path that does not start with '/' is replaced by the default
// ("pht: endpoints and tokens").
std::string normalize_path(std::string_view configured, std::string_view fallback);

// ---- limits ("pht: push", "pht: pull", "pht: limits") -------------------------------------------
// Raw bytes per push and per pull line: what GOST sends (32 KiB → 43 692 base64 characters).
inline constexpr std::size_t kMaxChunk = 32 * 1024;
// Longest line (without its '\n') either side accepts: GOST's line reader fails at 64 KiB, and
// a push line longer than this is answered 413 and ends the session.
inline constexpr std::size_t kMaxLine = 64 * 1024 - 1;
// Tokens are opaque, but ours are 20 characters; a longer one than this is a 400 (a bound on what
// a client can make the server remember).
inline constexpr std::size_t kMaxToken = 256;

// ---- request targets ("pht: endpoints and tokens", "pht: push") ---------------------------------
struct Target {
  std::string path;  // percent-decoded, without the query
  std::optional<std::string> token;
  bool bad_query = false;  // step 2's 400 (also: a token longer than kMaxToken)
};
// Origin form "/push?token=x" (or an absolute URI, whose path is used); nullopt when the path is
// unusable (not a path, bad %-escape): 400. The query is parsed as Go's url.ParseQuery:
// '&'-separated pairs, '+' = space, %XX escapes; a pair containing ';' or a bad escape makes the
// whole query bad. The first "token" value wins.
std::optional<Target> parse_target(std::string_view target);
// "/push?token=<escaped token>"
std::string request_target(std::string_view path, std::string_view token);
// Go's url.QueryEscape.
std::string query_escape(std::string_view s);

// ---- push ("pht: push") -------------------------------------------------------------------------
// Body of a push carrying `raw` (≤ kMaxChunk bytes): base64 + '\n'. Empty `raw` → "" (the close
// notification has an empty body).
std::string push_body(std::string_view raw);
// Decodes a push line (the body up to its first '\n', without it). Like Go's decoder, '\r' is
// ignored. nullopt = not base64 (step 7).
std::optional<std::string> decode_line(std::string_view line);
// Whether push and pull lines are encoded and decoded 24 bytes ↔ 32 characters at a time (AVX2,
// checked at run time); otherwise proto/base64's scalar code does all of it. Same results.
bool base64_simd();

// ---- pull ("pht: pull") -------------------------------------------------------------------------
// Appends one line carrying `raw` as one HTTP/1.1 chunk: "<hex>\r\n<base64>\n\r\n". Empty `raw`
// = the heartbeat "1\r\n\n\r\n".
void append_pull_chunk(std::string& out, std::string_view raw);
// The same line without chunk framing (HTTP/1.0 close-delimited body, HTTP/3 DATA).
void append_pull_line(std::string& out, std::string_view raw);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// Splits a pull body into lines as they arrive. feed() appends body bytes; next() returns the next
// complete line (without '\n'), nullopt when none is complete yet. A line longer than kMaxLine
// sets too_long() (the client stops, as GOST's does).
class LineReader {
 public:
  void feed(std::string_view body) { buf_.append(body); }
  std::optional<std::string> next();
  bool too_long() const { return too_long_; }
  bool empty() const { return buf_.size() == off_; }

 private:
  std::string buf_;
  std::size_t off_ = 0;
  bool too_long_ = false;
};

// ---- authorize ("pht: endpoints and tokens") ----------------------------------------------------
std::string authorize_body(std::string_view token);  // "token=<token>"
// The token of an authorize body; nullopt when the body does not start with "token=" or the
// token is empty (what old clients treat as failure).
std::optional<std::string> parse_authorize_body(std::string_view body);

// ---- what our server writes (HTTP/1.x) --------------------------------------------------------
// IMF-fixdate, as Go writes the Date header: "Mon, 02 Jan 2006 15:04:05 GMT".
std::string http_date(std::time_t t);
// http_date() of now, formatted once a second per thread.
const std::string& current_http_date();
std::string_view reason(int status);
// A response with an empty body: "HTTP/1.1 <status> <reason>\r\nDate: <date>\r\nContent-Length:
// 0\r\n\r\n" (plus "Connection: close" when `close`). Used for 200 (push), 400, 403, 206, 410,
// 413, 429.
std::string empty_response(int status, std::string_view date, int version_minor = 1,
                           bool close = false);
// The authorize answer: 200, Content-Type text/plain; charset=utf-8, body "token=<token>".
std::string authorize_response(std::string_view token, std::string_view date, int version_minor = 1,
                               bool close = false);
// 404 "404 page not found\n" as Go's http.NotFound writes it.
std::string not_found_response(std::string_view date, int version_minor = 1, bool close = false);
// The head of a pull: 200 with X-Accel-Buffering: no; chunked on HTTP/1.1, close-delimited on
// HTTP/1.0.
std::string pull_head(std::string_view date, int version_minor = 1);
// Go's answers to a request it cannot parse (written before closing the connection).
std::string bad_request_close();     // 400 Bad Request
std::string head_too_large_close();  // 431 Request Header Fields Too Large
inline constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// ---- what our client writes -------------------------------------------------------------------
// "<method> <target> HTTP/1.1\r\nHost: <authority>\r\nUser-Agent: Go-http-client/1.1\r\n"
// [Content-Length when `body` is set] + `headers` + "\r\n" + body. No Accept-Encoding: a pull
// must never come back compressed. A User-Agent in `headers` replaces the default.
std::string client_request(std::string_view method, std::string_view target,
                           std::string_view authority, const std::vector<http::Header>& headers,
                           const std::string* body);

}  // namespace gost::proto::pht
