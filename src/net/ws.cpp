#include "net/ws.hpp"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>

#include "core/address.hpp"
#include "core/buffer_pool.hpp"
#include "core/buffered_stream.hpp"
#include "core/timeout.hpp"
#include "net/http_io.hpp"

namespace gost::net {
namespace {

namespace ws = proto::ws;
namespace http = proto::http;
using Clock = std::chrono::steady_clock;
using std::chrono::nanoseconds;

constexpr std::size_t kServerFrame = kRelayBufferSize;           // default payload per server frame
constexpr std::size_t kClientFrame = 4096;                       // gorilla's default write buffer
constexpr auto kControlWriteTimeout = std::chrono::seconds(10);  // gorilla's writeWait / GOST ping
constexpr int kMaxRequestsPerConnection = 32;                    // error answers on one connection
constexpr auto kLingerTime = std::chrono::milliseconds(500);

error_code protocol_error() { return make_error_code(boost::system::errc::protocol_error); }

// Masking keys from OpenSSL's generator, drawn in batches (RFC 6455 §5.3 wants them unpredictable).
ws::MaskKey random_mask() {
  thread_local std::array<std::uint8_t, 256> pool;
  thread_local std::size_t used = pool.size();
  if (used + 4 > pool.size()) {
    RAND_bytes(pool.data(), static_cast<int>(pool.size()));
    used = 0;
  }
  ws::MaskKey k;
  std::memcpy(k.data(), pool.data() + used, 4);
  used += 4;
  return k;
}

// State shared by the stream and its keep-alive coroutine, which may outlive the stream object
// by one wake-up.
struct Core {
  Core(StreamPtr s, WsStreamOptions o)
      : inner(std::move(s)),
        opts(o),
        decoder(!o.client, o.limits),
        write_done(inner->executor(), asio::steady_timer::time_point::max()),
        keepalive_timer(inner->executor()) {}

  StreamPtr inner;
  WsStreamOptions opts;
  ws::Decoder decoder;

  // One frame at a time on the wire: data writes, Pong/Close replies and Pings take turns.
  bool writing = false;
  asio::steady_timer write_done;  // never expires; cancel() wakes the waiters
  bool write_shut = false;        // shutdown_write() done (or the write side failed)

  bool eof = false;  // a Close frame or a transport EOF at a frame boundary
  error_code read_error;
  bool close_received = false;
  std::uint16_t close_code = ws::kCloseNoStatus;

  bool closed = false;
  asio::steady_timer keepalive_timer;
  Clock::time_point pong_deadline{};

  awaitable<void> lock_write() {
    while (writing) co_await write_done.async_wait(use_nothrow);
    writing = true;
  }
  void unlock_write() {
    writing = false;
    write_done.cancel();
  }

  // A control frame (payload ≤ 125), masked when we are the client; returns its size.
  std::size_t encode_control(std::uint8_t* out, ws::Opcode op,
                             std::span<const std::uint8_t> payload) const {
    const std::size_t len = std::min(payload.size(), ws::kMaxControlPayload);
    std::size_t n = 0;
    if (opts.client) {
      auto key = random_mask();
      n = ws::encode_header(out, true, op, len, &key);
      ws::mask_copy(out + n, payload.data(), len, key);
    } else {
      n = ws::encode_header(out, true, op, len, nullptr);
      std::memcpy(out + n, payload.data(), len);
    }
    return n + len;
  }

  // Writes one control frame between data frames.
  awaitable<void> write_control(ws::Opcode op, std::span<const std::uint8_t> payload,
                                error_code& ec) {
    std::array<std::uint8_t, ws::kMaxHeader + ws::kMaxControlPayload> frame;
    const std::size_t n = encode_control(frame.data(), op, payload);
    // Bounded, including the wait for a data frame in progress: a peer that reads nothing gets
    // the connection closed.
    Stream& raw = *inner;
    Deadline deadline(raw.executor(), kControlWriteTimeout, [&raw] { raw.close(); });
    co_await lock_write();
    if (write_shut || closed) {
      unlock_write();
      ec = asio::error::broken_pipe;
      co_return;
    }
    co_await write_all(raw, asio::buffer(frame.data(), n), ec);
    if (ec) write_shut = true;
    unlock_write();
  }

