#include "source/fetch.hpp"

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <strings.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <tuple>

#include "core/address.hpp"

namespace gost::source {
namespace beast = boost::beast;
namespace bhttp = beast::http;

namespace {

struct ParsedUrl {
  std::string host;  // without brackets
  std::string port;
  std::string target;
};

std::optional<ParsedUrl> parse_http_url(std::string_view url, std::string* why) {
  constexpr std::string_view kScheme = "http://";
  if (url.size() < kScheme.size() || strncasecmp(url.data(), kScheme.data(), kScheme.size()) != 0) {
    if (why)
      *why = url.size() >= 8 && strncasecmp(url.data(), "https://", 8) == 0
                 ? "https is not supported for sources and plugins (http only)"
                 : "not an http:// URL";
    return std::nullopt;
  }
  url.remove_prefix(kScheme.size());
  auto end = url.find_first_of("/?#");
  std::string_view authority = url.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? std::string_view() : url.substr(end);
  if (auto h = rest.find('#'); h != std::string_view::npos) rest = rest.substr(0, h);
  if (authority.find('@') != std::string_view::npos) {
    if (why) *why = "user information in the URL is not supported";
    return std::nullopt;
  }
  std::optional<HostPort> hp;
  if (authority.size() > 2 && authority.front() == '[' && authority.back() == ']')
    hp = HostPort{std::string(authority.substr(1, authority.size() - 2)), ""};
  else if (authority.find(':') == std::string_view::npos)
    hp = HostPort{std::string(authority), ""};
  else
    hp = split_host_port(authority);
  if (!hp || hp->host.empty()) {
    if (why) *why = "no host in the URL";
    return std::nullopt;
  }
  ParsedUrl u;
  u.host = hp->host;
  u.port = hp->port.empty() ? "80" : hp->port;
  u.target = rest.empty() ? "/" : std::string(rest);
  if (u.target.front() == '?') u.target.insert(0, "/");
  return u;
}

}  // namespace

std::optional<std::string> unsupported_url(const std::string& url) {
  std::string why;
  if (parse_http_url(url, &why)) return std::nullopt;
  return why;
}

std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("open {}: {}", path, std::strerror(errno)));
  std::string text;
  char buf[65536];
  while (in) {
    in.read(buf, sizeof buf);
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxSourceBytes)
      throw std::runtime_error(fmt::format("read {}: larger than {} bytes", path, kMaxSourceBytes));
  }
  if (in.bad()) throw std::runtime_error(fmt::format("read {}: I/O error", path));
  return text;
}

std::optional<tcp::socket> HttpConnPool::take(const asio::any_io_executor& ex,
                                              const std::string& key) {
  const void* worker = &asio::query(ex, asio::execution::context);
  std::lock_guard lock(mu_);
  auto it = idle_.find({worker, key});
  if (it == idle_.end()) return std::nullopt;
  auto& v = it->second;
  auto now = std::chrono::steady_clock::now();
  std::optional<tcp::socket> out;
  while (!v.empty() && !out) {
    Idle i = std::move(v.back());
    v.pop_back();
    if (now - i.since < kIdleFor) out.emplace(std::move(i.socket));
  }
  std::erase_if(v, [&](const Idle& i) { return now - i.since >= kIdleFor; });
  if (v.empty()) idle_.erase(it);
  return out;
}

void HttpConnPool::give(const asio::any_io_executor& ex, const std::string& key, tcp::socket s) {
  const void* worker = &asio::query(ex, asio::execution::context);
  std::lock_guard lock(mu_);
  auto& v = idle_[{worker, key}];
  if (v.size() >= kMaxIdle) v.erase(v.begin());  // the oldest goes
  v.push_back({std::move(s), std::chrono::steady_clock::now()});
}

