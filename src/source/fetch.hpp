// Reading a source once (docs/ARCHITECTURE.md "Sources"): a file, an HTTP GET, a Redis key. Each
// call is bounded in size and time and throws on failure (the loader keeps the last good data).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "source/text.hpp"

namespace gost::source {

struct FileOptions {
  std::string path;
};

// GOST's `redis` block. `type`: "set" (SMEMBERS), "list" (LRANGE 0 -1), "hash" (HGETALL); the key
// defaults to "gost" (go-gost/x internal/loader/redis.go).
struct RedisOptions {
  std::string addr;
  int db = 0;
  std::string username;
  std::string password;
  std::string key;
  std::string type;
};

struct HttpOptions {
  std::string url;
  std::chrono::nanoseconds timeout{0};  // 0 = kDefaultHttpTimeout
};

// Limits beyond GOST's (docs/PROTOCOLS.md "config: dynamic sources").
inline constexpr std::size_t kMaxSourceBytes = 16 << 20;  // a file, an HTTP body, a Redis reply
inline constexpr std::size_t kMaxRedisElements = 1 << 20;
inline constexpr std::chrono::seconds kDefaultHttpTimeout{10};
inline constexpr std::chrono::seconds kRedisTimeout{5};  // connect, AUTH, SELECT and the read

std::string read_file_text(const std::string& path);

// GET `url` (http only); the body of a 200 response, anything else throws.
awaitable<std::string> http_get(const HttpOptions& o);

// The key's members as `f` wants them: a set or a list as lines (each member parsed as a line), a
// hash as user → password pairs.
awaitable<Data> redis_fetch(const RedisOptions& o, Format f);

// One Redis command on a connection of its own (AUTH and SELECT first, as for a fetch), bounded by
// kRedisTimeout: its integer reply (0 for a reply of another type); an error reply throws.
awaitable<std::int64_t> redis_call(const RedisOptions& o, const std::vector<std::string>& argv);

// Used by the HTTP plugins too: one request, the status and the body (at most `max_body` bytes).
struct HttpResponse {
  unsigned status = 0;
  std::string body;
};
// Idle HTTP/1.1 connections kept for the next request to the same host (keep-alive, as Go's
// http.Client that GOST's plugins use): per worker (a connection lives on its io_context's
// thread), at most kMaxIdle per host and worker, closed when unused for kIdleFor.
class HttpConnPool {
 public:
  static constexpr std::size_t kMaxIdle = 4;
  static constexpr std::chrono::seconds kIdleFor{30};
  // An idle connection to `key` ("host:port") of the calling worker, if one is there.
  std::optional<tcp::socket> take(const asio::any_io_executor& ex, const std::string& key);
  // A connection whose exchange ended cleanly and which the server keeps open.
  void give(const asio::any_io_executor& ex, const std::string& key, tcp::socket s);

 private:
  struct Idle {
    tcp::socket socket;
    std::chrono::steady_clock::time_point since;
  };
  std::mutex mu_;
  std::map<std::pair<const void*, std::string>, std::vector<Idle>> idle_;
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::string content_type;
  std::string body;
  std::string authorization;
  std::chrono::nanoseconds timeout{0};
  std::size_t max_body = kMaxSourceBytes;
  // Set: the connection is taken from and given back to it (a stale idle connection that fails
  // before any answer byte is replaced by a new one, once); null: one connection per request,
  // "Connection: close".
  std::shared_ptr<HttpConnPool> pool;
};
awaitable<HttpResponse> http_request(const HttpRequest& r);

// Whether `url` is one http_request can fetch; the reason when not (for the config's error).
std::optional<std::string> unsupported_url(const std::string& url);

namespace detail {
// The length of the complete RESP value at the start of `buf`, 0 while incomplete; throws on a
// malformed value, an aggregate over kMaxRedisElements or nesting over 4 (hiredis 0.14 has no
// element limit: `*2000000000` would make it allocate 16 GB).
std::size_t resp_frame_length(std::string_view buf);
}  // namespace detail

}  // namespace gost::source