  // A protocol violation by the peer: say why in a Close frame (as gorilla does), then drop.
  awaitable<void> fail(std::uint16_t code, const std::string& reason) {
    read_error = code == ws::kCloseMessageTooBig
                     ? make_error_code(boost::system::errc::message_size)
                     : protocol_error();
    auto payload = ws::close_payload(code, reason.substr(0, ws::kMaxControlPayload - 2));
    error_code ec;
    co_await write_control(ws::Opcode::close,
                           {reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()},
                           ec);
    write_shut = true;
    if (!ec) co_await inner->shutdown_write(ec);
    inner->close();
  }

  void refresh_pong_deadline() {
    if (opts.keepalive.count() > 0) pong_deadline = Clock::now() + 2 * opts.keepalive;
  }

  // Decodes `n` bytes at `p` in place and handles the control frames among them. Returns the
  // number of data bytes now at `p`.
  awaitable<std::size_t> process(std::uint8_t* p, std::size_t n, error_code& ec) {
    std::size_t in = 0, out = 0;
    while (in < n) {
      auto r = decoder.decode(p + in, n - in, p + out);
      in += r.consumed;
      out += r.produced;
      switch (r.event) {
        case ws::Decoder::Event::none:
          break;
        case ws::Decoder::Event::ping: {
          // A failed Pong shows up on the write side; reading goes on.
          error_code wec;
          if (!write_shut) co_await write_control(ws::Opcode::pong, decoder.control_payload(), wec);
          break;
        }
        case ws::Decoder::Event::pong:
          refresh_pong_deadline();
          break;
        case ws::Decoder::Event::close:
          close_received = true;
          close_code = decoder.close_code();
          eof = true;
          co_return out;
        case ws::Decoder::Event::error:
          co_await fail(decoder.close_code(), decoder.error_reason());
          ec = read_error;
          co_return 0;
      }
    }
    co_return out;
  }

  // Transport read ended with `e`: EOF is clean only between frames.
  void read_failed(error_code& e) {
    if (e == asio::error::eof) {
      if (decoder.at_frame_boundary()) {
        eof = true;
        return;
      }
      e = protocol_error();  // cut inside a frame
    }
    if (!read_error) read_error = e;  // a keep-alive timeout that closed the transport stays
    e = read_error;
  }
};

// Client keep-alive (docs/PROTOCOLS.md "ws: framing"): Ping every interval; no Pong for 2 ×
// interval → drop.
awaitable<void> keepalive_loop(std::shared_ptr<Core> c) {
  const auto interval = c->opts.keepalive;
  auto next_ping = Clock::now() + interval;
  c->refresh_pong_deadline();
  for (;;) {
    c->keepalive_timer.expires_at(std::min(next_ping, c->pong_deadline));
    co_await c->keepalive_timer.async_wait(use_nothrow);
    if (c->closed || c->write_shut || c->eof || c->read_error) co_return;
    const auto now = Clock::now();
    if (now >= c->pong_deadline) {
      c->read_error = asio::error::timed_out;
      c->inner->close();
      co_return;
    }
    if (now >= next_ping) {
      next_ping = now + interval;
      error_code ec;
      co_await c->write_control(ws::Opcode::ping, {}, ec);
      if (ec || c->closed) co_return;
    }
  }
}

awaitable<void> linger_close(Stream& s);

awaitable<void> close_after_linger(std::shared_ptr<Core> c) {
  co_await linger_close(*c->inner);
  c->inner->close();
}

class WsStream final : public Stream {
 public:
  WsStream(StreamPtr inner, WsStreamOptions o) {
    if (o.frame_size == 0) o.frame_size = o.client ? kClientFrame : kServerFrame;
    core_ = std::make_shared<Core>(std::move(inner), o);
    if (o.client && o.keepalive.count() > 0) {
      auto ex = core_->inner->executor();
      asio::co_spawn(ex, keepalive_loop(core_), asio::detached);
    }
  }
  ~WsStream() override { close(); }