awaitable<HttpResponse> http_request(const HttpRequest& r) {
  std::string why;
  auto url = parse_http_url(r.url, &why);
  if (!url) throw std::runtime_error(fmt::format("{}: {}", r.url, why));
  auto ex = co_await asio::this_coro::executor;
  const auto timeout =
      r.timeout.count() > 0
          ? r.timeout
          : std::chrono::duration_cast<std::chrono::nanoseconds>(kDefaultHttpTimeout);
  const std::string key = join_host_port(url->host, url->port);
  // One deadline for the whole exchange (Go's http.Client.Timeout): resolve, connect, write, read.
  std::optional<tcp::socket> idle;
  if (r.pool) idle = r.pool->take(ex, key);
  bool reused = idle.has_value();
  beast::tcp_stream stream(idle ? std::move(*idle) : tcp::socket(ex));
  tcp::resolver resolver(ex);
  asio::steady_timer deadline(ex, timeout);
  bool expired = false;
  deadline.async_wait([&](error_code ec) {
    if (ec) return;
    expired = true;
    resolver.cancel();
    stream.socket().close(ec);
  });
  struct Cancel {
    asio::steady_timer& t;
    ~Cancel() { t.cancel(); }
  } cancel_on_exit{deadline};
  auto fail = [&](error_code ec, const char* what) -> std::runtime_error {
    if (expired)
      return std::runtime_error(
          fmt::format("{} {}: timeout after {}ms", r.method, r.url, timeout.count() / 1000000));
    return std::runtime_error(fmt::format("{} {}: {}: {}", r.method, r.url, what, ec.message()));
  };

  auto verb = bhttp::string_to_verb(r.method);
  if (verb == bhttp::verb::unknown) throw std::runtime_error("http: unknown method " + r.method);
  bhttp::request<bhttp::string_body> req{verb, url->target, 11};
  req.set(bhttp::field::host, key);
  req.set(bhttp::field::user_agent, "gost/" GOST_VERSION);
  if (!r.content_type.empty()) req.set(bhttp::field::content_type, r.content_type);
  if (!r.authorization.empty()) req.set(bhttp::field::authorization, r.authorization);
  if (!r.pool) req.set(bhttp::field::connection, "close");
  req.body() = r.body;
  req.prepare_payload();

  for (;;) {
    if (!stream.socket().is_open()) {
      auto [rec, endpoints] = co_await resolver.async_resolve(url->host, url->port, use_nothrow);
      if (rec || expired) throw fail(rec, "resolve");
      auto [cec, ep] = co_await asio::async_connect(stream.socket(), endpoints, use_nothrow);
      if (cec || expired) throw fail(cec, "connect");
    }
    auto [wec, wn] = co_await bhttp::async_write(stream, req, use_nothrow);
    beast::flat_buffer buf(64 * 1024);
    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(r.max_body);
    error_code hec;
    std::size_t hn = 0;
    if (!wec && !expired)
      std::tie(hec, hn) = co_await bhttp::async_read(stream, buf, parser, use_nothrow);
    if (reused && !expired && (wec || (hec && hn == 0 && buf.size() == 0))) {
      // An idle connection the server had closed: the request again on a new one.
      reused = false;
      error_code ignored;
      stream.socket().close(ignored);
      continue;
    }
    if (wec || expired) throw fail(wec, "write");
    if (hec == bhttp::error::body_limit)
      throw std::runtime_error(
          fmt::format("{} {}: body larger than {} bytes", r.method, r.url, r.max_body));
    if (hec || expired) throw fail(hec, "read");
    HttpResponse out;
    out.status = parser.get().result_int();
    out.body = std::move(parser.get().body());
    if (r.pool && parser.is_done() && parser.get().keep_alive() && buf.size() == 0)
      r.pool->give(ex, key, stream.release_socket());
    co_return out;
  }
}

awaitable<std::string> http_get(const HttpOptions& o) {
  HttpRequest r;
  r.url = o.url;
  r.timeout = o.timeout;
  auto res = co_await http_request(r);
  // Only a 200 counts (go-gost/x internal/loader/http.go).
  if (res.status != 200)
    throw std::runtime_error(fmt::format("GET {}: status {}", o.url, res.status));
  co_return std::move(res.body);
}

// ---- Redis -------------------------------------------------------------------------------

