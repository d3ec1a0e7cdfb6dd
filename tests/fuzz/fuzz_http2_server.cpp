// libFuzzer target: bytes from a hostile client fed to the server side of net/http2 (our nghttp2
// session with its callbacks, limits and stream handling). Accepted streams are answered 200,
// read a little, written to, half-closed or reset, as the h2 listener and the relay do. Needs more
// than src/proto: scripts/fuzz.sh links net/http2, core/stream, core/buffer_pool, config/model and
// libnghttp2 for this target.
#include <cstdint>
#include <string>

#include "net/http2.hpp"

namespace {

using namespace gost;

// The client's bytes, delivered in pieces whose sizes come from the input itself; writes are
// swallowed (a peer that reads everything).
class FuzzStream final : public Stream {
 public:
  FuzzStream(asio::any_io_executor ex, std::string_view in) : ex_(ex), in_(in) {}
  asio::any_io_executor executor() override { return ex_; }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    ec = {};
    if (closed_ || in_.empty()) {
      ec = asio::error::eof;
      co_return 0;
    }
    std::size_t piece = 1 + static_cast<unsigned char>(in_[0]) * 37 % 4096;
    std::size_t n = std::min({piece, in_.size(), buf.size()});
    std::memcpy(buf.data(), in_.data(), n);
    in_.remove_prefix(n);
    co_return n;
  }
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    ec = closed_ ? asio::error::broken_pipe : error_code{};
    co_return closed_ ? 0 : buf.size();
  }
  awaitable<void> shutdown_write(error_code& ec) override {
    ec = {};
    co_return;
  }
  void close() override { closed_ = true; }

 private:
  asio::any_io_executor ex_;
  std::string_view in_;
  bool closed_ = false;
};

awaitable<void> serve(std::shared_ptr<net::Http2Session> session) {
  for (int i = 0;; ++i) {
    error_code ec;
    auto s = co_await session->accept_stream(ec);
    if (!s) co_return;
    if (s->header(":method") != "CONNECT" && i % 3 == 0) {
      s->respond(405, {{"content-length", "0"}}, true);
      continue;
    }
    s->respond(200, {{"date", "Thu, 01 Jan 1970 00:00:00 GMT"}}, false);
    char buf[512];
    std::size_t n = co_await s->read_some(asio::buffer(buf), ec);
    if (!ec) co_await write_all(*s, asio::buffer(buf, n), ec);
    if (i % 2 == 0) co_await s->shutdown_write(ec);
    // the stream is closed (RST or END_STREAM + RST) when `s` goes
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  asio::io_context io;
  net::Http2Config cfg;
  cfg.handshake_timeout = std::chrono::nanoseconds(0);
  cfg.response_timeout = std::chrono::seconds(1);
  cfg.stream_window = 65535;
  cfg.connection_window = 1 << 20;
  cfg.max_header_list = 4096;
  // Most inputs start after a valid preface and an empty SETTINGS frame, so that the fuzzer
  // spends its time on frames; a first byte of 0xff feeds the raw input (bad prefaces).
  std::string input;
  if (size > 0 && data[0] == 0xff) {
    input.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  } else {
    input = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string("\0\0\0\4\0\0\0\0\0", 9);
    input.append(reinterpret_cast<const char*>(data), size);
  }
  std::string_view in(input);
  auto session =
      net::Http2Session::server(std::make_unique<FuzzStream>(io.get_executor(), in), cfg);
  asio::co_spawn(io, serve(session), asio::detached);
  session.reset();
  io.run_for(std::chrono::seconds(5));
  return 0;
}