  asio::any_io_executor executor() override { return core_->inner->executor(); }

  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    Core& c = *core_;
    ec = {};
    auto* p = static_cast<std::uint8_t*>(buf.data());
    std::size_t cap = buf.size();
    if (c.opts.read_size > 0) cap = std::min(cap, c.opts.read_size);
    while (cap > 0) {
      if (c.read_error) {
        ec = c.read_error;
        co_return 0;
      }
      if (c.eof) {
        ec = asio::error::eof;
        co_return 0;
      }
      std::size_t n = co_await c.inner->read_some(asio::buffer(p, cap), ec);
      if (ec) {
        c.read_failed(ec);
        continue;
      }
      std::size_t out = co_await c.process(p, n, ec);
      if (ec) co_return 0;
      if (out > 0) co_return out;
    }
    co_return 0;
  }

  // Ready only once data payload is next: frame headers and control frames are consumed here
  // byte-exactly (never past the start of payload), so a tunnel that is idle or only pinged holds
  // no data buffer.
  awaitable<void> wait_readable(error_code& ec) override {
    Core& c = *core_;
    ec = {};
    std::array<std::uint8_t, ws::kMaxHeader + ws::kMaxControlPayload> small;
    for (;;) {
      if (c.eof || c.read_error || c.decoder.in_data()) co_return;
      co_await c.inner->wait_readable(ec);
      if (ec) co_return;
      std::size_t want = std::min(c.decoder.bytes_before_data(), small.size());
      std::size_t n = co_await c.inner->read_some(asio::buffer(small.data(), want), ec);
      if (ec) {
        c.read_failed(ec);
        ec = {};
        continue;  // read_some() reports it
      }
      co_await c.process(small.data(), n, ec);
      if (ec) {
        ec = {};
        continue;
      }
    }
  }

  // Payload comes straight from the inner stream (no buffer of ours); anything else there first
  // (a frame header, a control frame) is wait_readable()'s to consume.
  Poll poll_readable() override {
    Core& c = *core_;
    if (c.eof || c.read_error) return {Poll::ready};
    Poll p = c.inner->poll_readable();
    if (c.decoder.in_data() || p.kind != Poll::ready) return p;
    return {};
  }

  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    Core& c = *core_;
    ec = {};
    if (buf.size() == 0) co_return 0;
    co_await c.lock_write();
    std::size_t n = 0;
    if (c.write_shut || c.closed) {
      ec = asio::error::broken_pipe;
    } else {
      const auto* data = static_cast<const std::uint8_t*>(buf.data());
      // No conditional expression around co_await (GCC 12, README "Notes for developers").
      if (c.opts.client)
        n = co_await write_client(data, buf.size(), ec);
      else
        n = co_await write_server(data, buf.size(), ec);
      if (ec) c.write_shut = true;  // a frame cut short: nothing more may follow it
    }
    c.unlock_write();
    co_return ec ? 0 : n;
  }

  awaitable<void> shutdown_write(error_code& ec) override {
    Core& c = *core_;
    ec = {};
    co_await c.lock_write();
    if (!c.write_shut && !c.closed) {
      c.write_shut = true;
      // Half-close is the RFC close handshake: our Close frame ends our direction (we keep
      // reading until the peer's Close or EOF). A transport FIN, which is what GOST sends, would
      // make a reverse proxy such as nginx drop both directions; GOST peers take the Close
      // frame as the end of the tunnel, as they do a FIN. A peer that closed first gets its
      // code echoed, and the transport is then half-closed too.
      std::uint16_t code = ws::kCloseNormal;
      if (c.close_received) code = c.close_code;
      auto payload = ws::close_payload(code);
      std::array<std::uint8_t, ws::kMaxHeader + 2> frame;
      std::size_t n =
          c.encode_control(frame.data(), ws::Opcode::close,
                           {reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()});
      co_await write_all(*c.inner, asio::buffer(frame.data(), n), ec);
      if (!ec && c.close_received) co_await c.inner->shutdown_write(ec);
    }
    c.unlock_write();
  }