namespace detail {
namespace {

// Reads "<digits>\r\n" at `pos` (after the type byte) into `n`; false while incomplete.
bool read_number(std::string_view buf, std::size_t& pos, long long& n) {
  auto eol = buf.find("\r\n", pos);
  if (eol == std::string_view::npos) {
    if (buf.size() - pos > 32) throw std::runtime_error("redis: malformed reply");
    return false;
  }
  auto [p, ec] = std::from_chars(buf.data() + pos, buf.data() + eol, n);
  if (ec != std::errc() || p != buf.data() + eol)
    throw std::runtime_error("redis: malformed reply");
  pos = eol + 2;
  return true;
}

bool scan(std::string_view buf, std::size_t& pos, int depth) {
  if (pos >= buf.size()) return false;
  char type = buf[pos++];
  switch (type) {
    case '+':
    case '-':
    case ':': {
      auto eol = buf.find("\r\n", pos);
      if (eol == std::string_view::npos) return false;
      pos = eol + 2;
      return true;
    }
    case '$': {
      long long n = 0;
      if (!read_number(buf, pos, n)) return false;
      if (n < 0) return true;  // nil
      if (static_cast<unsigned long long>(n) > kMaxSourceBytes)
        throw std::runtime_error("redis: reply larger than the limit");
      if (buf.size() - pos < static_cast<std::size_t>(n) + 2) return false;
      pos += static_cast<std::size_t>(n);
      if (buf.compare(pos, 2, "\r\n") != 0) throw std::runtime_error("redis: malformed reply");
      pos += 2;
      return true;
    }
    case '*': {
      long long n = 0;
      if (!read_number(buf, pos, n)) return false;
      if (n < 0) return true;
      if (static_cast<unsigned long long>(n) > kMaxRedisElements)
        throw std::runtime_error("redis: reply with more elements than the limit");
      if (depth >= 4) throw std::runtime_error("redis: reply nested too deep");
      for (long long i = 0; i < n; ++i)
        if (!scan(buf, pos, depth + 1)) return false;
      return true;
    }
    default:
      throw std::runtime_error("redis: malformed reply");
  }
}

}  // namespace

std::size_t resp_frame_length(std::string_view buf) {
  std::size_t pos = 0;
  return scan(buf, pos, 0) ? pos : 0;
}

}  // namespace detail

namespace {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

template <class Args>
std::string format_command(const Args& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  int n = redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), argv.data(), lens.data());
  if (n < 0 || !cmd) throw std::runtime_error("redis: cannot format a command");
  std::string out(cmd, static_cast<std::size_t>(n));
  redisFreeCommand(cmd);
  return out;
}

std::string format_command(std::initializer_list<std::string_view> args) {
  return format_command<std::initializer_list<std::string_view>>(args);
}

// One complete reply from hiredis' reader, once resp_frame_length() vouched for its size.
Reply decode(std::string_view frame) {
  std::unique_ptr<redisReader, void (*)(redisReader*)> reader(redisReaderCreate(), redisReaderFree);
  if (!reader) throw std::bad_alloc();
  void* reply = nullptr;
  if (redisReaderFeed(reader.get(), frame.data(), frame.size()) != REDIS_OK ||
      redisReaderGetReply(reader.get(), &reply) != REDIS_OK || !reply)
    throw std::runtime_error(fmt::format("redis: {}", reader->errstr));
  return Reply(static_cast<redisReply*>(reply));
}

}  // namespace

namespace {

// One connection: [AUTH] [SELECT] then `command`, pipelined (go-redis sends AUTH and SELECT on
// connect); the command's reply, every reply bounded by resp_frame_length(); an error reply
// throws.
awaitable<Reply> redis_exchange(const RedisOptions& o, const std::string& command) {
  auto hp = split_host_port(o.addr);
  if (!hp || hp->host.empty() || hp->port.empty())
    throw std::runtime_error(fmt::format("redis: address \"{}\" is not host:port", o.addr));
  auto ex = co_await asio::this_coro::executor;
  tcp::socket sock(ex);
  tcp::resolver resolver(ex);
  asio::steady_timer deadline(ex, kRedisTimeout);
  bool expired = false;
  deadline.async_wait([&](error_code ec) {
    if (ec) return;
    expired = true;
    resolver.cancel();
    sock.close(ec);
  });
  struct Cancel {
    asio::steady_timer& t;
    ~Cancel() { t.cancel(); }
  } cancel_on_exit{deadline};
  auto fail = [&](error_code ec, const char* step) -> std::runtime_error {
    if (expired) return std::runtime_error(fmt::format("redis {}: {}: timeout", o.addr, step));
    return std::runtime_error(fmt::format("redis {}: {}: {}", o.addr, step, ec.message()));
  };

  auto [rec, endpoints] = co_await resolver.async_resolve(hp->host, hp->port, use_nothrow);
  if (rec || expired) throw fail(rec, "resolve");
  auto [cec, ep] = co_await asio::async_connect(sock, endpoints, use_nothrow);
  if (cec || expired) throw fail(cec, "connect");

  // One pipelined write: [AUTH] [SELECT] the command (go-redis sends AUTH and SELECT on connect).
  std::string out;
  int replies = 0;
  if (!o.password.empty()) {
    out += o.username.empty() ? format_command({"AUTH", o.password})
                              : format_command({"AUTH", o.username, o.password});
    ++replies;
  }
  if (o.db != 0) {
    out += format_command({"SELECT", std::to_string(o.db)});
    ++replies;
  }
  out += command;
  ++replies;
  auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(out), use_nothrow);
  if (wec || expired) throw fail(wec, "write");

