// HTTP/1.x codec for the proxy handler and connector (docs/PROTOCOLS.md "http"): bounded head
// parsing, body framing, and the exact bytes GOST writes. No I/O.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gost::proto::http {

struct Header {
  std::string name;
  std::string value;
};

struct Headers {
  std::vector<Header> list;                             // wire order
  const std::string* get(std::string_view name) const;  // case-insensitive, first match
  bool has(std::string_view name) const { return get(name) != nullptr; }
  void remove(std::string_view name);             // all occurrences
  void set(std::string name, std::string value);  // replace all occurrences or append
  // True when a comma-separated header (e.g. Connection) holds `token` (case-insensitive).
  bool has_token(std::string_view name, std::string_view token) const;
};

struct Request {
  std::string method;
  std::string target;     // as sent: absolute URI, origin form or authority
  int version_minor = 1;  // HTTP/1.x
  Headers headers;
};

struct Response {
  int version_minor = 1;
  int status = 0;
  std::string reason;
  Headers headers;
};

enum class ParseStatus { complete, incomplete, bad, too_large };

struct Limits {
  std::size_t max_head = 64 * 1024;
  std::size_t max_headers = 128;
};

// Parses a request/response head at the start of `data`; on success `head_len` is its length
// including the blank line. Accepts CRLF and bare LF line endings.
ParseStatus parse_request(std::string_view data, Request& out, std::size_t& head_len,
                          const Limits& limits = {});
ParseStatus parse_response(std::string_view data, Response& out, std::size_t& head_len,
                           const Limits& limits = {});

// Go's textproto.CanonicalMIMEHeaderKey: "content-type" → "Content-Type".
std::string canonical_name(std::string_view name);
std::string_view reason_phrase(int status);

// ---- body framing ---------------------------------------------------------------------------
struct Framing {
  enum Kind { none, sized, chunked, until_close } kind = none;
  std::uint64_t length = 0;
};
// A request body: Transfer-Encoding chunked, else Content-Length, else none. nullopt = invalid.
std::optional<Framing> request_framing(const Request& r);
std::optional<Framing> response_framing(const Response& r, std::string_view request_method);

// Finds the end of a chunked body in a byte stream passed through unchanged.
class ChunkedScanner {
 public:
  // Consumes bytes; returns how many belong to the body (less than data.size() only once done).
  // Sets bad() on malformed input. With `payload`, the chunk data (the body without its framing)
  // is appended to it: the scanner doubles as a chunked-body decoder.
  std::size_t feed(std::string_view data, std::string* payload = nullptr);
  bool done() const { return state_ == State::done; }
  bool bad() const { return state_ == State::bad; }

 private:
  enum class State {
    size,
    size_ext,
    size_lf,
    data,
    data_cr,
    data_lf,
    trailer_start,
    trailer_line,
    trailer_lf,
    final_lf,
    done,
    bad
  };
  State state_ = State::size;
  std::uint64_t remaining_ = 0;
  int size_digits_ = 0;
  std::size_t line_len_ = 0;
};

// ---- what the server writes ("http: processing order" to "http: CONNECT") -----------------------
// The 407 of "http: authentication" (realm quoted; Proxy-Connection: close when the client asked
// for keep-alive).
std::string response_407(std::string_view realm, bool proxy_connection_keepalive);
// "HTTP/1.1 200 Connection established\r\nProxy-Agent: <agent>\r\n\r\n"
std::string response_connect_established(std::string_view proxy_agent);
// The skeleton of "http: processing order" (400/403/503): Connection: close first, then `headers`
// sorted by name.
std::string response_skeleton(int status, const std::vector<Header>& headers);
// Forward-proxy errors ("http: forward proxy") and the UDP answers ("http: UDP"):
// "HTTP/1.x <status>\r\nContent-Length: 0\r\n" then `headers` sorted by name.
std::string response_empty(int status, int version_minor = 1,
                           const std::vector<Header>& headers = {});

// ---- forwarding -------------------------------------------------------------------------------
// The upstream request of "http: forward proxy": origin-form request line, Host, User-Agent,
// framing, other headers sorted by canonical name, then Connection: close unless `keepalive`.
std::string serialize_upstream_request(const Request& r, std::string_view origin_target,
                                       std::string_view host, const Framing& framing,
                                       bool keepalive);
// The response re-serialised to the client ("http: forward proxy").
std::string serialize_client_response(const Response& r, const Framing& framing,
                                      int client_version_minor);

// ---- client (connector) side: the CONNECT request of "http: connector" --------------------------
std::string connect_request(std::string_view target,
                            std::optional<std::pair<std::string, std::string>> auth,
                            const std::vector<Header>& extra_headers, bool udp = false);

// ---- credentials and targets ------------------------------------------------------------------
// Proxy-Authorization "Basic <std base64>" → (user, pass), split at the first colon; a value
// without colon is the user with an empty password. Empty pair on any other form.
std::pair<std::string, std::string> parse_basic_auth(std::string_view header_value);
// GOST v2 Gost-Target / X-Gost-Target (docs/PROTOCOLS.md "http: request and target"): nullopt when
// it does not decode.
std::optional<std::string> decode_gost_target(std::string_view value);
std::string encode_gost_target(std::string_view host_port);

// Splits an absolute URI "http://host[:port]/path?q" into scheme, authority and origin-form
// path ("/" when empty). nullopt when `target` is not absolute.
struct AbsoluteUri {
  std::string scheme;     // lowercased
  std::string authority;  // host[:port], userinfo removed
  std::string path;       // origin form, "/" at least
};
std::optional<AbsoluteUri> split_absolute_uri(std::string_view target);

}  // namespace gost::proto::http