  // Closing a socket with unread input resets the connection, and the reset throws away what we
  // sent that the peer has not received yet. A stream inside this one can end before the peer's
  // Close frame is read: a TLS stream (GOST's socks5 TLS method over ws) reports EOF at the
  // close_notify that comes just before it, so the Close sat unread — 1 in 10 half-closed
  // tunnels lost the last ~900 KiB of their reply. So when our Close has gone out but the peer's
  // has not been read, the transport is half-closed and drained until the peer's EOF (at most
  // kLingerTime, 64 KiB) before it closes.
  void close() override {
    Core& c = *core_;
    if (c.closed) return;
    c.closed = true;
    c.keepalive_timer.cancel();
    if (c.write_shut && !c.eof && !c.read_error) {
      asio::co_spawn(c.inner->executor(), close_after_linger(core_), asio::detached);
      return;
    }
    c.inner->close();
  }

  std::string remote_address() const override { return core_->inner->remote_address(); }
  std::string local_address() const override { return core_->inner->local_address(); }

 private:
  // One unmasked frame; over plain TCP header and payload leave in one gather write.
  awaitable<std::size_t> write_server(const std::uint8_t* data, std::size_t len, error_code& ec) {
    Core& c = *core_;
    std::size_t n = std::min(len, c.opts.frame_size);
    std::uint8_t header[ws::kMaxHeader];
    if (tcp::socket* sock = c.inner->raw_tcp_write()) {
      std::size_t h = ws::encode_header(header, true, ws::Opcode::binary, n, nullptr);
      std::array<asio::const_buffer, 2> bufs{asio::buffer(header, h), asio::buffer(data, n)};
      auto [e, written] = co_await asio::async_write(*sock, bufs, use_nothrow);
      (void)written;
      ec = e;
      co_return n;
    }
    // Other transports (TLS ...): one copy into a pooled buffer, so the frame is one write.
    RelayBuffer out;
    n = std::min(n, RelayBuffer::size() - ws::kMaxHeader);
    std::size_t h = ws::encode_header(reinterpret_cast<std::uint8_t*>(out.data()), true,
                                      ws::Opcode::binary, n, nullptr);
    std::memcpy(out.data() + h, data, n);
    co_await write_all(*c.inner, asio::buffer(out.data(), h + n), ec);
    co_return n;
  }

  // One message, fragmented at the frame size (first frame binary, then continuations, the last
  // with FIN), masked into a pooled buffer and written at once: a small one when the message
  // fits (a short tunnel's write then holds 16 KiB, not 64, while the peer is slow).
  awaitable<std::size_t> write_client(const std::uint8_t* data, std::size_t len, error_code& ec) {
    const std::size_t f = core_->opts.frame_size;
    const std::size_t frames = f == 0 ? 1 : (len + f - 1) / f;
    if (len + frames * ws::kMaxHeader <= SmallBuffer::size())
      co_return co_await write_client_into<SmallBuffer>(data, len, ec);
    co_return co_await write_client_into<RelayBuffer>(data, len, ec);
  }

  template <class Buffer>
  awaitable<std::size_t> write_client_into(const std::uint8_t* data, std::size_t len,
                                           error_code& ec) {
    Core& c = *core_;
    const std::size_t f = c.opts.frame_size;
    const std::size_t room = Buffer::size();
    const std::size_t per_frame = f + ws::header_size(f, true);
    std::size_t cap = room / per_frame * f;
    if (std::size_t rest = room % per_frame; rest > ws::kMaxHeader) cap += rest - ws::kMaxHeader;
    const std::size_t total = std::min(len, cap);
    Buffer out;
    auto* o = reinterpret_cast<std::uint8_t*>(out.data());
    std::size_t pos = 0, done = 0;
    while (done < total) {
      const std::size_t chunk = std::min(f, total - done);
      const auto key = random_mask();
      const auto op = done == 0 ? ws::Opcode::binary : ws::Opcode::continuation;
      pos += ws::encode_header(o + pos, done + chunk == total, op, chunk, &key);
      ws::mask_copy(o + pos, data + done, chunk, key);
      pos += chunk;
      done += chunk;
    }
    co_await write_all(*c.inner, asio::buffer(out.data(), pos), ec);
    co_return total;
  }

  std::shared_ptr<Core> core_;
};

// ---- options ------------------------------------------------------------------------------------

std::optional<std::string> first_string(const config::Metadata& md,
                                        std::initializer_list<std::string_view> keys) {
  for (auto k : keys)
    if (auto v = md.get_string(k)) return v;
  return std::nullopt;
}