  std::string buf;
  std::size_t scanned_at = 0;
  Reply last;
  for (int i = 0; i < replies;) {
    // Scan again when the buffer doubled or nothing more is waiting (a long reply is not rescanned
    // per chunk).
    std::size_t n = 0;
    if (!buf.empty() && (buf.size() >= 2 * scanned_at || sock.available() == 0)) {
      scanned_at = buf.size();
      n = detail::resp_frame_length(buf);
    }
    if (n == 0) {
      if (buf.size() > kMaxSourceBytes + 4096)
        throw std::runtime_error(fmt::format("redis {}: reply larger than the limit", o.addr));
      std::size_t old = buf.size();
      buf.resize(old + 65536);
      auto [rdec, rn] =
          co_await sock.async_read_some(asio::buffer(buf.data() + old, 65536), use_nothrow);
      buf.resize(old + rn);
      if (rdec || expired) throw fail(rdec, "read");
      continue;
    }
    Reply reply = decode(std::string_view(buf).substr(0, n));
    buf.erase(0, n);
    scanned_at = 0;
    ++i;
    if (reply->type == REDIS_REPLY_ERROR)
      throw std::runtime_error(
          fmt::format("redis {}: {}", o.addr, std::string_view(reply->str, reply->len)));
    last = std::move(reply);
  }

  co_return last;
}

}  // namespace

awaitable<Data> redis_fetch(const RedisOptions& o, Format f) {
  const std::string key = o.key.empty() ? "gost" : o.key;
  std::string what = o.type == "hash" ? "HGETALL" : o.type == "list" ? "LRANGE" : "SMEMBERS";
  const std::string command =
      what == "LRANGE" ? format_command({"LRANGE", key, "0", "-1"}) : format_command({what, key});
  Reply last = co_await redis_exchange(o, command);
  if (last->type != REDIS_REPLY_ARRAY)
    throw std::runtime_error(fmt::format("redis {}: {} {}: unexpected reply", o.addr, what, key));
  std::vector<std::string_view> items;
  for (std::size_t i = 0; i < last->elements; ++i) {
    const redisReply* e = last->element[i];
    if (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS)
      throw std::runtime_error(fmt::format("redis {}: {} {}: unexpected reply", o.addr, what, key));
    items.emplace_back(e->str, e->len);
  }
  Data d;
  if (what == "HGETALL") {
    // Field → value, as go-redis' HGetAll map (go-gost/x auth/auth.go reads it as a Mapper).
    for (std::size_t i = 0; i + 1 < items.size(); i += 2)
      if (!items[i].empty()) d.pairs.emplace_back(std::string(items[i]), std::string(items[i + 1]));
    if (f == Format::lines)
      for (auto& [k, v] : d.pairs) d.lines.push_back(k + " " + v);
    if (f == Format::lines) d.pairs.clear();
    co_return d;
  }
  // A set or a list: GOST joins the members with "\n" and parses the text.
  std::string text;
  for (auto s : items) {
    text.append(s);
    text.push_back('\n');
  }
  co_return parse(text, f);
}

awaitable<std::int64_t> redis_call(const RedisOptions& o, const std::vector<std::string>& argv) {
  const std::string command = format_command(argv);
  Reply r = co_await redis_exchange(o, command);
  co_return r->type == REDIS_REPLY_INTEGER ? static_cast<std::int64_t>(r->integer) : 0;
}

}  // namespace gost::source
