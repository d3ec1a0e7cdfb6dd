// The payload bytes of a Stream, counted for the service's metrics
// (gost_service_transfer_*_bytes_total).
//
// A service's raw accepted TCP connection counts its own bytes (TcpStream, docs/PROTOCOLS.md
// "observability: metrics"). The multiplexing listeners (mws, h2/h2c, http2, grpc, pht, h3 ...)
// hand the handler streams of a shared session instead, whose raw bytes belong to no single
// request: each such stream counts the bytes its handler reads and writes through it — the payload,
// without the framing (HTTP/2, smux, gRPC, PHT, QUIC) and handshakes of the session under it.
#pragma once

#include <memory>

#include "core/stream.hpp"

namespace gost {
namespace metrics {
class Sink;
}

class CountedStream final : public Stream {
 public:
  CountedStream(StreamPtr inner, std::shared_ptr<metrics::Sink> sink)
      : inner_(std::move(inner)), sink_(std::move(sink)) {}

  Stream& inner() { return *inner_; }

  asio::any_io_executor executor() override { return inner_->executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override;
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override;
  awaitable<void> wait_readable(error_code& ec) override { return inner_->wait_readable(ec); }
  Poll poll_readable() override { return inner_->poll_readable(); }
  bool writable_now() override { return inner_->writable_now(); }
  awaitable<void> wait_writable(error_code& ec) override { return inner_->wait_writable(ec); }
  awaitable<void> shutdown_write(error_code& ec) override { return inner_->shutdown_write(ec); }
  void close() override { inner_->close(); }
  // No raw socket: splice(2) would move bytes past the counting.
  std::string remote_address() const override { return inner_->remote_address(); }
  std::string local_address() const override { return inner_->local_address(); }

 private:
  StreamPtr inner_;
  std::shared_ptr<metrics::Sink> sink_;
};

// The stream under a CountedStream and a ThrottledStream (core/throttle.hpp) — the one a
// listener yielded, e.g. an HTTP/2 stream whose request headers a handler reads —, else `s`
// itself. Reads and writes go through `s`, so that
// they are counted.
Stream& uncounted(Stream& s);

}  // namespace gost