std::optional<nanoseconds> first_duration(const config::Metadata& md,
                                          std::initializer_list<std::string_view> keys) {
  for (auto k : keys)
    if (auto v = md.get_duration(k)) return v;
  return std::nullopt;
}

std::optional<std::int64_t> first_int(const config::Metadata& md,
                                      std::initializer_list<std::string_view> keys) {
  for (auto k : keys)
    if (auto v = md.get_int(k)) return v;
  return std::nullopt;
}

bool valid_header_value(std::string_view v) {
  for (unsigned char c : v)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  return true;
}

bool valid_header_name(std::string_view n) {
  if (n.empty()) return false;
  for (unsigned char c : n)
    if (c <= 0x20 || c >= 0x7f || std::strchr("()<>@,;:\\\"/[]?={}", c)) return false;
  return true;
}

// The `header` map: names canonicalised as Go's http.Header.Add does.
std::vector<http::Header> header_map(const config::Metadata& md, std::string_view where) {
  std::string_view key;
  const auto* v = md.find_first({"ws.header", "header"}, &key);
  if (!v) return {};
  if (!v->is_map()) throw config::ConfigError(fmt::format("{}: \"{}\" must be a map", where, key));
  std::vector<http::Header> out;
  for (const auto& [name, value] : std::get<config::ValueMap>(v->v)) {
    std::string text = value.as_string();
    if (!valid_header_name(name) || !valid_header_value(text))
      throw config::ConfigError(
          fmt::format("{}: \"{}\": invalid header \"{}: {}\"", where, key, name, text));
    out.push_back({http::canonical_name(name), text});
  }
  return out;
}

void reject_compression(const config::Metadata& md, std::string_view where) {
  for (std::string_view key : {"ws.enableCompression", "enableCompression"}) {
    if (!md.find(key)) continue;
    if (md.get_bool(key).value_or(false))
      throw config::ConfigError(fmt::format(
          "{}: option \"{}\" (permessage-deflate) is not supported by this implementation", where,
          key));
    return;
  }
}

// readBufferSize / writeBufferSize: positive, bounded by what one pooled buffer holds.
std::size_t buffer_size(const config::Metadata& md, std::initializer_list<std::string_view> keys,
                        std::string_view where) {
  constexpr auto kMax = static_cast<std::int64_t>(kRelayBufferSize - ws::kMaxHeader);
  for (auto key : keys) {
    auto v = md.get_int(key);
    if (!v) continue;
    if (*v <= 0) return 0;  // the default, as in gorilla
    if (*v > kMax)
      throw config::ConfigError(
          fmt::format("{}: \"{}\" = {} is larger than the maximum {}", where, key, *v, kMax));
    return static_cast<std::size_t>(*v);
  }
  return 0;
}

void read_buffer_sizes(const config::Metadata& md, WsStreamOptions& o, std::string_view where) {
  o.read_size = buffer_size(md, {"ws.readBufferSize", "readBufferSize"}, where);
  o.frame_size = buffer_size(md, {"ws.writeBufferSize", "writeBufferSize"}, where);
}

std::string current_http_date() {
  auto now = std::chrono::system_clock::now();
  return ws::http_date(
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
}

// After a final answer: half-close, then let the client read it before the socket goes (closing
// with unread input would reset the connection and could destroy the answer), like Go's server.
awaitable<void> linger_close(Stream& s) {
  error_code ec;
  co_await s.shutdown_write(ec);
  if (ec) co_return;
  Deadline deadline(s.executor(), kLingerTime, [&s] { s.close(); });
  std::array<char, 1024> sink;
  for (std::size_t total = 0; total < 64 * 1024;) {
    std::size_t n = co_await s.read_some(asio::buffer(sink), ec);
    if (ec) break;
    total += n;
  }
}

}  // namespace

StreamPtr make_ws_stream(StreamPtr inner, WsStreamOptions o) {
  return std::make_unique<WsStream>(std::move(inner), o);
}

