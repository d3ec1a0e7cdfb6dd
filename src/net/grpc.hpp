// GOST's gRPC tunnel (docs/PROTOCOLS.md "grpc"): one call of /GostTunel/Tunnel = one HTTP/2 stream
// whose two bodies are sequences of Chunk messages (proto/grpc). GrpcStream turns that stream back
// into a byte stream: every write is one message, reads concatenate the `data` fields.
#pragma once

#include <string>

#include "core/log.hpp"
#include "net/http2.hpp"
#include "proto/grpc.hpp"

namespace gost::net {

// The request head of a tunnel call (docs/PROTOCOLS.md "grpc: request and response").
H2Headers grpc_request(std::string_view authority, std::string_view method_path, bool tls);

// A grpc-message value: percent-encoded outside printable ASCII and for '%' (gRPC over HTTP/2).
std::string grpc_message(std::string_view text);

class GrpcStream final : public Stream {
 public:
  // Server: the accepted call (response head already sent); its trailers say grpc-status 0 unless
  // the client's input was malformed. Client: a call started with start_stream(); the response
  // head is checked when it arrives (status 200, a gRPC content type), a non-zero grpc-status at
  // the end is an error, zero is EOF.
  GrpcStream(Http2StreamPtr s, bool server, log::Logger log);
  ~GrpcStream() override;

  asio::any_io_executor executor() override { return h2_->executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override;
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override;
  awaitable<void> wait_readable(error_code& ec) override;
  // Client: END_STREAM (half-close). Server: trailers grpc-status 0 and END_STREAM.
  awaitable<void> shutdown_write(error_code& ec) override;
  void close() override;
  std::string remote_address() const override { return h2_->remote_address(); }
  std::string local_address() const override { return h2_->local_address(); }

 private:
  // Client: the response head (once), then at the end the status. Empty = fine.
  std::string check_head();
  std::string check_status();

  Http2StreamPtr h2_;
  bool server_;
  log::Logger log_;
  proto::grpc::ChunkDecoder decoder_;
  bool head_checked_ = false;
  error_code failed_;  // sticky read error
};

}  // namespace gost::net
