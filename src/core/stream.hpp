// Stream: one reliable, ordered, bidirectional byte stream with half-close (docs/ARCHITECTURE.md
// "Streams"). Handlers and connectors only ever see Streams, never the transport under them.
#pragma once

#include <memory>
#include <string>

#include "core/asio.hpp"

namespace gost {

class Stream {
 public:
  virtual ~Stream() = default;
  virtual asio::any_io_executor executor() = 0;

  // Reads at least one byte; returns 0 with ec = asio::error::eof at the end of the stream.
  virtual awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) = 0;
  virtual awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) = 0;
  // Resolves once a read would not block, without a buffer: an idle connection holds no memory
  // for its data path. Streams without such a notion return at once.
  virtual awaitable<void> wait_readable(error_code& ec) { co_return; }
  // Without waiting, for a relay that holds no coroutine while its tunnel is idle
  // (docs/ARCHITECTURE.md "The relay"): `ready` when a read would not wait (bytes, the end or an
  // error are there), `idle` when nothing can be read before `socket` is readable — the stream
  // holds no bytes of its own and has nothing to send first —, `unknown` when the stream can only
  // be waited for with wait_readable(). May process what arrived without application data (a TLS
  // session ticket) and give idle buffers back, as wait_readable() does.
  struct Poll {
    enum Kind { unknown, ready, idle } kind = unknown;
    tcp::socket* socket = nullptr;  // when idle
  };
  virtual Poll poll_readable() { return {}; }
  // Whether a write now would be taken without waiting for a resource shared with other streams
  // (a PHT push slot). A relay that has something to read but a destination that is not
  // writable waits with wait_writable() before it reads, so that a tunnel whose writes queue
  // holds no buffer meanwhile (docs/ARCHITECTURE.md "The relay"). wait_writable() may take that
  // resource for the next write (which then does not wait for it).
  virtual bool writable_now() { return true; }
  virtual awaitable<void> wait_writable(error_code& ec) {
    ec = {};
    co_return;
  }
  // Half-close: no more writes (TCP FIN, TLS close_notify, END_STREAM ...); reading continues.
  virtual awaitable<void> shutdown_write(error_code& ec) = 0;
  // Aborts the stream: pending operations complete with an error.
  virtual void close() = 0;

  // The raw TCP socket when reading this stream is exactly reading it (enables splice(2)).
  virtual tcp::socket* raw_tcp() { return nullptr; }
  // The raw TCP socket when writing to this stream is exactly writing to it. Differs from
  // raw_tcp() for wrappers with pending input only (e.g. a reply still to be consumed).
  virtual tcp::socket* raw_tcp_write() { return raw_tcp(); }
  virtual std::string remote_address() const { return {}; }
  virtual std::string local_address() const { return {}; }
};
using StreamPtr = std::unique_ptr<Stream>;

// A Stream that carries no bytes of its own: what a dialer hands its connector when the tunnel is
// a stream the connector opens on pooled sessions (http2, h3-masque), or a UDP association that
// is used as a PacketConn. Reads, writes and half-close fail with operation_not_supported.
class NoByteStream : public Stream {
 public:
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override;
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override;
  awaitable<void> shutdown_write(error_code& ec) override;
};

// Writes the whole buffer (loops over write_some).
awaitable<void> write_all(Stream& s, asio::const_buffer buf, error_code& ec);
// Throwing variants for handshake code, where an error ends the connection anyway.
awaitable<void> write_all(Stream& s, asio::const_buffer buf);
awaitable<std::size_t> read_some(Stream& s, asio::mutable_buffer buf);

}  // namespace gost