void apply_tcp_keepalive(Stream& s, const TcpKeepalive& k) {
  if (!k.enabled) return;
  tcp::socket* sock = s.raw_tcp();
  if (!sock) return;
  error_code ec;
  sock->set_option(asio::socket_base::keep_alive(true), ec);
  const int fd = sock->native_handle();
  auto secs = [](nanoseconds d) {
    return static_cast<int>(
        std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(d).count()));
  };
  if (k.idle.count() > 0) {
    int v = secs(k.idle);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof v);
  }
  if (k.interval.count() > 0) {
    int v = secs(k.interval);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof v);
  }
  if (k.count > 0) ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &k.count, sizeof k.count);
}

WsServerConfig ws_server_config(const config::Metadata& md, std::string_view where) {
  WsServerConfig c;
  reject_compression(md, where);
  if (auto p = first_string(md, {"ws.path", "path"}); p && !p->empty()) c.path = *p;
  c.headers = header_map(md, where);
  for (const auto& h : c.headers)
    if (ws::is_reserved_client_header(h.name) || h.name == "Sec-Websocket-Accept")
      throw config::ConfigError(
          fmt::format("{}: header \"{}\" cannot be set in the 101 response", where, h.name));
  if (auto d = first_duration(md, {"ws.readHeaderTimeout", "readHeaderTimeout"});
      d && d->count() > 0)
    c.read_header_timeout = *d;
  if (auto d = first_duration(md, {"ws.handshakeTimeout", "handshakeTimeout"}); d && d->count() > 0)
    c.handshake_timeout = *d;
  // GOST queues upgraded connections for Accept() and drops them when `backlog` are waiting; here
  // an upgraded connection goes straight to its handler, so there is no such queue to bound. The
  // value is still checked.
  if (auto b = first_int(md, {"ws.backlog", "backlog"}); b && *b < 0)
    throw config::ConfigError(fmt::format("{}: \"backlog\" must not be negative", where));
  read_buffer_sizes(md, c.stream, where);
  c.stream.client = false;
  return c;
}

WsClientConfig ws_client_config(const config::Metadata& md, std::string_view where) {
  WsClientConfig c;
  reject_compression(md, where);
  if (auto h = first_string(md, {"ws.host", "host"})) c.host = *h;
  if (auto p = first_string(md, {"ws.path", "path"}); p && !p->empty()) c.path = *p;
  c.headers = header_map(md, where);
  for (const auto& h : c.headers)
    if (ws::is_reserved_client_header(h.name))
      throw config::ConfigError(
          fmt::format("{}: header \"{}\" cannot be set on the upgrade request", where, h.name));
  if (auto d = first_duration(md, {"ws.handshakeTimeout", "handshakeTimeout"}); d && d->count() > 0)
    c.handshake_timeout = *d;
  read_buffer_sizes(md, c.stream, where);
  c.stream.client = true;
  bool keepalive = md.get_bool("ws.keepalive").value_or(md.get_bool("keepalive").value_or(false));
  if (keepalive) {
    auto ttl = first_duration(md, {"ttl", "keepalive.interval"}).value_or(nanoseconds(0));
    c.stream.keepalive = ttl.count() > 0 ? ttl : std::chrono::seconds(15);
  }
  c.tcp_keepalive.enabled = md.get_bool("tcp.keepalive").value_or(false);
  c.tcp_keepalive.idle = md.get_duration("tcp.keepalive.idle").value_or(nanoseconds(0));
  c.tcp_keepalive.interval = md.get_duration("tcp.keepalive.interval").value_or(nanoseconds(0));
  c.tcp_keepalive.count = static_cast<int>(md.get_int("tcp.keepalive.count").value_or(0));
  return c;
}

awaitable<StreamPtr> ws_accept(StreamPtr s, const WsServerConfig& cfg) {
  Stream& raw = *s;
  std::string buf;
  for (int i = 0; i < kMaxRequestsPerConnection; ++i) {
    http::Request req;
    std::size_t head_len = 0;
    error_code ec;
    http::ParseStatus st;
    {
      Deadline deadline(raw.executor(), cfg.read_header_timeout, [&raw] { raw.close(); });
      st = co_await read_request(raw, buf, req, head_len, ec);
    }
    if (st != http::ParseStatus::complete) {
      if (ec) throw system_error(ec, "ws: reading the upgrade request");
      // Go's server answers what it cannot parse and closes.
      auto resp = ws::malformed_request_response(st == http::ParseStatus::too_large ? 431 : 400);
      co_await write_all(raw, asio::buffer(resp), ec);
      if (!ec) co_await linger_close(raw);
      throw system_error(protocol_error(), "ws: malformed upgrade request");
    }
    int status = ws::check_request(req, cfg.path);
    if (status == 101) {
      if (buf.size() > head_len)
        throw system_error(protocol_error(), "ws: client sent data before handshake is complete");
      auto resp = ws::response_101(*req.headers.get("Sec-Websocket-Key"), cfg.headers);
      {
        Deadline deadline(raw.executor(), cfg.handshake_timeout, [&raw] { raw.close(); });
        co_await write_all(raw, asio::buffer(resp));
      }
      co_return make_ws_stream(std::move(s), cfg.stream);
    }
    // An error answer; the connection stays for another request (HTTP keep-alive) unless the
    // client asked to close, spoke HTTP/1.0 without keep-alive, or sent a body we would have to
    // skip.
    auto framing = http::request_framing(req);
    const bool has_body = !framing || framing->kind != http::Framing::none;
    const bool close_requested = req.headers.has_token("Connection", "close");
    const bool close =
        close_requested || has_body ||
        (req.version_minor == 0 && !req.headers.has_token("Connection", "keep-alive"));
    auto resp = ws::error_response(status, current_http_date(), close_requested || has_body,
                                   req.version_minor);
    co_await write_all(raw, asio::buffer(resp));
    if (close) {
      co_await linger_close(raw);
      throw system_error(protocol_error(), fmt::format("ws: upgrade refused with {}", status));
    }
    buf.erase(0, head_len);
  }
  co_await linger_close(raw);
  throw system_error(protocol_error(), "ws: too many requests without an upgrade");
}

awaitable<StreamPtr> ws_connect(StreamPtr s, const WsClientConfig& cfg,
                                std::string_view node_addr) {
  Stream& raw = *s;
  Deadline deadline(raw.executor(), cfg.handshake_timeout, [&raw] { raw.close(); });
  std::array<std::uint8_t, 16> nonce;
  RAND_bytes(nonce.data(), static_cast<int>(nonce.size()));
  ws::ClientRequest req;
  req.path = cfg.path;
  req.host = cfg.host.empty() ? std::string(node_addr) : cfg.host;
  req.key = ws::make_key(nonce);
  req.headers = cfg.headers;
  auto text = ws::client_request(req);
  co_await write_all(raw, asio::buffer(text));

  std::string buf;
  http::Response resp;
  std::size_t head_len = 0;
  error_code ec;
  auto st = co_await read_response(raw, buf, resp, head_len, ec);
  if (st != http::ParseStatus::complete) {
    if (ec) throw system_error(ec, "ws: reading the upgrade response");
    throw system_error(protocol_error(), "ws: malformed upgrade response");
  }
  if (auto why = ws::check_response(resp, req.key); !why.empty())
    throw system_error(make_error_code(boost::system::errc::connection_refused), "ws: " + why);
  // Frames the server sent right after its 101 were read with it: they are the stream's first
  // bytes.
  auto inner = with_prefix(std::move(s), buf.substr(head_len));
  co_return make_ws_stream(std::move(inner), cfg.stream);
}

TlsContextPtr wss_client_context(const std::optional<config::TLS>& tls,
                                 const std::string& node_addr, const WsClientConfig& cfg) {
  std::string name_source = node_addr;
  bool no_server_name = !tls || tls->serverName.empty();
  auto hp = split_host_port(node_addr);
  if (no_server_name && (!hp || hp->host.empty()) && !cfg.host.empty()) name_source = cfg.host;
  return client_context(tls, name_source);
}

awaitable<StreamPtr> ws_client_handshake(StreamPtr s, const WsClientConfig& cfg, TlsContextPtr tls,
                                         std::string_view node_addr) {
  Stream& raw = *s;
  Deadline deadline(raw.executor(), cfg.handshake_timeout, [&raw] { raw.close(); });
  if (tls) s = co_await tls_connect(std::move(s), tls);
  co_return co_await ws_connect(std::move(s), cfg, node_addr);
}

}  // namespace gost::net
